"""Lazy imports of optional integrations, with an error that names the pip extra."""

import importlib
from types import ModuleType


def require(module: str, *, extra: str) -> ModuleType:
    """Import an optional dependency or explain how to install it.

    Args:
        module (str): the module to import, e.g. ``"wandb"``.
        extra (str): the torchtune pip extra that provides it, e.g. ``"wandb"``.

    Returns:
        ModuleType: the imported module.

    Raises:
        ModuleNotFoundError: when the module is not installed; the message names
            ``pip install 'torchtune[<extra>]'``.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name is not None and module.split(".")[0] != e.name.split(".")[0]:
            raise
        raise ModuleNotFoundError(
            f"'{module}' is not installed; it comes with the '{extra}' extra: "
            f"pip install 'torchtune[{extra}]'",
            name=module,
        ) from e
