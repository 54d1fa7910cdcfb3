"""torchtune: a PyTorch-native library for fine-tuning large language models.

The importable library holds the components (modules, model builders, tokenizers, datasets,
checkpointers, training utilities). Recipes ship inside the wheel as data and are reached
through the ``tune`` command, never imported.
"""

import os
from pathlib import Path

__version__ = "0.1.0"


#: Environment variable that overrides :func:`recipes_root` (tests and development).
RECIPES_ROOT_ENV = "TORCHTUNE_RECIPES_ROOT"


def recipes_root() -> Path:
    """The directory holding the recipe scripts, ``configs/`` and the tiny assets.

    Order: ``$TORCHTUNE_RECIPES_ROOT`` when set and non-empty; else ``torchtune/_recipes`` next
    to the installed package (the wheel's package data) when it exists; else ``recipes/``
    beside the ``torchtune`` source directory (a source checkout or Bazel runfiles). Configs
    refer to it as ``${recipes_root}``, a value the recipes and ``tune`` supply with
    ``config.parse_args(argv, variables={"recipes_root": str(torchtune.recipes_root())})``.

    Returns:
        Path: the recipes root (not checked for existence when taken from the environment).
    """
    override = os.environ.get(RECIPES_ROOT_ENV)
    if override:
        return Path(override)
    package_dir = Path(__file__).parent
    installed = package_dir / "_recipes"
    return installed if installed.is_dir() else package_dir.parent / "recipes"


__all__ = ["RECIPES_ROOT_ENV", "__version__", "recipes_root"]
