"""Counts test cases in Bazel's test.xml files and prints ``N passed, N failed``.

Usage: python3 tools/ci/summarize_testlogs.py TESTLOGS_DIR [--bazel-exit CODE] [--extra-failures N]

Each test case counts once (shards write their own files under ``shard_K_of_N/``, and the
pytest macro gives each shard a distinct slice). A non-zero Bazel exit with no failing test case
(a build error, say) counts as one failure, so the summary can never read green by accident.
Standard library only: it runs before any venv exists.
"""

import argparse
import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def count(testlogs: Path) -> tuple[int, int, int, list[str]]:
    passed = failed = skipped = 0
    failures = []
    for xml in sorted(testlogs.rglob("test.xml")):
        try:
            root = ET.parse(xml).getroot()
        except ET.ParseError as e:
            failed += 1
            failures.append(f"{xml}: unreadable ({e})")
            continue
        for case in root.iter("testcase"):
            if case.find("failure") is not None or case.find("error") is not None:
                failed += 1
                failures.append(f"{xml.parent.relative_to(testlogs)}: {case.get('classname')}.{case.get('name')}")
            elif case.find("skipped") is not None:
                skipped += 1
            else:
                passed += 1
    return passed, failed, skipped, failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("testlogs", type=Path)
    parser.add_argument("--bazel-exit", type=int, default=0)
    parser.add_argument("--extra-failures", type=int, default=0, help="failed checks run outside Bazel")
    args = parser.parse_args()
    passed, failed, skipped, failures = count(args.testlogs)
    for line in failures:
        print(f"FAILED {line}")
    if args.bazel_exit != 0 and failed == 0:
        print(f"bazel exited with {args.bazel_exit} without a failing test case (build error?)")
        failed = 1
    failed += args.extra_failures
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
