"""Families from a model directory, as a new user runs them: a tiny random Gemma 3, SmolLM3,
Qwen3-MoE, gpt-oss and Phi-3-layout (fused qkv_proj and gate_up_proj, as Phi-3 and Phi-4 ship) checkpoint
written by transformers' own classes, `tune run lora_finetune_single_device`
with the tiny config pointed at it, and the output checked in transformers and peft."""

import json
import shutil
from pathlib import Path

import pytest
import torch

from recipe_tests._installed import InstalledTorchtune


@pytest.fixture(scope="module")
def tt(tmp_path_factory) -> InstalledTorchtune:
    return InstalledTorchtune(tmp_path_factory.mktemp("venv") / "venv", extras=("recipes",))


def _model(family: str):
    from transformers import (
        Gemma3ForCausalLM,
        Gemma3TextConfig,
        GptOssConfig,
        GptOssForCausalLM,
        Phi3Config,
        Phi3ForCausalLM,
        Qwen3MoeConfig,
        Qwen3MoeForCausalLM,
        SmolLM3Config,
        SmolLM3ForCausalLM,
    )

    sizes = dict(vocab_size=2048, hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=512, pad_token_id=0, eos_token_id=2, bos_token_id=None)
    torch.manual_seed(0)
    if family == "gemma3":  # local window shorter than the samples; local and global layers
        return Gemma3ForCausalLM(Gemma3TextConfig(**sizes, head_dim=16, sliding_window=16, sliding_window_pattern=2,
                                                  query_pre_attn_scalar=16))
    if family == "qwen3_moe":  # 8 experts, top 2; layer 1 dense
        return Qwen3MoeForCausalLM(Qwen3MoeConfig(**sizes, head_dim=16, moe_intermediate_size=32, num_experts=8,
                                                  num_experts_per_tok=2, norm_topk_prob=True, mlp_only_layers=[1]))
    if family == "phi3":
        return Phi3ForCausalLM(Phi3Config(**sizes))
    if family == "gpt_oss":  # 4 experts, top 2; a window shorter than the samples; YaRN
        return GptOssForCausalLM(GptOssConfig(**sizes, head_dim=16, num_local_experts=4, num_experts_per_tok=2,
                                              sliding_window=16, rope_parameters=dict(
                                                  rope_type="yarn", factor=4.0, original_max_position_embeddings=128,
                                                  rope_theta=150_000.0, truncate=False)))
    return SmolLM3ForCausalLM(SmolLM3Config(**sizes, no_rope_layer_interval=2))  # NoPE on layers 1 and 3


@pytest.mark.parametrize("family", ["gemma3", "smollm3", "qwen3_moe", "phi3", "gpt_oss"])
def test_lora_from_a_model_directory_loads_in_transformers_and_peft(tt, tmp_path, family):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    root = Path(tt.run("python", "-c", "import torchtune; print(torchtune.recipes_root())", cwd=tmp_path).stdout.strip())
    model_dir = tmp_path / family
    _model(family).save_pretrained(model_dir)
    for name in ("tokenizer.json", "tokenizer_config.json", "instructions.jsonl", "instructions_val.jsonl"):
        shutil.copy(root / "assets" / "tiny" / name, model_dir / name)
    out = tmp_path / "out"
    moe = ("model.apply_lora_to_mlp=false", "router_aux_loss_coef=0.01") if family == "qwen3_moe" else ()
    if family == "gpt_oss":  # a LoRA adapter on every expert too
        moe = ("model.apply_lora_to_mlp=true", "router_aux_loss_coef=0.01")
    if family == "phi3":  # the shipped Phi-3/Phi-4 configs' targets: parts of the fused qkv_proj and gate_up_proj
        moe = ("model.lora_attn_modules=[q_proj,v_proj,output_proj]", "model.apply_lora_to_mlp=true")
    tt.run("tune", "run", "lora_finetune_single_device", "--config", "tiny/lora_single_device",
           f"model_dir={model_dir}", f"output_dir={out}", "model.apply_lora_to_output=false", *moe,
           "max_steps_per_epoch=6", "epochs=1", "save_every_n_steps=6", "dtype=fp32", cwd=tmp_path)
    rows = [json.loads(line) for line in (out / "logs" / "metrics.jsonl").read_text().splitlines()]
    logged_aux = [row["router_aux_loss"] for row in rows if "router_aux_loss" in row]
    if family in ("qwen3_moe", "gpt_oss"):  # k = 2 for balanced routing; E * k at most
        assert logged_aux and all(1.0 <= a <= 16.0 for a in logged_aux), logged_aux
    else:
        assert not logged_aux
    final = out / "step_6"  # fp32 (dtype=auto may pick bf16): the parity below is to 1e-4
    assert json.loads((final / "config.json").read_text())["model_type"] == json.loads(
        (model_dir / "config.json").read_text())["model_type"]
    merged = AutoModelForCausalLM.from_pretrained(final, dtype=torch.float32).eval()
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    tokens = torch.randint(1, 2048, (2, 40), generator=torch.Generator().manual_seed(0))  # longer than the window
    with torch.no_grad():
        before = base(tokens).logits
        peft_logits = PeftModel.from_pretrained(base, final / "adapter").eval()(tokens).logits
        merged_logits = merged(tokens).logits
    torch.testing.assert_close(peft_logits, merged_logits, atol=1e-4, rtol=1e-4)
    assert (merged_logits - before).abs().max() > 1e-3  # training changed the model
