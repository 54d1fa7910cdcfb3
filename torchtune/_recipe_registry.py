"""The one list of recipes, their configs, and where their files live.

Recipes are scripts, not library code: in a source checkout (or Bazel runfiles) they live in
``recipes/<recipe>.py`` with configs in ``recipes/configs/<family>/<config>.yaml``; in an installed
wheel the same tree ships as package data under ``torchtune/_recipes/``. :func:`recipes_root`
is the single place that decides which one is used. Setting the environment variable
``TORCHTUNE_RECIPES_ROOT`` to a directory overrides both (for tests and development).

The registry below is explicit data. ``recipe_tests/test_registry.py`` checks it against
the files, so a registered entry without a file, or a shipped file that is not registered, fails.
"""

from dataclasses import dataclass
from pathlib import Path

import torchtune

RECIPES_ROOT_ENV = torchtune.RECIPES_ROOT_ENV

# pip extra -> modules whose importability tells whether the extra is installed.
EXTRAS: dict[str, list[str]] = {
    "recipes": ["matplotlib"],
    "eval": ["lm_eval"],
    "hf": ["huggingface_hub"],
    "datasets": ["datasets"],
    "wandb": ["wandb"],
    "tensorboard": ["tensorboard"],
    "mlflow": ["mlflow"],
    "gguf": ["gguf"],
    "quant": ["torchao"],
}


@dataclass(frozen=True)
class Config:
    """A config file shipped with a recipe.

    Args:
        name (str): the name users type, e.g. ``"llama3_2/1B_lora_single_device"``.
        file_path (str): path relative to the recipes root, e.g.
            ``"configs/llama3_2/1B_lora_single_device.yaml"``.
    """

    name: str
    file_path: str


@dataclass(frozen=True)
class Recipe:
    """A recipe script and the configs that go with it.

    Args:
        name (str): the name users type, e.g. ``"lora_finetune_single_device"``.
        file_name (str): the script's path relative to the recipes root.
        configs (list[Config]): the configs this recipe ships with.
        supports_distributed (bool): whether the recipe may be launched through torchrun.
        bazel_name (str): the short Bazel target name in ``//recipes`` (``"lora"`` ...).
        extras (tuple[str, ...]): pip extras (keys of :data:`EXTRAS`) needed beyond the core.
    """

    name: str
    file_name: str
    configs: list[Config]
    supports_distributed: bool
    bazel_name: str
    extras: tuple[str, ...]


def recipes_root() -> Path:
    """See :func:`torchtune.recipes_root` (the one implementation)."""
    return torchtune.recipes_root()


def _config(name: str) -> Config:
    return Config(name=name, file_path=f"configs/{name}.yaml")


# Model family -> preset sizes that ship LoRA and full fine-tuning configs.
FAMILY_SIZES: dict[str, tuple[str, ...]] = {
    "llama2": ("7B", "13B", "70B"),
    "llama3": ("8B", "70B"),
    "llama3_1": ("8B", "70B", "405B"),
    "llama3_2": ("1B", "3B"),
    "llama3_3": ("70B",),
    "mistral": ("7B",),
    "qwen2_5": ("0.5B", "1.5B", "3B", "7B", "14B", "32B", "72B"),
    "qwen3": ("0.6B", "1.7B", "4B", "8B", "14B", "32B"),
    "qwen3_moe": ("30B-A3B", "235B-A22B"),
    "gpt_oss": ("20B", "120B"),
    "gemma": ("2B", "7B"),
    "gemma2": ("2B", "9B", "27B"),
    "gemma3": ("1B", "4B", "12B", "27B"),
    "smollm2": ("135M", "360M", "1.7B"),
    "smollm3": ("3B",),
    "phi3": ("mini",),
    "phi4": ("14B",),
}


# Family configs written by hand instead of generated: the main job (LoRA on SmolLM2's GGUF file).
HAND_WRITTEN = frozenset({"smollm2/135M_lora_single_device"})


def _family_configs(suffix: str) -> list[Config]:
    """Configs ``<family>/<size>_<suffix>`` for every family and size in :data:`FAMILY_SIZES`
    (a name in :data:`HAND_WRITTEN` is listed where the recipe lists it by hand)."""
    return [
        _config(f"{family}/{size}_{suffix}")
        for family, sizes in FAMILY_SIZES.items()
        for size in sizes
        if f"{family}/{size}_{suffix}" not in HAND_WRITTEN
    ]


RECIPES: list[Recipe] = [
    Recipe(
        name="full_finetune_single_device",
        file_name="full_finetune_single_device.py",
        configs=[_config("tiny/full_single_device"), *_family_configs("full_single_device")],
        supports_distributed=False,
        bazel_name="full",
        extras=("recipes",),
    ),
    Recipe(
        name="full_finetune_distributed",
        file_name="full_finetune_distributed.py",
        configs=[_config("tiny/full_distributed"), *_family_configs("full")],
        supports_distributed=True,
        bazel_name="full_distributed",
        extras=("recipes",),
    ),
    Recipe(
        name="lora_finetune_single_device",
        file_name="lora_finetune_single_device.py",
        configs=[_config("tiny/lora_single_device"), _config("smollm2/135M_lora_single_device"),
                 *_family_configs("lora_single_device")],
        supports_distributed=False,
        bazel_name="lora",
        extras=("recipes",),
    ),
    Recipe(
        name="lora_finetune_distributed",
        file_name="lora_finetune_distributed.py",
        configs=[_config("tiny/lora_distributed"), *_family_configs("lora")],
        supports_distributed=True,
        bazel_name="lora_distributed",
        extras=("recipes",),
    ),
    Recipe(
        name="lora_dpo_single_device",
        file_name="lora_dpo_single_device.py",
        configs=[_config("tiny/lora_dpo_single_device")],
        supports_distributed=False,
        bazel_name="lora_dpo",
        extras=("recipes",),
    ),
    Recipe(
        name="lora_dpo_distributed",
        file_name="lora_dpo_distributed.py",
        configs=[_config("tiny/lora_dpo_distributed")],
        supports_distributed=True,
        bazel_name="lora_dpo_distributed",
        extras=("recipes",),
    ),
    Recipe(
        name="full_dpo_distributed",
        file_name="full_dpo_distributed.py",
        configs=[_config("tiny/full_dpo_distributed")],
        supports_distributed=True,
        bazel_name="full_dpo_distributed",
        extras=("recipes",),
    ),
    Recipe(
        name="grpo_single_device",
        file_name="grpo_single_device.py",
        configs=[_config("tiny/grpo_single_device")],
        supports_distributed=False,
        bazel_name="grpo",
        extras=("recipes",),
    ),
    Recipe(
        name="grpo_distributed",
        file_name="grpo_distributed.py",
        configs=[_config("tiny/grpo_distributed")],
        supports_distributed=True,
        bazel_name="grpo_distributed",
        extras=("recipes",),
    ),
    Recipe(
        name="generate",
        file_name="generate.py",
        configs=[_config("tiny/generate")],
        supports_distributed=False,
        bazel_name="generate",
        extras=("recipes",),
    ),
    Recipe(
        name="eleuther_eval",
        file_name="eleuther_eval.py",
        configs=[_config("tiny/eval")],
        supports_distributed=False,
        bazel_name="eval",
        extras=("recipes", "eval"),
    ),
    Recipe(
        name="knowledge_distillation_single_device",
        file_name="knowledge_distillation_single_device.py",
        configs=[_config("tiny/kd_single_device")],
        supports_distributed=False,
        bazel_name="kd",
        extras=("recipes",),
    ),
    Recipe(
        name="knowledge_distillation_distributed",
        file_name="knowledge_distillation_distributed.py",
        configs=[_config("tiny/kd_distributed")],
        supports_distributed=True,
        bazel_name="kd_distributed",
        extras=("recipes",),
    ),
]


def get_recipe(name: str) -> Recipe | None:
    """Return the registered recipe called ``name``, or None."""
    return next((r for r in RECIPES if r.name == name), None)


def get_config(name: str) -> tuple[Recipe, Config] | None:
    """Return ``(recipe, config)`` for the registered config called ``name``, or None."""
    for recipe in RECIPES:
        for config in recipe.configs:
            if config.name == name:
                return recipe, config
    return None
