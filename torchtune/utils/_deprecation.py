"""Old public names kept for one release after a move, with a warning that names the new home."""

import importlib
import warnings
from collections.abc import Callable, Mapping
from typing import Any


def deprecated_aliases(module: str, moved: Mapping[str, str]) -> Callable[[str], Any]:
    """Make a module ``__getattr__`` that resolves old names to their new homes, warning once per use.

    Use it as ``__getattr__ = deprecated_aliases(__name__, {"Old": "torchtune.new.place.New"})``
    in the package that used to publish ``Old``. The old names stay out of ``__all__``.

    Args:
        module (str): the package publishing the aliases (pass ``__name__``).
        moved (Mapping[str, str]): old name -> dotted path of the object now.

    Returns:
        Callable[[str], Any]: the module-level ``__getattr__``.
    """

    def __getattr__(name: str) -> Any:
        if name not in moved:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        target = moved[name]
        path, _, attr = target.rpartition(".")
        if attr.startswith("_"):  # a private module: its names are imported from its package
            advice = f"import its names from {path}"
        elif any(part.startswith("_") for part in path.split(".")):  # an internal helper now
            advice = "it is internal now (no public replacement)"
        else:
            advice = f"use {target}"
        warnings.warn(
            f"{module}.{name} is deprecated and will be removed in the next release; {advice}",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(path), attr)

    return __getattr__
