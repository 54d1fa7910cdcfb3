"""`tune run` on one process: user scripts, registered recipes, extras and bad input."""

import json
import sys
import textwrap

import pytest

from torchtune import _recipe_registry as registry

USER_RECIPE = textwrap.dedent(
    """\
    import json, sys
    from {helper} import describe   # a module next to the recipe

    def main(argv=None):
        argv = sys.argv[1:] if argv is None else argv
        config = argv[argv.index("--config") + 1]
        with open(config) as f:
            text = f.read()
        out = dict(a.split("=", 1) for a in argv if "=" in a and not a.startswith("-"))["out"]
        with open(out, "w") as f:
            json.dump({{"argv": argv, "config": text, "helper": describe()}}, f)

    if __name__ == "__main__":
        main()
    """
)


@pytest.fixture
def user_recipe(tmp_path, request):
    helper = f"helper_{request.node.name.replace('[', '_').replace(']', '_')}"
    project = tmp_path / "project"
    project.mkdir()
    (project / f"{helper}.py").write_text("def describe():\n    return 'from helper'\n")
    (project / "my_recipe.py").write_text(USER_RECIPE.format(helper=helper))
    (project / "my_config.yaml").write_text("lr: 0.1\n")
    return project


def test_user_recipe_and_config_paths_in_process(user_recipe, tmp_path, tune):
    out = tmp_path / "out.json"
    argv_before, path_before = list(sys.argv), list(sys.path)
    code, stdout, err = tune(
        ["run", str(user_recipe / "my_recipe.py"), "--config", str(user_recipe / "my_config.yaml"),
         f"out={out}", "lr=0.5"]
    )
    assert (code, err) == (0, "")
    result = json.loads(out.read_text())
    assert result["config"] == "lr: 0.1\n" and result["helper"] == "from helper"
    assert result["argv"][2:] == [f"out={out}", "lr=0.5"]
    assert (sys.argv, sys.path) == (argv_before, path_before)


def test_user_recipe_in_subprocess_with_relative_paths(user_recipe, tmp_path, tune_subprocess):
    proc = tune_subprocess(
        ["run", "my_recipe.py", "--config", "my_config.yaml", "out=res.json"], cwd=user_recipe
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads((user_recipe / "res.json").read_text())
    assert result["argv"] == ["--config", "my_config.yaml", "out=res.json"]
    assert result["helper"] == "from helper"


def test_registered_recipe_and_config_names_resolve(recipes_root, tmp_path, tune):
    code, _, err = tune(
        ["run", "lora_finetune_single_device", "--config", "tiny/lora_single_device", "x=1"]
    )
    assert (code, err) == (0, "")
    result = json.loads((tmp_path / "recipe_out.json").read_text())
    assert result["file"] == str((recipes_root / "lora_finetune_single_device.py").resolve())
    config = str(recipes_root / "configs/tiny/lora_single_device.yaml")
    assert result["argv"] == ["--config", config, "x=1"]


def test_config_equals_form_resolves(recipes_root, tmp_path, tune):
    assert tune(["run", "generate", "--config=tiny/generate"])[0] == 0
    argv = json.loads((tmp_path / "recipe_out.json").read_text())["argv"]
    assert argv == ["--config=" + str(recipes_root / "configs/tiny/generate.yaml")]


def test_local_copy_wins_over_registered_name(recipes_root, tmp_path, tune, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert tune(["run", "generate.py", "--config", "tiny/generate"])[0] == 0
    result = json.loads((tmp_path / "recipe_out.json").read_text())
    assert result["file"] == str((recipes_root / "generate.py").resolve())
    (tmp_path / "generate.py").write_text("raise SystemExit(7)\n")
    assert tune(["run", "generate.py", "--config", "tiny/generate"])[0] == 7


def test_registered_recipe_needs_config(recipes_root, tune):
    code, _, err = tune(["run", "generate", "x=1"])
    assert code == 1
    assert err == (
        "tune: error: recipe 'generate' needs --config <name|path>, e.g. one of: tiny/generate\n"
    )


def test_config_flag_without_value(recipes_root, tune):
    code, _, err = tune(["run", "generate", "--config"])
    assert (code, err) == (
        1, "tune: error: --config needs a value: a config name or a path to a YAML file\n"
    )


def test_unknown_recipe_lists_close_matches(recipes_root, tune):
    code, _, err = tune(["run", "lora_finetune_single_devce", "--config", "tiny/generate"])
    assert code == 1
    assert err.startswith(
        "tune: error: unknown recipe (no such file or registered name) "
        "'lora_finetune_single_devce'; did you mean: lora_finetune_single_device"
    )


def test_unknown_config_lists_close_matches(recipes_root, tune):
    code, _, err = tune(["run", "generate", "--config", "tiny/generat"])
    assert code == 1
    assert "unknown config (no such file or registered name) 'tiny/generat'" in err
    assert "did you mean: tiny/generate" in err


def test_missing_extra_names_it(recipes_root, monkeypatch, tune):
    monkeypatch.setitem(registry.EXTRAS, "eval", ["torchtune_test_absent_module"])
    code, _, err = tune(["run", "eleuther_eval", "--config", "tiny/eval"])
    assert code == 1
    assert err == (
        "tune: error: recipe 'eleuther_eval' needs the 'eval' extra (missing: "
        "torchtune_test_absent_module); install it with: pip install 'torchtune[eval]'\n"
    )


def test_lean_install_names_recipes_extra(recipes_root, monkeypatch, tune):
    monkeypatch.setitem(registry.EXTRAS, "recipes", ["torchtune_test_absent_a"])
    monkeypatch.setitem(registry.EXTRAS, "eval", ["torchtune_test_absent_b"])
    code, _, err = tune(["run", "eleuther_eval", "--config", "tiny/eval"])
    assert code == 1
    assert "needs the 'recipes', 'eval' extra" in err
    assert "pip install 'torchtune[recipes,eval]'" in err


def test_torchrun_options_refused_for_single_device_recipe(recipes_root, tune):
    code, _, err = tune(["run", "--nproc_per_node", "2", "generate", "--config", "tiny/generate"])
    assert code == 1
    assert err == (
        "tune: error: recipe 'generate' runs on a single device and takes no torchrun options; "
        "distributed recipes: full_finetune_distributed, lora_finetune_distributed, lora_dpo_distributed, "
        "full_dpo_distributed, grpo_distributed, knowledge_distillation_distributed\n"
    )


def test_torchrun_module_flag_refused(recipes_root, tune):
    code, _, err = tune(["run", "-m", "--nproc_per_node", "1", "generate"])
    assert code == 1 and "does not accept torchrun's --module/-m or --no-python" in err


@pytest.mark.parametrize("body, code, message", [
    ("raise SystemExit(3)", 3, ""),
    ("raise SystemExit('bad batch size')", 1, "bad batch size\n"),
    ("raise SystemExit(0)", 0, ""),
])
def test_recipe_exit_code_propagates(tmp_path, tune, body, code, message):
    script = tmp_path / "exits.py"
    script.write_text(body + "\n")
    assert tune(["run", str(script)]) == (code, "", message)


def test_run_help(tune):
    code, out, _ = tune(["run", "--help"])
    assert code == 0
    assert out.startswith("usage: tune run [torchrun options] <recipe|path.py> --config")
