"""The registry must match the recipe and config files of the source tree, both ways."""

import re
from pathlib import Path

import pytest

import torchtune
from recipe_tests._installed import runfile
from torchtune import _recipe_registry as registry

# The source tree's recipes/ (this test's runfiles hold //recipes:recipe_files).
SOURCE_ROOT = runfile("recipes")
CONFIG_NAMES = [c.name for r in registry.RECIPES for c in r.configs]
CONFIG_PATHS = {c.file_path for r in registry.RECIPES for c in r.configs}


def test_names_are_unique():
    recipe_names = [r.name for r in registry.RECIPES]
    assert len(set(recipe_names)) == len(recipe_names)
    assert len(set(CONFIG_NAMES)) == len(CONFIG_NAMES)
    bazel_names = [r.bazel_name for r in registry.RECIPES]
    assert sorted(bazel_names) == sorted(
        ["lora", "full", "lora_distributed", "full_distributed", "lora_dpo", "lora_dpo_distributed",
         "full_dpo_distributed", "generate", "eval", "grpo", "grpo_distributed",
         "kd", "kd_distributed"]
    )


def test_entries_are_well_formed():
    for recipe in registry.RECIPES:
        assert recipe.file_name == f"{recipe.name}.py"
        assert set(recipe.extras) <= set(registry.EXTRAS), recipe.name
        assert recipe.configs, recipe.name
        for config in recipe.configs:
            assert config.file_path == f"configs/{config.name}.yaml"


def test_family_table_expands_to_four_configs_per_size():
    n_sizes = sum(len(s) for s in registry.FAMILY_SIZES.values())
    # the presets listed in the design, plus Qwen3-MoE (2), gpt-oss (2), Gemma 3 (4), SmolLM3 (1) and SmolLM2 (3)
    assert n_sizes == 44
    # + 13 tiny configs (2 of them GRPO's, 2 KD's); the SmolLM2 main job (smollm2/135M_lora_single_device)
    # is hand-written in place of its generated config
    assert registry.HAND_WRITTEN == {"smollm2/135M_lora_single_device"}
    assert len(CONFIG_NAMES) == 4 * n_sizes + 13
    assert registry.get_config("smollm2/135M_lora_single_device")[0].name == "lora_finetune_single_device"
    assert "qwen2_5/0.5B_lora_single_device" in CONFIG_NAMES
    assert "phi3/mini_full" in CONFIG_NAMES
    assert registry.get_config("llama3_1/405B_lora")[0].name == "lora_finetune_distributed"


def test_recipes_root_prefers_env_then_installed_then_source(tmp_path, monkeypatch):
    monkeypatch.setenv(registry.RECIPES_ROOT_ENV, str(tmp_path))
    assert registry.recipes_root() == tmp_path
    monkeypatch.delenv(registry.RECIPES_ROOT_ENV)
    installed = Path(torchtune.__file__).parent / "_recipes"
    expected = installed if installed.is_dir() else SOURCE_ROOT
    assert registry.recipes_root() == expected


@pytest.mark.parametrize("recipe", registry.RECIPES, ids=lambda r: r.name)
def test_registered_recipe_file_exists(recipe):
    assert (SOURCE_ROOT / recipe.file_name).is_file(), f"recipes/{recipe.file_name} is missing"


def test_registered_config_files_exist():
    missing = sorted(p for p in CONFIG_PATHS if not (SOURCE_ROOT / p).is_file())
    assert not missing, f"{len(missing)} registered configs have no file: {missing}"


def test_every_shipped_config_is_registered():
    shipped = {p.relative_to(SOURCE_ROOT).as_posix() for p in SOURCE_ROOT.glob("configs/**/*")}
    shipped = {p for p in shipped if p.endswith((".yaml", ".yml"))}
    assert not sorted(shipped - CONFIG_PATHS), "configs not in torchtune/_recipe_registry.py"


def test_every_shipped_recipe_is_registered():
    scripts = {p.name for p in SOURCE_ROOT.glob("*.py")} - {"__init__.py"}
    assert scripts - {r.file_name for r in registry.RECIPES} == set()


def test_recipes_package_is_not_importable():
    init = SOURCE_ROOT / "__init__.py"
    with pytest.raises(ImportError, match="not importable"):
        exec(compile(init.read_text(), str(init), "exec"), {})


def test_bazel_targets_match_the_registry():
    build = (SOURCE_ROOT / "BUILD.bazel").read_text()
    # recipe_binary(name = "<bazel_name>", ..., recipe = "<recipe name>", ...)
    targets = {}
    for block in re.findall(r"recipe_binary\((.*?)\n\)", build, flags=re.S):
        name = re.search(r'\bname = "([^"]+)"', block)
        recipe = re.search(r'\brecipe = "([^"]+)"', block)
        assert name and recipe, block
        targets[name.group(1)] = recipe.group(1)
    assert targets == {r.bazel_name: r.name for r in registry.RECIPES}
