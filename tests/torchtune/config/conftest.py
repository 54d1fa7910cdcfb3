import sys
import textwrap
from pathlib import Path

import pytest


@pytest.fixture
def write_yaml(tmp_path):
    """Write dedented YAML text to tmp_path/name and return the path."""

    def write(text: str, name: str = "cfg.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    return write


@pytest.fixture
def user_pkg(tmp_path, monkeypatch):
    """A throwaway importable package 'tt_userpkg' with a few components.

    Importing 'tt_userpkg.sideeffect' creates the file 'imported.flag' in tmp_path.
    """
    pkg = tmp_path / "site" / "tt_userpkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "parts.py").write_text(
        textwrap.dedent(
            """
            BUILT = []

            class Leaf:
                def __init__(self, size, scale=1.0):
                    self.size, self.scale = size, scale
                    BUILT.append(self)

            class Tree:
                def __init__(self, left, leaves=(), options=None, *, name="tree"):
                    self.left, self.leaves, self.options, self.name = left, leaves, options, name

            def open_builder(**kwargs):
                return kwargs
            """
        )
    )
    (pkg / "sideeffect.py").write_text(
        f"open({str(tmp_path / 'imported.flag')!r}, 'w').close()\nclass Thing:\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    yield pkg
    for name in [m for m in sys.modules if m.startswith("tt_userpkg")]:
        del sys.modules[name]
