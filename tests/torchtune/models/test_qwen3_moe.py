"""Qwen3-MoE against transformers' Qwen3MoeForCausalLM on tiny random checkpoints made with
Qwen3MoeConfig (8 experts, top 2; a dense layer via mlp_only_layers; decoder_sparse_step 2), the
checkpoint-file layout (one tensor per expert) and its load-balancing loss."""

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, Qwen3MoeConfig, Qwen3MoeForCausalLM

from tests.torchtune.models import _family_testing as ft
from torchtune.models import hf_to_tune, model_from_hf_config, tune_to_hf
from torchtune.models.qwen3_moe import lora_qwen3_moe, qwen3_moe, qwen3_moe_235b_a22b, qwen3_moe_30b_a3b
from torchtune.modules import FeedForward, MoE, load_balancing_loss

VOCAB = 96
TINY = dict(
    vocab_size=VOCAB, hidden_size=32, intermediate_size=40, moe_intermediate_size=16, num_hidden_layers=3,
    num_attention_heads=4, num_key_value_heads=2, head_dim=8, num_experts=8, num_experts_per_tok=2,
    max_position_embeddings=64, rms_norm_eps=1e-6, pad_token_id=0,
)
VARIANTS = {
    "normed_dense_layer": dict(TINY, norm_topk_prob=True, mlp_only_layers=[1]),
    "unnormed_sparse_step_2": dict(TINY, norm_topk_prob=False, decoder_sparse_step=2, tie_word_embeddings=True),
}


@pytest.fixture(params=sorted(VARIANTS))
def pair(request):
    return ft.make_pair(Qwen3MoeConfig(**VARIANTS[request.param]), Qwen3MoeForCausalLM)


def test_layer_layout():
    _, ours, _ = ft.make_pair(Qwen3MoeConfig(**VARIANTS["normed_dense_layer"]), Qwen3MoeForCausalLM)
    assert [type(layer.mlp) for layer in ours.layers] == [MoE, FeedForward, MoE]
    assert ours.layers[0].mlp.router.norm_topk_prob and ours.layers[0].mlp.experts.gate_up_proj.shape == (8, 32, 32)
    _, ours, _ = ft.make_pair(Qwen3MoeConfig(**VARIANTS["unnormed_sparse_step_2"]), Qwen3MoeForCausalLM)
    assert [type(layer.mlp) for layer in ours.layers] == [FeedForward, MoE, FeedForward]


def test_padded_logits_match_transformers(pair):
    hf, ours, _ = pair
    ft.check_padded_logits(hf, ours, VOCAB)


def test_builder_matches_transformers():
    hf, _, config = ft.make_pair(Qwen3MoeConfig(**VARIANTS["normed_dense_layer"]), Qwen3MoeForCausalLM)
    ours = qwen3_moe(vocab_size=VOCAB, num_layers=3, num_heads=4, num_kv_heads=2, head_dim=8, embed_dim=32,
                     num_experts=8, num_experts_per_tok=2, moe_intermediate_dim=16, intermediate_dim=40,
                     mlp_only_layers=[1], max_seq_len=64, rope_base=config["rope_parameters"]["rope_theta"]).eval()
    ours.load_state_dict(hf_to_tune(hf.state_dict(), config))
    ft.check_padded_logits(hf, ours, VOCAB)


def test_gradients_match_transformers(pair):
    hf, ours, config = pair
    ft.check_gradients(hf, ours, config, VOCAB)


def test_padding_free_rows_match_each_document_alone(pair):
    hf, ours, _ = pair
    ft.check_padding_free(hf, ours, VOCAB)


def test_kv_cache_decoding_matches_transformers(pair):
    hf, ours, _ = pair
    ft.check_kv_cache(hf, ours, VOCAB)


def test_greedy_generation_matches_transformers(pair):
    hf, ours, _ = pair
    ft.check_greedy_generation(hf, ours)


def test_load_balancing_loss_matches_transformers(pair):
    hf, ours, config = pair
    tokens, is_real = ft.padded_batch(VOCAB)
    position_ids = (is_real.long().cumsum(-1) - 1).clamp(min=0)
    mask = torch.tril(torch.ones(11, 11, dtype=torch.bool))[None] & is_real[:, None, :]
    with torch.no_grad():
        ours(tokens, mask=mask, input_pos=position_ids)
        expected = hf(input_ids=tokens, attention_mask=is_real.long(), position_ids=position_ids,
                      output_router_logits=True).aux_loss
    torch.testing.assert_close(load_balancing_loss(ours, is_real), expected)


def test_checkpoint_files_hold_one_tensor_per_expert(pair, tmp_path):
    """save_pretrained writes experts one by one; we stack them, and write them back the same way."""
    hf, ours, config = pair
    hf.save_pretrained(tmp_path)
    on_disk = load_file(tmp_path / "model.safetensors")
    assert "model.layers.0.mlp.experts.7.down_proj.weight" in on_disk or config.get("decoder_sparse_step") == 2
    tune = hf_to_tune(on_disk, config)
    assert all(torch.equal(tune[k], v) for k, v in ours.state_dict().items())
    back = tune_to_hf(tune, config)
    assert back.keys() == on_disk.keys() - ({"lm_head.weight"} if config["tie_word_embeddings"] else set())
    assert all(torch.equal(back[k], on_disk[k]) for k in back)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.float32)
    assert all(torch.equal(a, b) for a, b in zip(reloaded.state_dict().values(), hf.state_dict().values()))


def test_expert_count_or_shape_disagreeing_with_config_names_the_tensor(tmp_path):
    hf, _, config = ft.make_pair(Qwen3MoeConfig(**VARIANTS["normed_dense_layer"]), Qwen3MoeForCausalLM)
    hf.save_pretrained(tmp_path)
    on_disk = load_file(tmp_path / "model.safetensors")
    fewer = {k: v for k, v in on_disk.items() if ".experts.7." not in k}
    with pytest.raises(ValueError, match=r"model\.layers\.0\.mlp\.experts\.\*\.gate_proj\.weight: experts \[7\] "
                                         r"missing \(config\.json has num_experts=8\)"):
        hf_to_tune(fewer, config)
    with pytest.raises(ValueError, match=r"model\.layers\.0\.mlp\.experts\.3\.up_proj\.weight has shape \[16, 33\] "
                                         r"but config\.json \(num_experts=8, moe_intermediate_size=16, "
                                         r"hidden_size=32\) implies \[16, 32\]"):
        hf_to_tune({**on_disk, "model.layers.0.mlp.experts.3.up_proj.weight": torch.zeros(16, 33)}, config)
    with pytest.raises(ValueError, match=r"expert index 8 but config\.json has num_experts=8"):
        hf_to_tune({**on_disk, "model.layers.0.mlp.experts.8.up_proj.weight": torch.zeros(16, 32)}, config)
    fused = dict(hf.state_dict())
    fused["model.layers.2.mlp.experts.down_proj"] = torch.zeros(6, 32, 16)
    with pytest.raises(ValueError, match=r"model\.layers\.2\.mlp\.experts\.down_proj has shape \[6, 32, 16\] but "
                                         r".*implies \[8, 32, 16\]"):
        hf_to_tune(fused, config)


# Published parameter counts of Qwen/Qwen3-30B-A3B and Qwen/Qwen3-235B-A22B (model cards: 30.5B, 235B)
PUBLISHED = {
    qwen3_moe_30b_a3b: (dict(hidden_size=2048, intermediate_size=6144, moe_intermediate_size=768,
                             num_hidden_layers=48, num_attention_heads=32), 30_532_122_624),
    qwen3_moe_235b_a22b: (dict(hidden_size=4096, intermediate_size=12_288, moe_intermediate_size=1536,
                               num_hidden_layers=94, num_attention_heads=64), 235_093_634_560),
}


@pytest.mark.parametrize("preset", list(PUBLISHED), ids=lambda f: f.__name__)
def test_preset_matches_published_count(preset):
    sizes, count = PUBLISHED[preset]
    hf_config = Qwen3MoeConfig(vocab_size=151_936, num_key_value_heads=4, head_dim=128, num_experts=128,
                               num_experts_per_tok=8, norm_topk_prob=True, max_position_embeddings=40_960,
                               tie_word_embeddings=False, **sizes)
    with torch.device("meta"):
        ours = preset()
        reference = AutoModelForCausalLM.from_config(hf_config)
        from_config = model_from_hf_config(hf_config.to_dict())
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in reference.parameters()) == count
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in from_config.state_dict().items()}


def test_lora_on_attention_and_experts():
    sizes = dict(vocab_size=VOCAB, num_layers=2, num_heads=4, num_kv_heads=2, head_dim=8, embed_dim=32, num_experts=4,
                 num_experts_per_tok=2, moe_intermediate_dim=16, max_seq_len=32)
    model = lora_qwen3_moe(["q_proj", "v_proj"], lora_rank=4, **sizes)
    assert {k for k in model.state_dict() if "lora_a" in k} == {
        f"layers.{i}.attn.{p}.lora_a.weight" for i in range(2) for p in ("q_proj", "v_proj")}
    experts = lora_qwen3_moe(["q_proj"], apply_lora_to_mlp=True, lora_rank=4, **sizes).layers[0].mlp.experts
    assert experts.gate_up_proj_lora.lora_a.weight.shape == (4, 4, 32)  # one adapter per expert
    with pytest.raises(ValueError, match="gives each expert a LoRA adapter, which supports neither DoRA nor dropout"):
        lora_qwen3_moe(["q_proj"], apply_lora_to_mlp=True, use_dora=True, **sizes)
    with pytest.raises(ValueError, match=r"mlp_only_layers=\[0\] needs intermediate_dim"):
        qwen3_moe(mlp_only_layers=[0], **sizes)
