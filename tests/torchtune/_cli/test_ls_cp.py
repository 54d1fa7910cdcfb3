"""`tune ls`, `tune cp`, `tune cat`, `tune --version` and unknown-name errors."""

import os
import subprocess
import sys

import torchtune
from torchtune import _recipe_registry as registry


def test_version(tune):
    code, out, _ = tune(["--version"])
    assert (code, out) == (0, f"torchtune {torchtune.__version__}\n")


def test_ls_lists_every_recipe_and_config(tune):
    code, out, _ = tune(["ls"])
    assert code == 0
    rows = [line.split() for line in out.splitlines()]
    assert rows[0] == ["RECIPE", "CONFIG"]
    listed = [row[-1] for row in rows[1:]]
    assert listed == [c.name for r in registry.RECIPES for c in r.configs]
    assert sorted(row[0] for row in rows[1:] if len(row) == 2) == sorted(
        r.name for r in registry.RECIPES
    )


def test_ls_one_recipe(tune):
    code, out, _ = tune(["ls", "generate"])
    assert code == 0
    assert out.splitlines()[1].split() == ["generate", "tiny/generate"]
    assert len(out.splitlines()) == 2


def test_unknown_recipe_lists_close_matches(tune):
    code, out, err = tune(["ls", "lora_finetune_single"])
    assert code == 1 and out == ""
    assert err.startswith("tune: error: unknown recipe 'lora_finetune_single'; did you mean: ")
    assert "lora_finetune_single_device" in err and len(err.splitlines()) == 1


def test_cp_to_directory_keeps_name_and_bytes(recipes_root, tmp_path, tune):
    dest = tmp_path / "mine"
    dest.mkdir()
    code, out, _ = tune(["cp", "tiny/lora_single_device", str(dest)])
    assert code == 0
    copied = dest / "lora_single_device.yaml"
    assert out == f"Copied tiny/lora_single_device to {copied}\n"
    shipped = recipes_root / "configs/tiny/lora_single_device.yaml"
    first, rest = copied.read_bytes().split(b"\n", 1)
    assert first.decode() == (f"# Copied by `tune cp` from torchtune {torchtune.__version__}: tiny/lora_single_device. "
                              "`tune diff <this file>` shows your changes.")
    assert rest == shipped.read_bytes()


def test_cp_adds_missing_suffix(recipes_root, tmp_path, tune):
    assert tune(["cp", "generate", str(tmp_path / "my_gen")])[0] == 0
    assert (tmp_path / "my_gen.py").read_bytes().split(b"\n", 1)[1] == (recipes_root / "generate.py").read_bytes()
    assert tune(["cp", "tiny/eval", str(tmp_path / "e.yml")])[0] == 0
    assert (tmp_path / "e.yml").is_file()


def test_cp_refuses_to_overwrite_without_force(recipes_root, tmp_path, tune):
    target = tmp_path / "generate.py"
    target.write_text("mine")
    code, _, err = tune(["cp", "generate", str(tmp_path)])
    assert code == 1
    assert err == (
        f"tune: error: {target} already exists; pass --force to overwrite it or "
        "--no-clobber to skip\n"
    )
    assert target.read_text() == "mine"


def test_cp_no_clobber_skips_silently(recipes_root, tmp_path, tune):
    target = tmp_path / "generate.py"
    target.write_text("mine")
    assert tune(["cp", "--no-clobber", "generate", str(target)]) == (0, "", "")
    assert target.read_text() == "mine"


def test_cp_force_overwrites(recipes_root, tmp_path, tune):
    target = tmp_path / "generate.py"
    target.write_text("mine")
    assert tune(["cp", "-f", "generate", str(target)])[0] == 0
    assert target.read_bytes().split(b"\n", 1)[1] == (recipes_root / "generate.py").read_bytes()


def test_cp_force_and_no_clobber_conflict(recipes_root, tmp_path, tune):
    code, _, err = tune(["cp", "-f", "-n", "generate", str(tmp_path)])
    assert code == 2 and "not allowed with argument" in err


def test_cp_make_parents(recipes_root, tmp_path, tune):
    target = tmp_path / "a" / "b" / "gen.py"
    code, _, err = tune(["cp", "generate", str(target)])
    assert code == 1
    assert err == (
        f"tune: error: directory {target.parent} does not exist; pass --make-parents to create it\n"
    )
    assert tune(["cp", "--make-parents", "generate", str(target)])[0] == 0
    assert target.is_file()


def test_cp_unknown_name_lists_recipes_and_configs(recipes_root, tmp_path, tune):
    code, _, err = tune(["cp", "tiny/lora_single", str(tmp_path)])
    assert code == 1
    assert "unknown recipe or config 'tiny/lora_single'; did you mean: " in err
    assert "tiny/lora_single_device" in err


def test_cp_registered_but_missing_file(tmp_path, monkeypatch, tune):
    monkeypatch.setenv(registry.RECIPES_ROOT_ENV, str(tmp_path / "empty"))
    code, _, err = tune(["cp", "generate", str(tmp_path)])
    assert code == 1
    assert "recipe 'generate' is registered but its file" in err and "is missing" in err


def test_cat_prints_config(recipes_root, tune):
    code, out, _ = tune(["cat", "tiny/generate"])
    assert code == 0
    assert out == (recipes_root / "configs/tiny/generate.yaml").read_text()


def test_cat_unknown_config(recipes_root, tune):
    code, _, err = tune(["cat", "tiny/genrate"])
    assert code == 1
    assert "unknown config (no such file or registered name) 'tiny/genrate'" in err
    assert "did you mean: tiny/generate" in err


def test_subprocess_ls_cp_and_errors(recipes_root, tmp_path, tune_subprocess):
    proc = tune_subprocess(["ls", "eleuther_eval"], cwd=tmp_path)
    assert proc.returncode == 0 and "tiny/eval" in proc.stdout
    proc = tune_subprocess(["cp", "tiny/eval", "."], cwd=tmp_path)
    assert proc.returncode == 0 and (tmp_path / "eval.yaml").is_file()
    proc = tune_subprocess(["cp", "tiny/eval", "."], cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "tune: error: eval.yaml already exists; pass --force to overwrite it or --no-clobber "
        "to skip"
    ]
    proc = tune_subprocess(["--version"], cwd=tmp_path)
    assert proc.stdout == f"torchtune {torchtune.__version__}\n"


def test_no_command_is_a_usage_error(tune):
    code, _, err = tune([])
    assert code == 2 and "the following arguments are required: <command>" in err


def test_listing_imports_neither_torch_nor_yaml(tmp_path):
    # `tune ls` must work in the lean install and start fast: no heavy imports.
    proc = subprocess.run(
        [sys.executable, "-c",
         "import sys; from torchtune._cli import main; main(['ls']); "
         "print(sorted(m for m in ('torch', 'yaml') if m in sys.modules))"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "[]"
