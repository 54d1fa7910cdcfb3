"""Runs pytest for one Bazel test target.

Bazel passes the target's own test files as arguments; only those are collected. The junit XML
goes to ``$XML_OUTPUT_FILE`` so Bazel records each test case, ``--test_filter`` arrives as
``TESTBRIDGE_TEST_ONLY`` and becomes ``-k``, and sharding (``shard_count``) splits the collected
items round-robin by ``TEST_SHARD_INDEX`` / ``TEST_TOTAL_SHARDS``.
"""

import os
import sys
from pathlib import Path

import pytest


class _Shard:
    """Keeps every ``total``-th collected item, starting at ``index``."""

    def __init__(self, index: int, total: int) -> None:
        self.index, self.total = index, total

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, config, items):
        keep = [item for i, item in enumerate(items) if i % self.total == self.index]
        drop = [item for i, item in enumerate(items) if i % self.total != self.index]
        if drop:
            config.hook.pytest_deselected(items=drop)
        items[:] = keep


def main(files: list[str]) -> int:
    args = ["-p", "no:cacheprovider", "--import-mode=importlib", "-ra", "-q",
            "--rootdir", os.getcwd(), "-o", "junit_family=xunit2", "-W", "default"]
    xml = os.environ.get("XML_OUTPUT_FILE")
    if xml:
        args += ["--junitxml", xml]
    only = os.environ.get("TESTBRIDGE_TEST_ONLY")
    if only:
        args += ["-k", only]
    plugins = []
    total = int(os.environ.get("TEST_TOTAL_SHARDS", "1"))
    if total > 1:
        status = os.environ.get("TEST_SHARD_STATUS_FILE")
        if status:
            Path(status).touch()
        plugins.append(_Shard(int(os.environ["TEST_SHARD_INDEX"]), total))
    # Temporary files stay inside the test's own sandboxed temp dir.
    tmp = os.environ.get("TEST_TMPDIR")
    if tmp:
        args += ["--basetemp", os.path.join(tmp, "pytest")]
    code = pytest.main(args + files, plugins=plugins)
    # A target whose filter selected nothing is not a failure of the code under test.
    return 0 if code == pytest.ExitCode.NO_TESTS_COLLECTED and only else int(code)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
