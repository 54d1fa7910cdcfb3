"""LoRA on every expert of a mixture-of-experts layer (``apply_lora_to_mlp`` on Qwen3-MoE and
gpt-oss), against peft's LoRA on the expert parameters (``target_parameters``): equal logits and
gradients, a merged checkpoint that transformers loads with the same logits, and an exact reload."""

import json

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, GptOssConfig, GptOssForCausalLM, Qwen3MoeConfig, Qwen3MoeForCausalLM

from torchtune.models import model_from_hf_config
from torchtune.modules.peft import ExpertLoRA, disable_adapter, get_adapter_params, get_adapter_specs
from torchtune.training.checkpointing import HuggingFaceCheckpointer, atomic_directory
from torchtune.training.checkpointing._peft_adapter import adapter_to_peft

VOCAB = 96
SIZES = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
             head_dim=8, max_position_embeddings=64, pad_token_id=0)
FAMILIES = {  # Qwen3-MoE (every layer sparse, as published); gpt-oss (interleaved gate/up, biases)
    "qwen3_moe": lambda: Qwen3MoeForCausalLM(Qwen3MoeConfig(**SIZES, intermediate_size=40, moe_intermediate_size=16,
                                                            num_experts=4, num_experts_per_tok=2)),
    "gpt_oss": lambda: GptOssForCausalLM(GptOssConfig(**SIZES, intermediate_size=16, num_local_experts=4,
                                                      num_experts_per_tok=2, sliding_window=4)),
}
TOKENS = torch.randint(1, VOCAB, (2, 11), generator=torch.Generator().manual_seed(0))
LABELS = torch.randint(0, VOCAB, (2, 11), generator=torch.Generator().manual_seed(1))


@pytest.fixture(params=sorted(FAMILIES))
def trained(request, tmp_path):
    """A checkpoint directory, its checkpointer, and our model with trained-looking expert adapters."""
    torch.manual_seed(0)
    hf = FAMILIES[request.param]()
    with torch.no_grad():
        for p in hf.parameters():
            p.normal_(0.0, 0.2)
    hf.eval().save_pretrained(tmp_path / "src")
    checkpointer = HuggingFaceCheckpointer(tmp_path / "src", tmp_path / "out")
    model = model_from_hf_config(checkpointer.config, lora_attn_modules=["q_proj", "v_proj"], apply_lora_to_mlp=True,
                                 lora_rank=4, lora_alpha=8.0)
    missing, unexpected = model.load_state_dict(checkpointer.load_checkpoint(), strict=False)
    assert not unexpected and all("lora" in k for k in missing)
    with torch.no_grad():
        base_logits = model.eval()(TOKENS)  # adapters start as the identity (B = 0)
        for name, param in model.named_parameters():
            if "lora" in name:
                param.normal_(0.0, 0.3)
    return tmp_path, checkpointer, model, base_logits


def _save(checkpointer, directory, model):
    with atomic_directory(directory) as tmp:
        checkpointer.write_checkpoint(tmp, model.state_dict(), adapter_specs=get_adapter_specs(model))
    return directory


def _hf(path, **kwargs):
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, **kwargs).eval()


def test_expert_adapters_are_built_and_start_as_the_base(trained):
    tmp_path, _, model, base_logits = trained
    experts = [layer.mlp.experts for layer in model.layers if hasattr(layer.mlp, "experts")]
    assert experts and all(isinstance(e.gate_up_proj_lora, ExpertLoRA) and isinstance(e.down_proj_lora, ExpertLoRA)
                           for e in experts)
    assert experts[0].gate_up_proj_lora.lora_a.weight.shape == (4, 4, 32)
    assert experts[0].gate_up_proj_lora.lora_b.weight.shape == (4, 32, 4)
    assert "layers.0.mlp.experts.down_proj_lora.lora_b.weight" in get_adapter_params(model)
    with torch.no_grad(), disable_adapter(model):
        torch.testing.assert_close(model(TOKENS), _hf(tmp_path / "src")(TOKENS).logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(base_logits, _hf(tmp_path / "src")(TOKENS).logits, atol=1e-5, rtol=1e-5)


def test_adapter_loads_in_peft_and_merges(trained):
    tmp_path, checkpointer, model, _ = trained
    out = _save(checkpointer, tmp_path / "out" / "step_1", model)
    config = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert config["target_parameters"] == ["mlp.experts.gate_up_proj", "mlp.experts.down_proj"]
    with torch.no_grad():
        expected = model(TOKENS)
        peft_logits = PeftModel.from_pretrained(_hf(tmp_path / "src"), out / "adapter").eval()(TOKENS).logits
        merged_logits = _hf(out)(TOKENS).logits
    torch.testing.assert_close(peft_logits, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(merged_logits, expected, atol=1e-5, rtol=1e-5)
    adapter = checkpointer.load_adapter(out)  # resume: the adapters come back exactly
    state = model.state_dict()
    assert adapter.keys() == {k for k in state if "lora" in k}
    assert all(torch.equal(adapter[k], state[k]) for k in adapter)


def test_gradients_equal_peft(trained):
    tmp_path, checkpointer, model, _ = trained
    out = _save(checkpointer, tmp_path / "out" / "step_1", model)
    peft_model = PeftModel.from_pretrained(_hf(tmp_path / "src"), out / "adapter", is_trainable=True)
    loss = torch.nn.functional.cross_entropy(model.train()(TOKENS).flatten(0, 1), LABELS.flatten())
    ref = torch.nn.functional.cross_entropy(peft_model(TOKENS).logits.flatten(0, 1), LABELS.flatten())
    loss.backward()
    ref.backward()
    torch.testing.assert_close(loss, ref, atol=1e-5, rtol=1e-5)
    ours = adapter_to_peft({k: p.grad for k, p in get_adapter_params(model).items()}, checkpointer.config)
    theirs = {k.replace(".default", ""): p.grad for k, p in peft_model.named_parameters() if p.requires_grad}
    assert ours.keys() == theirs.keys()
    for key, grad in ours.items():
        torch.testing.assert_close(grad, theirs[key], atol=1e-5, rtol=1e-4, msg=key)


@pytest.mark.parametrize("option", [dict(use_dora=True), dict(lora_dropout=0.1)])
def test_dora_or_dropout_on_experts_is_refused(option):
    config = json.loads(FAMILIES["gpt_oss"]().config.to_json_string())
    with pytest.raises(ValueError, match="gives each expert a LoRA adapter, which supports neither DoRA nor dropout"):
        model_from_hf_config(config, lora_attn_modules=["q_proj"], apply_lora_to_mlp=True, **option)
    model_from_hf_config(config, lora_attn_modules=["q_proj"], apply_lora_to_mlp=False, **option)  # attention only: fine


def test_experts_and_dense_mlp_adapters_of_qwen3_moe_are_refused_before_training():
    """peft maps targets named gate_proj/up_proj/down_proj of a Qwen3-MoE model onto its experts, so
    adapters on a dense layer's MLP beside expert adapters could not be loaded there: refused up front."""
    from torchtune.config import ConfigError
    from torchtune.training.checkpointing import check_save_mappings

    config = json.loads(Qwen3MoeConfig(**SIZES, intermediate_size=40, moe_intermediate_size=16, num_experts=4,
                                       num_experts_per_tok=2, mlp_only_layers=[1]).to_json_string())
    model = model_from_hf_config(config, lora_attn_modules=["q_proj"], apply_lora_to_mlp=True)
    with pytest.raises(ConfigError, match=r"adapters on both the experts and the dense feed-forward layers "
                                          r"\(layers\.1\.mlp\.w1, \.\.\.\).*apply_lora_to_mlp=false"):
        check_save_mappings(model.state_dict(), config, adapter_specs=get_adapter_specs(model))
    model = model_from_hf_config(config, lora_attn_modules=["q_proj"], apply_lora_to_mlp=False)
    check_save_mappings(model.state_dict(), config, adapter_specs=get_adapter_specs(model))
