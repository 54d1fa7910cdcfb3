"""torchtune: a PyTorch-native library for fine-tuning large language models.

The importable library holds the components (modules, model builders, tokenizers, datasets,
checkpointers, training utilities). Recipes ship inside the wheel as data and are reached
through the ``tune`` command, never imported.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
