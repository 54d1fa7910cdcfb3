"""The public face of the library as text: every public package's ``__all__`` with the signatures
of its functions, classes (constructor and public methods) and the types of its other names.

``test_public_api.py`` compares it with the committed ``public_api.txt`` beside it, so a change
to the public API is a reviewed change (the library promises backward compatibility). After an
intended change, from the repository root::

    python tests/torchtune/api/_snapshot.py > tests/torchtune/api/public_api.txt
"""

import importlib
import inspect
import pkgutil
import re
import sys
from pathlib import Path

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def _signature(obj: object) -> str:
    try:
        return _ADDRESS.sub("", str(inspect.signature(obj)))
    except (TypeError, ValueError):
        return "(...)"


def _describe(name: str, obj: object) -> list[str]:
    if inspect.isclass(obj):
        bases = ", ".join(b.__name__ for b in obj.__bases__ if b is not object)
        lines = [f"  class {name}({bases}){_signature(obj)}"]
        for attr, value in sorted(vars(obj).items()):
            if attr.startswith("_"):
                continue
            if isinstance(value, (staticmethod, classmethod)):
                value = value.__func__
            if inspect.isfunction(value):
                lines.append(f"    def {attr}{_signature(value)}")
            elif isinstance(value, property):
                lines.append(f"    property {attr}")
        return lines
    if callable(obj):
        return [f"  def {name}{_signature(obj)}"]
    return [f"  {name}: {type(obj).__name__}"]


def public_modules(package: str = "torchtune") -> list[str]:
    """The importable public packages and modules (no path segment starts with ``_``)."""
    root = importlib.import_module(package)
    names = [package]
    for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return sorted(names)


def snapshot(package: str = "torchtune") -> str:
    """The snapshot text of ``package``."""
    lines = []
    for module_name in public_modules(package):
        module = importlib.import_module(module_name)
        exported = getattr(module, "__all__", None)
        if exported is None:
            continue
        lines.append(f"{module_name}:")
        for name in sorted(exported):
            lines += _describe(name, getattr(module, name))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
    sys.stdout.write(snapshot())
