"""`tune diff`: compare a user's copy with the installed recipe or config."""

import torchtune

LABEL = f"torchtune {torchtune.__version__}"


def test_diff_of_edited_config_copy(recipes_root, tmp_path, tune):
    assert tune(["cp", "tiny/lora_single_device", str(tmp_path)])[0] == 0
    copy = tmp_path / "lora_single_device.yaml"
    copy.write_text(copy.read_text().replace("batch_size: 2", "batch_size: 8"))
    code, out, err = tune(["diff", str(copy)])
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        f"--- {LABEL}: tiny/lora_single_device",
        f"+++ {copy}",
        "@@ -1,3 +1,3 @@",
        " model:",
        "   name: tiny  # tiny/lora_single_device",
        "-batch_size: 2",
        "+batch_size: 8",
    ]


def test_identical_copy(recipes_root, tmp_path, tune):
    tune(["cp", "generate", str(tmp_path)])
    code, out, _ = tune(["diff", str(tmp_path / "generate.py")])
    assert (code, out) == (0, f"{tmp_path / 'generate.py'} is identical to {LABEL}: generate\n")


def test_renamed_copy_needs_against(recipes_root, tmp_path, tune):
    mine = tmp_path / "my_gen.yaml"
    mine.write_text("model:\n  name: tiny  # tiny/generate\nbatch_size: 2")
    code, _, err = tune(["diff", str(mine)])
    assert (code, err) == (
        1, "tune: error: no recipe or config file is called my_gen.yaml; pass --against "
        "<recipe|config>\n",
    )
    code, out, _ = tune(["diff", str(mine), "--against", "tiny/generate"])
    assert code == 0
    assert out.splitlines()[-3:] == [
        "-batch_size: 2",
        "+batch_size: 2",
        "\\ No newline at end of file",
    ]


def test_ambiguous_file_name(recipes_root, tmp_path, tune):
    mine = tmp_path / "7B_lora.yaml"
    mine.write_text("x: 1\n")
    code, _, err = tune(["diff", str(mine)])
    assert code == 1
    assert err == (
        "tune: error: 7B_lora.yaml matches several configs (llama2/7B_lora, mistral/7B_lora, "
        "qwen2_5/7B_lora, gemma/7B_lora); pass --against <recipe|config>\n"
    )


def test_against_unknown_name_lists_close_matches(recipes_root, tmp_path, tune):
    mine = tmp_path / "x.yaml"
    mine.write_text("x: 1\n")
    code, _, err = tune(["diff", str(mine), "--against", "tiny/evl"])
    assert code == 1 and "unknown recipe or config 'tiny/evl'; did you mean: tiny/eval" in err


def test_missing_copy(recipes_root, tmp_path, tune):
    code, _, err = tune(["diff", str(tmp_path / "nope.yaml")])
    assert (code, err) == (1, f"tune: error: {tmp_path / 'nope.yaml'} does not exist\n")


def test_renamed_copy_is_found_from_its_cp_header(recipes_root, tmp_path, tune):
    """The user guide's sequence: `tune cp lora_finetune_single_device my_lora.py`, edit, `tune diff my_lora.py`."""
    mine = tmp_path / "my_lora.py"
    assert tune(["cp", "lora_finetune_single_device", str(mine)])[0] == 0
    code, out, _ = tune(["diff", str(mine)])
    assert (code, out) == (0, f"{mine} is identical to {LABEL}: lora_finetune_single_device\n")
    mine.write_text(mine.read_text() + "# my change\n")
    code, out, err = tune(["diff", str(mine)])
    assert (code, err) == (0, "")
    assert out.startswith(f"--- {LABEL}: lora_finetune_single_device\n+++ {mine}\n")
    assert out.splitlines()[-1] == "+# my change"
