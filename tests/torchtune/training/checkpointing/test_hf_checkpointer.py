"""HuggingFaceCheckpointer against transformers (model files) and peft (adapters)."""

import json

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

from torchtune.models import model_from_hf_config
from torchtune.modules.peft import LoRALinear, get_adapter_specs
from torchtune.training.checkpointing import (
    Checkpointer,
    HuggingFaceCheckpointer,
    atomic_directory,
    is_complete_checkpoint,
    save_peft_adapter,
)
from torchtune.training.checkpointing._peft_adapter import adapter_to_peft, peft_to_adapter

SIZES = dict(vocab_size=96, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-5)
TOKENS = torch.randint(0, 96, (2, 11), generator=torch.Generator().manual_seed(0))


def _hf_model(family: str):
    torch.manual_seed(0)
    if family == "llama":
        model = LlamaForCausalLM(LlamaConfig(**SIZES, tie_word_embeddings=False, rope_theta=10000.0))
    else:
        model = Qwen2ForCausalLM(Qwen2Config(**SIZES, tie_word_embeddings=True))
    with torch.no_grad():  # non-trivial norms
        for name, param in model.named_parameters():
            if name.endswith("norm.weight"):
                param.add_(0.1 * torch.randn_like(param))
    return model.eval()


def _hf_logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(TOKENS).logits


def _ours(checkpointer, **lora):
    model = model_from_hf_config(checkpointer.config, **lora)
    missing, unexpected = model.load_state_dict(checkpointer.load_checkpoint(), strict=not lora)
    assert not unexpected and all(k.endswith(("lora_a.weight", "lora_b.weight", "magnitude")) for k in missing)
    return model.eval()


def _save(checkpointer, directory, state_dict, **kwargs):
    """Write a checkpoint as recipes do: write_checkpoint inside an atomic directory."""
    with atomic_directory(directory) as tmp:
        checkpointer.write_checkpoint(tmp, state_dict, **kwargs)
    return directory


def _logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(TOKENS)


@pytest.mark.parametrize("family, shard", [("llama", None), ("llama", "12KB"), ("qwen2", None)])
def test_transformers_files_round_trip(tmp_path, family, shard):
    hf = _hf_model(family)
    src = tmp_path / "src"
    hf.save_pretrained(src, **({"max_shard_size": shard} if shard else {}))
    hf.generation_config.save_pretrained(src)
    (src / "tokenizer.json").write_text("{}")
    src_files = sorted(p.name for p in src.iterdir())
    (src / "train.jsonl").write_text("{}\n")  # a user's data file beside the model: not a model file
    checkpointer = HuggingFaceCheckpointer(src, tmp_path / "out")
    assert len(checkpointer.checkpoint_files) == (1 if shard is None else len(list(src.glob("*.safetensors"))) )
    assert shard is None or len(checkpointer.checkpoint_files) > 1
    model = _ours(checkpointer)
    torch.testing.assert_close(_logits(model), _hf_logits(hf), rtol=1e-5, atol=1e-5)

    with torch.no_grad():  # change the weights so the written files must come from our state dict
        for param in model.parameters():
            param.mul_(1.01)
    assert isinstance(checkpointer, Checkpointer)
    out = _save(checkpointer, tmp_path / "out" / "epoch_0", model.state_dict())
    assert is_complete_checkpoint(out)
    assert sorted(p.name for p in out.iterdir()) == sorted(src_files + ["CHECKPOINT_COMPLETE"])
    reloaded = AutoModelForCausalLM.from_pretrained(out).eval()
    torch.testing.assert_close(_hf_logits(reloaded), _logits(model), rtol=1e-5, atol=1e-5)
    resumed = checkpointer.load_checkpoint(out)  # a written checkpoint reads back (full fine-tuning resume)
    assert resumed.keys() == model.state_dict().keys()
    assert all(torch.equal(resumed[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("use_dora", [False, True])
def test_adapter_loads_in_peft(tmp_path, use_dora):
    hf = _hf_model("llama")
    hf.save_pretrained(tmp_path / "src")
    checkpointer = HuggingFaceCheckpointer(tmp_path / "src", tmp_path / "out")
    lora = dict(lora_attn_modules=["q_proj", "v_proj", "output_proj"], apply_lora_to_mlp=True,
                lora_rank=2, lora_alpha=8.0, use_dora=use_dora)
    model = _ours(checkpointer, **lora)
    torch.manual_seed(1)
    with torch.no_grad():  # trained-looking adapters
        for name, param in model.named_parameters():
            if name.endswith(("lora_a.weight", "lora_b.weight")):
                param.copy_(0.3 * torch.randn_like(param))
            elif name.endswith("magnitude"):
                param.mul_(1 + 0.1 * torch.rand_like(param))
    out = _save(checkpointer, tmp_path / "out" / "step_3", model.state_dict(), adapter_specs=get_adapter_specs(model))
    config = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert config["target_modules"] == ["down_proj", "gate_proj", "o_proj", "q_proj", "up_proj", "v_proj"]
    assert (config["r"], config["lora_alpha"], config["use_dora"]) == (2, 8.0, use_dora)
    expected = _logits(model)
    peft_model = PeftModel.from_pretrained(_hf_model("llama"), out / "adapter").eval()
    torch.testing.assert_close(_hf_logits(peft_model), expected, rtol=1e-5, atol=1e-5)
    merged = AutoModelForCausalLM.from_pretrained(out).eval()
    torch.testing.assert_close(_hf_logits(merged), expected, rtol=1e-4, atol=1e-4)
    adapter = checkpointer.load_adapter(out)
    state = model.state_dict()
    assert adapter.keys() == {k for k in state if k.endswith(("lora_a.weight", "lora_b.weight", "magnitude"))}
    assert all(torch.equal(adapter[k], state[k]) for k in adapter)


def test_adapters_of_different_ranks_and_alphas_load_in_peft(tmp_path):
    hf = _hf_model("llama")
    hf.save_pretrained(tmp_path / "src")
    checkpointer = HuggingFaceCheckpointer(tmp_path / "src", tmp_path / "out")
    model = _ours(checkpointer, lora_attn_modules=["q_proj", "v_proj"], lora_rank=2, lora_alpha=8.0)
    torch.manual_seed(2)
    for layer in model.layers:  # layer 0's v_proj: another rank and alpha
        old = layer.attn.v_proj
        layer.attn.v_proj = LoRALinear(old.in_dim, old.out_dim, rank=4, alpha=3.0)
        layer.attn.v_proj.weight.data.copy_(old.weight)
        break
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(("lora_a.weight", "lora_b.weight")):
                param.copy_(0.3 * torch.randn_like(param))
    out = _save(checkpointer, tmp_path / "out" / "s", model.state_dict(), adapter_specs=get_adapter_specs(model))
    config = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert (config["r"], config["lora_alpha"]) == (2, 8.0)
    assert config["rank_pattern"] == {"model.layers.0.self_attn.v_proj": 4}
    assert config["alpha_pattern"] == {"model.layers.0.self_attn.v_proj": 3.0}
    expected = _logits(model)
    peft_model = PeftModel.from_pretrained(_hf_model("llama"), out / "adapter").eval()
    torch.testing.assert_close(_hf_logits(peft_model), expected, rtol=1e-5, atol=1e-5)
    merged = AutoModelForCausalLM.from_pretrained(out).eval()
    torch.testing.assert_close(_hf_logits(merged), expected, rtol=1e-4, atol=1e-4)


def test_deprecated_save_checkpoint_writes_the_same_files(tmp_path):
    _hf_model("llama").save_pretrained(tmp_path / "src")
    checkpointer = HuggingFaceCheckpointer(tmp_path / "src", tmp_path / "out")
    model = _ours(checkpointer, lora_attn_modules=["q_proj"], lora_rank=2, lora_alpha=4.0)
    with pytest.warns(DeprecationWarning, match="save_checkpoint is deprecated"):
        old = checkpointer.save_checkpoint(model.state_dict(), "old", lora_alpha=4.0)
    new = _save(checkpointer, tmp_path / "out" / "new", model.state_dict(), adapter_specs=get_adapter_specs(model))
    for name in ("model.safetensors", "adapter/adapter_model.safetensors", "adapter/adapter_config.json"):
        assert (old / name).read_bytes() == (new / name).read_bytes(), name


def test_adapter_only_and_bad_inputs(tmp_path):
    _hf_model("llama").save_pretrained(tmp_path / "src")
    checkpointer = HuggingFaceCheckpointer(tmp_path / "src", tmp_path / "out")
    model = _ours(checkpointer, lora_attn_modules=["q_proj"], lora_rank=2, lora_alpha=4.0)
    state = model.state_dict()
    out = _save(checkpointer, tmp_path / "out" / "adapter", state, adapter_specs=get_adapter_specs(model), adapter_only=True)
    assert not list(out.glob("model*.safetensors"))
    with pytest.raises(FileNotFoundError, match=r"no \*.safetensors weights found"):
        HuggingFaceCheckpointer(out, tmp_path / "o2")  # the adapter is not mistaken for model weights
    assert set(load_file(out / "adapter_model.safetensors")) == {
        f"base_model.model.model.layers.{i}.self_attn.q_proj.lora_{ab}.weight" for i in range(2) for ab in "AB"
    }
    with pytest.raises(ValueError, match="no alpha for the adapter of 'layers.0.attn.q_proj': pass adapter_specs="):
        _save(checkpointer, tmp_path / "out" / "x", state)
    base = {k: v for k, v in state.items() if "lora" not in k}
    with pytest.raises(ValueError, match="adapter_only=True but the state dict holds no adapter weights"):
        _save(checkpointer, tmp_path / "out" / "x", base, adapter_only=True)
    assert not (tmp_path / "out" / "x").exists()
    with pytest.raises(FileNotFoundError, match="config.json not found in checkpoint_dir="):
        HuggingFaceCheckpointer(tmp_path / "out", tmp_path / "o2")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(FileNotFoundError, match=r"no \*.safetensors weights found"):
        HuggingFaceCheckpointer(tmp_path / "empty", tmp_path / "o2")
    with pytest.raises(FileNotFoundError, match=r"checkpoint_files \['nope.safetensors'\] not found"):
        HuggingFaceCheckpointer(tmp_path / "src", tmp_path / "o2", checkpoint_files=["nope.safetensors"])
    (tmp_path / "empty" / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="model_type is missing from"):
        HuggingFaceCheckpointer(tmp_path / "empty", tmp_path / "o2")
    with pytest.raises(FileNotFoundError, match="adapter_model.safetensors not found in"):
        checkpointer.load_adapter(tmp_path / "src")


def test_peft_key_errors(tmp_path):
    config = {"model_type": "llama"}
    with pytest.raises(ValueError, match=r"key='model.layers.0.q.weight' is not a peft LoRA key"):
        peft_to_adapter({"model.layers.0.q.weight": torch.ones(1)}, config)
    with pytest.raises(ValueError, match="holds no lora_a/lora_b weights; nothing to write"):
        save_peft_adapter(tmp_path, {}, config, lora_alpha=1.0)
    with pytest.raises(ValueError, match="no alpha for the adapter of 'layers.0.attn.q_proj'"):
        save_peft_adapter(tmp_path, {"layers.0.attn.q_proj.lora_a.weight": torch.ones(1, 4)}, config)
    with pytest.raises(ValueError, match=r"key='layers.0.attn.q_proj.weight' is not an adapter key"):
        adapter_to_peft({"layers.0.attn.q_proj.weight": torch.ones(1)}, config)


def _phi3_dir(tmp_path):
    from transformers import Phi3Config, Phi3ForCausalLM

    torch.manual_seed(0)
    hf = Phi3ForCausalLM(Phi3Config(**SIZES, tie_word_embeddings=False, pad_token_id=0)).eval()
    hf.save_pretrained(tmp_path / "src")
    return tmp_path / "src"


def _phi3_hf(src):
    from transformers import Phi3ForCausalLM

    return Phi3ForCausalLM.from_pretrained(src).eval()


def _train_looking(model, seed):
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(("lora_a.weight", "lora_b.weight")):
                param.copy_(0.3 * torch.randn_like(param))
            elif name.endswith("magnitude"):
                param.mul_(1 + 0.1 * torch.rand_like(param))


@pytest.mark.parametrize("targets, use_dora", [
    (["q_proj", "v_proj", "output_proj"], False),  # the shipped Phi configs: parts of qkv_proj
    (["k_proj"], False),
    (["q_proj", "k_proj", "v_proj"], True),  # DoRA needs every part of a fused module
])
def test_adapters_on_a_fused_layout_load_in_peft(tmp_path, targets, use_dora):
    """Phi-3's layout fuses q/k/v into qkv_proj and gate/up into gate_up_proj: our per-part adapters
    are written as one peft adapter per fused module, which peft loads with equal logits."""
    src = _phi3_dir(tmp_path)
    checkpointer = HuggingFaceCheckpointer(src, tmp_path / "out")
    model = _ours(checkpointer, lora_attn_modules=targets, apply_lora_to_mlp=True, lora_rank=2, lora_alpha=8.0,
                  use_dora=use_dora)
    _train_looking(model, seed=3)
    out = _save(checkpointer, tmp_path / "out" / "step_1", model.state_dict(), adapter_specs=get_adapter_specs(model))
    config = json.loads((out / "adapter" / "adapter_config.json").read_text())
    expected_targets = {"q_proj": "qkv_proj", "k_proj": "qkv_proj", "v_proj": "qkv_proj", "output_proj": "o_proj"}
    assert config["target_modules"] == sorted({expected_targets[t] for t in targets} | {"gate_up_proj", "down_proj"})
    expected = _logits(model)
    peft_model = PeftModel.from_pretrained(_phi3_hf(src), out / "adapter").eval()
    torch.testing.assert_close(_hf_logits(peft_model), expected, rtol=1e-5, atol=1e-5)
    merged = AutoModelForCausalLM.from_pretrained(out).eval()
    torch.testing.assert_close(_hf_logits(merged), expected, rtol=1e-4, atol=1e-4)
    adapter = checkpointer.load_adapter(out)  # resume: each part gets back exactly its own adapter
    state = model.state_dict()
    assert adapter.keys() == {k for k in state if k.endswith(("lora_a.weight", "lora_b.weight", "magnitude"))}
    assert all(torch.equal(adapter[k], state[k]) for k in adapter)


def test_a_fused_peft_adapter_from_elsewhere_loads_into_our_parts(tmp_path):
    """An adapter that peft itself made on qkv_proj / gate_up_proj (no torchtune metadata) loads into
    per-part adapters of the fused rank, with peft's logits."""
    from peft import LoraConfig, get_peft_model

    src = _phi3_dir(tmp_path)
    peft_model = get_peft_model(_phi3_hf(src), LoraConfig(r=2, lora_alpha=4.0, target_modules=["qkv_proj", "gate_up_proj"]))
    torch.manual_seed(4)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_" in name:
                param.copy_(0.3 * torch.randn_like(param))
    peft_model.save_pretrained(tmp_path / "peft")
    expected = _hf_logits(peft_model.eval())
    checkpointer = HuggingFaceCheckpointer(src, tmp_path / "out")
    model = _ours(checkpointer, lora_attn_modules=["q_proj", "k_proj", "v_proj"], apply_lora_to_mlp=True,
                  lora_rank=2, lora_alpha=4.0)
    adapter = checkpointer.load_adapter(tmp_path / "peft")
    assert not [k for k in adapter if ".w2." in k]  # down_proj was not a target
    missing, unexpected = model.load_state_dict(adapter, strict=False)
    assert not unexpected and not [k for k in missing if "lora" in k and ".w2." not in k]
    torch.testing.assert_close(_logits(model.eval()), expected, rtol=1e-5, atol=1e-5)


def test_fused_parts_with_different_ranks_and_alphas_load_in_peft(tmp_path):
    src = _phi3_dir(tmp_path)
    checkpointer = HuggingFaceCheckpointer(src, tmp_path / "out")
    model = _ours(checkpointer, lora_attn_modules=["q_proj", "v_proj"], lora_rank=2, lora_alpha=8.0)
    old = model.layers[0].attn.v_proj  # one part with another rank and alpha: its B is rescaled into the fused B
    model.layers[0].attn.v_proj = LoRALinear(old.in_dim, old.out_dim, rank=4, alpha=3.0)
    model.layers[0].attn.v_proj.weight.data.copy_(old.weight)
    _train_looking(model, seed=5)
    out = _save(checkpointer, tmp_path / "out" / "s", model.state_dict(), adapter_specs=get_adapter_specs(model))
    config = json.loads((out / "adapter" / "adapter_config.json").read_text())
    # layer 0: ranks 2 + 4 at the first part's alpha / rank = 4; layer 1: ranks 2 + 2
    modules = [f"model.layers.{i}.self_attn.qkv_proj" for i in range(2)]
    assert [(config["rank_pattern"].get(m, config["r"]), config["alpha_pattern"].get(m, config["lora_alpha"]))
            for m in modules] == [(6, 24.0), (4, 16.0)]
    expected = _logits(model)
    peft_model = PeftModel.from_pretrained(_phi3_hf(src), out / "adapter").eval()
    torch.testing.assert_close(_hf_logits(peft_model), expected, rtol=1e-5, atol=1e-5)
    adapter = checkpointer.load_adapter(out)
    state = model.state_dict()
    for key in adapter:  # the rescaled part comes back up to rounding, the others exactly
        torch.testing.assert_close(adapter[key], state[key], rtol=1e-6, atol=0)
        assert "layers.0.attn.v_proj.lora_b" in key or torch.equal(adapter[key], state[key]), key
