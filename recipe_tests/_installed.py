"""A fresh virtualenv with the built wheel installed, outside Bazel's own venv.

Recipe tests drive torchtune only through the installed ``tune`` command, as a user would after
``pip install``. The venv gets the same locked versions (torch==2.13.0 included) through a
constraints file made from requirements_lock.txt.
"""

import os
import subprocess
import sys
import venv
from pathlib import Path

# This workspace's root inside the test's runfiles (not resolved: runfiles are symlinks).
RUNFILES = Path(os.environ.get("TEST_SRCDIR", Path(__file__).absolute().parents[2])) / os.environ.get(
    "TEST_WORKSPACE", "torchtune_repo")


def runfile(path: str) -> Path:
    """A file of this workspace in the test's runfiles."""
    return RUNFILES / path


def wheel_path() -> Path:
    """The wheel built by //:wheel."""
    wheels = sorted(RUNFILES.glob("torchtune-*.whl"))
    assert len(wheels) == 1, f"expected one wheel in {RUNFILES}, found {wheels}"
    return wheels[0]


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a user's shell: no Bazel PYTHONPATH, no recipes-root override."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTHON", "RUNFILES", "TORCHTUNE_"))}
    env.update(extra)
    return env


class InstalledTorchtune:
    """A venv holding ``torchtune[<extras>]`` from the wheel; runs ``tune`` and python in it."""

    def __init__(self, root: Path, extras: tuple[str, ...] = ("recipes",)) -> None:
        self.root = root
        self.bin = root / "bin"
        if not (self.bin / "tune").exists():
            self._create(extras)

    def _create(self, extras: tuple[str, ...]) -> None:
        venv.EnvBuilder(with_pip=True, clear=True).create(self.root)
        constraints = self.root / "constraints.txt"
        pins = [line.split()[0] for line in runfile("requirements_lock.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#")]
        constraints.write_text("\n".join(pins) + "\n")
        spec = str(wheel_path()) + (f"[{','.join(extras)}]" if extras else "")
        subprocess.run(
            [str(self.bin / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             "--no-input", "-c", str(constraints), spec],
            check=True, env=clean_env(PIP_NO_CACHE_DIR="1"),
        )

    def run(self, *args: str, cwd: Path, check: bool = True, timeout: int = 600,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """Runs ``bin/<args[0]> args[1:]`` (``tune``, ``python``) and returns its output."""
        proc = subprocess.run(
            [str(self.bin / args[0]), *args[1:]], cwd=cwd, capture_output=True, text=True,
            timeout=timeout, env=clean_env(OMP_NUM_THREADS="1", **(env or {})),
        )
        if check and proc.returncode != 0:
            sys.stderr.write(proc.stdout + proc.stderr)
            raise AssertionError(f"{' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-4000:]}")
        return proc
