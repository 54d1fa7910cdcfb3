"""Helpers for the `tune` tests: a throwaway recipes root and ways to call `tune`."""

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from torchtune import _recipe_registry as registry
from torchtune._cli import main

# A recipe stand-in: writes its argv to the file named by $TUNE_TEST_OUT.
FAKE_RECIPE = """\
import json, os, sys
def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    with open(os.environ["TUNE_TEST_OUT"], "w") as f:
        json.dump({"argv": argv, "file": __file__}, f)
if __name__ == "__main__":
    main()
"""

FAKE_CONFIG = "model:\n  name: tiny  # {name}\nbatch_size: 2\n"


@pytest.fixture
def recipes_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A recipes root holding every registered recipe (fake) and the tiny configs."""
    root = tmp_path / "recipes_root"
    for recipe in registry.RECIPES:
        path = root / recipe.file_name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(FAKE_RECIPE)
        for config in recipe.configs:
            if config.name.startswith("tiny/") or config.name.startswith("llama2/7B"):
                cfg = root / config.file_path
                cfg.parent.mkdir(parents=True, exist_ok=True)
                cfg.write_text(FAKE_CONFIG.format(name=config.name))
    monkeypatch.setenv(registry.RECIPES_ROOT_ENV, str(root))
    monkeypatch.setenv("TUNE_TEST_OUT", str(tmp_path / "recipe_out.json"))
    return root


@pytest.fixture
def tune(capsys: pytest.CaptureFixture) -> Callable[[list[str]], tuple[int, str, str]]:
    """Run `tune argv` in this process; return (exit code, stdout, stderr)."""

    def run(argv: list[str]) -> tuple[int, str, str]:
        try:
            code = main(argv)
        except SystemExit as e:  # argparse: --help, --version, usage errors
            code = e.code
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def tune_subprocess() -> Callable[..., subprocess.CompletedProcess]:
    """Run `python -m torchtune._cli argv` in a fresh interpreter that sees our sys.path."""

    def run(
        argv: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess:
        full_env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        full_env.update(env or {})
        return subprocess.run(
            [sys.executable, "-m", "torchtune._cli", *argv],
            cwd=cwd,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run
