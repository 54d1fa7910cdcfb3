"""`tune validate` through torchtune.config's load_config + validate."""

import textwrap

import pytest

GOOD = textwrap.dedent(
    """\
    optimizer:
      _component_: torch.optim.SGD
      lr: 0.1
      momentum: 0.9
    """
)


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text(GOOD)
    return path


def test_good_config(config, tune):
    assert tune(["validate", str(config)]) == (0, f"Config {config} is well-formed.\n", "")


def test_registered_name_resolves(recipes_root, tune):
    (recipes_root / "configs/tiny/generate.yaml").write_text(GOOD)
    assert tune(["validate", "tiny/generate"])[:2] == (0, "Config tiny/generate is well-formed.\n")


def test_bad_argument_is_reported(config, tune):
    config.write_text(GOOD.replace("momentum", "momentm"))
    code, out, err = tune(["validate", str(config)])
    assert (code, out) == (1, "")
    assert err.startswith(f"tune: error: {config}: config has 1 problem:\n")
    assert "'optimizer.momentm' is not an argument of torch.optim.SGD" in err
    assert "Traceback" not in err


def test_override_applies(config, tune):
    code, _, err = tune(["validate", str(config), "optimizer.nesterov=true", "optimizer.foo=1"])
    assert code == 1
    assert "'optimizer.foo' is not an argument of torch.optim.SGD" in err
    assert "nesterov" not in err


def test_overrides_after_options(recipes_root, config, tune):
    code, _, err = tune(["validate", str(config), "--recipe", "generate", "optimizer.foo=1"])
    assert code == 1 and "'optimizer.foo' is not an argument" in err
    code, _, err = tune(["validate", str(config), "--bogus"])
    assert code == 2 and "unrecognized arguments: --bogus" in err


def test_component_root_must_be_allowed(config, tune):
    config.write_text("thing:\n  _component_: collections.OrderedDict\n")
    code, _, err = tune(["validate", str(config)])
    assert code == 1 and "collections.OrderedDict" in err
    code, _, _ = tune(["validate", str(config), "--allow-component-root", "collections"])
    assert code == 0


def test_bad_yaml(config, tune):
    config.write_text("a: [1, 2\n")
    code, _, err = tune(["validate", str(config)])
    assert code == 1 and err.startswith(f"tune: error: {config}: ")


def test_unknown_config(tune, tmp_path):
    code, _, err = tune(["validate", str(tmp_path / "missing.yaml")])
    assert code == 1
    assert f"unknown config (no such file or registered name) '{tmp_path / 'missing.yaml'}'" in err


def test_registered_config_checks_its_recipes_known_keys(recipes_root, tune):
    (recipes_root / "configs/tiny/generate.yaml").write_text(GOOD + "epochz: 1\n")
    (recipes_root / "generate.py").write_text('KNOWN_KEYS = ("optimizer", "epochs")\n')
    code, _, err = tune(["validate", "tiny/generate"])
    assert code == 1
    assert "unknown key 'epochz'; this recipe does not read it" in err


def test_recipe_flag_for_a_config_path(config, tmp_path, tune):
    recipe = tmp_path / "mine.py"
    recipe.write_text('import os\nKNOWN_KEYS = ["model"]\n')
    code, _, err = tune(["validate", str(config), "--recipe", str(recipe)])
    assert code == 1 and "unknown key 'optimizer'" in err
    recipe.write_text("import os\n")  # no KNOWN_KEYS: top-level keys are not checked
    assert tune(["validate", str(config), "--recipe", str(recipe)])[0] == 0


@pytest.mark.parametrize("source, message", [
    ("KNOWN_KEYS = tuple(['a'])\n", "KNOWN_KEYS must be a literal of strings"),
    ("KNOWN_KEYS = (1, 2)\n", "KNOWN_KEYS must be a literal of strings"),
    ("def broken(:\n", "cannot parse recipe"),
])
def test_bad_known_keys(source, message, config, tmp_path, tune):
    recipe = tmp_path / "mine.py"
    recipe.write_text(source)
    code, _, err = tune(["validate", str(config), "--recipe", str(recipe)])
    assert code == 1 and message in err and len(err.splitlines()) == 1


def test_unknown_recipe_flag(config, tune):
    code, _, err = tune(["validate", str(config), "--recipe", "genrate"])
    assert code == 1 and "unknown recipe 'genrate'; did you mean: generate" in err


# `tune validate` with model files: the model is built on the meta device and checked against the
# checkpoint (a transformers-made directory), the LoRA targets against its layout, the files exist.
def _model_dir(tmp_path, cls_name="Llama", **sizes):
    import json

    import torch
    import transformers
    from tokenizers import Tokenizer, models

    torch.manual_seed(0)
    config = getattr(transformers, f"{cls_name}Config")(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=4, max_position_embeddings=64, **sizes)
    directory = tmp_path / cls_name.lower()
    getattr(transformers, f"{cls_name}ForCausalLM")(config).save_pretrained(directory)
    Tokenizer(models.WordLevel({"a": 0, "<unk>": 1}, unk_token="<unk>")).save(str(directory / "tokenizer.json"))
    (directory / "tokenizer_config.json").write_text(json.dumps({"eos_token": "a"}))
    data = tmp_path / "train.jsonl"
    data.write_text('{"instruction": "x", "input": "", "output": "y"}\n')
    return directory, data


LORA_CONFIG = """\
model_dir: {model_dir}
model:
  lora_attn_modules: [q_proj, v_proj]
  lora_rank: 2
  lora_alpha: 4
tokenizer:
  _component_: torchtune.modules.tokenizers.HFModelTokenizer
  tokenizer_json_path: ${{model_dir}}/tokenizer.json
  tokenizer_config_json_path: ${{model_dir}}/tokenizer_config.json
checkpointer:
  _component_: torchtune.training.checkpointing.HuggingFaceCheckpointer
  checkpoint_dir: ${{model_dir}}
  output_dir: {out}
dataset:
  _component_: torchtune.datasets.alpaca_dataset
  source: json
  data_files: {data}
"""


def test_model_files_are_checked_when_present(tmp_path, tune):
    model_dir, data = _model_dir(tmp_path)
    config = tmp_path / "mine.yaml"
    config.write_text(LORA_CONFIG.format(model_dir=model_dir, out=tmp_path / "out", data=data))
    code, out, err = tune(["validate", str(config)])  # (err holds transformers' save progress bar)
    assert code == 0 and "tune: error" not in err
    assert out.splitlines()[1] == (f"Against {model_dir}: the model builds, its 21 checkpoint tensors fit and every "
                                   "tensor a save writes has a name in the checkpoint's layout.")
    # another size than the checkpoint
    code, _, err = tune(["validate", str(config), "model._component_=torchtune.models.llama3.lora_llama3",
                         "model.vocab_size=64", "model.num_layers=2", "model.num_heads=4", "model.num_kv_heads=4",
                         "model.embed_dim=64", "model.intermediate_dim=64", "model.max_seq_len=64"])
    assert code == 1 and "is [64, 32] in the checkpoint but [64, 64] in the model" in err
    # a missing tokenizer file and a missing data file
    code, _, err = tune(["validate", str(config), f"tokenizer.tokenizer_json_path={tmp_path / 'none.json'}"])
    assert code == 1 and f"tokenizer.tokenizer_json_path='{tmp_path / 'none.json'}' does not exist" in err
    code, _, err = tune(["validate", str(config), f"dataset.data_files={tmp_path / 'none.jsonl'}"])
    assert code == 1 and "does not exist" in err and "none.jsonl" in err


def test_adapters_the_layout_cannot_hold_are_found_by_validate(tmp_path, tune):
    """Phi-3 fuses q/k/v: LoRA on some of them is written fused and passes; DoRA on some of them
    (a magnitude per row of the fused weight) cannot be written and is found before any training."""
    model_dir, data = _model_dir(tmp_path, "Phi3", pad_token_id=0, bos_token_id=0, eos_token_id=0)
    config = tmp_path / "mine.yaml"
    config.write_text(LORA_CONFIG.format(model_dir=model_dir, out=tmp_path / "out", data=data))
    code, out, err = tune(["validate", str(config)])
    assert code == 0 and "every tensor a save writes has a name in the checkpoint's layout" in out, err
    code, out, err = tune(["validate", str(config), "model.use_dora=true"])
    assert (code, out) == (1, "")
    assert "DoRA on 'model.layers.0.self_attn.qkv_proj'" in err and "Traceback" not in err, err


# Distillation configs: the teacher (teacher_checkpointer) is checked too, its vocabulary first.
def _teacher_dir(tmp_path, **sizes):
    import torch
    import transformers

    torch.manual_seed(1)
    config = transformers.LlamaConfig(**{
        "vocab_size": 64, "hidden_size": 48, "intermediate_size": 96, "num_hidden_layers": 3,
        "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 64, **sizes})
    directory = tmp_path / f"teacher_v{config.vocab_size}"
    transformers.LlamaForCausalLM(config).save_pretrained(directory)
    return directory


def _kd_config(tmp_path, teacher):
    model_dir, data = _model_dir(tmp_path)
    config = tmp_path / "kd.yaml"
    config.write_text(LORA_CONFIG.format(model_dir=model_dir, out=tmp_path / "out", data=data) + f"""\
teacher_checkpointer:
  _component_: torchtune.training.checkpointing.HuggingFaceCheckpointer
  checkpoint_dir: {teacher}
  output_dir: {tmp_path / "out"}
""")
    return config, model_dir


def test_distillation_teacher_is_checked(tmp_path, tune):
    teacher = _teacher_dir(tmp_path)
    config, _ = _kd_config(tmp_path, teacher)
    code, out, _ = tune(["validate", str(config)])
    assert code == 0
    assert out.splitlines()[1].endswith("; the teacher shares the student's vocabulary, builds and its 30 checkpoint "
                                        "tensors fit.")


def test_distillation_teacher_of_another_vocabulary_is_named(tmp_path, tune):
    teacher = _teacher_dir(tmp_path, vocab_size=128)
    config, model_dir = _kd_config(tmp_path, teacher)
    code, _, err = tune(["validate", str(config)])
    assert code == 1
    assert (f"teacher_checkpointer: the teacher's vocab_size=128 (config of {teacher}) differs from the student's "
            f"vocab_size=64 (checkpointer: config of {model_dir})") in err
    assert err.count("tune: error") == 1  # (err also holds transformers' save progress bars)
