"""gpt-oss against transformers' GptOssForCausalLM on tiny random checkpoints made with
GptOssConfig: sliding windows shorter than the test sequences, YaRN with its ramp inside the
rotated dims, attention sinks, expert biases and a clamp the activations reach; MXFP4 expert
files decoded as transformers decodes them; presets with the published parameter counts."""

import pytest
import torch
from transformers import AutoModelForCausalLM, GptOssConfig, GptOssForCausalLM
from transformers.integrations.mxfp4 import convert_moe_packed_tensors

from tests.torchtune.models import _family_testing as ft
from torchtune.models import hf_to_tune, model_from_hf_config, tune_to_hf
from torchtune.models._mxfp4 import dequantize_mxfp4
from torchtune.models.gpt_oss import gpt_oss, gpt_oss_120b, gpt_oss_20b, lora_gpt_oss
from torchtune.modules import ClampedSwiGLU, MoE

VOCAB = 96
TINY = dict(
    vocab_size=VOCAB, hidden_size=32, intermediate_size=16, num_hidden_layers=3, num_attention_heads=4,
    num_key_value_heads=2, head_dim=8, num_local_experts=4, num_experts_per_tok=2, max_position_embeddings=64,
    rms_norm_eps=1e-5, pad_token_id=0, sliding_window=4, swiglu_limit=0.5,
)
VARIANTS = {
    "yarn_alternating": dict(TINY, rope_parameters=dict(
        rope_type="yarn", factor=4.0, beta_fast=8.0, beta_slow=1.0, truncate=False,
        original_max_position_embeddings=16, rope_theta=150.0)),
    "yarn_truncated_custom_layers": dict(TINY, layer_types=["full_attention", "sliding_attention", "sliding_attention"],
                                         rope_parameters=dict(rope_type="yarn", factor=8.0, truncate=True,
                                                              original_max_position_embeddings=8, rope_theta=100.0)),
}


@pytest.fixture(params=sorted(VARIANTS))
def pair(request):
    return ft.make_pair(GptOssConfig(**VARIANTS[request.param]), GptOssForCausalLM, std=0.3)


def test_layer_layout():
    _, ours, config = ft.make_pair(GptOssConfig(**VARIANTS["yarn_truncated_custom_layers"]), GptOssForCausalLM)
    assert [layer.attn.sliding_window for layer in ours.layers] == [None, 4, 4]
    assert all(isinstance(layer.mlp, MoE) and layer.attn.sinks.shape == (4,) for layer in ours.layers)
    experts = ours.layers[0].mlp.experts
    assert isinstance(experts.gated_activation, ClampedSwiGLU) and experts.gated_activation.limit == 0.5
    assert experts.gate_up_proj_bias.shape == (4, 32) and experts.down_proj_bias.shape == (4, 32)
    assert not ours.layers[0].mlp.router.softmax_before_topk and ours.layers[0].mlp.router.gate.bias is not None


def test_clamp_is_reached():
    """The test weights drive the expert activations past the clamp (else it would go untested)."""
    _, ours, _ = ft.make_pair(GptOssConfig(**VARIANTS["yarn_alternating"]), GptOssForCausalLM, std=0.3)
    seen = []
    hook = ours.layers[1].mlp.experts.gated_activation.register_forward_hook(
        lambda m, args, out: seen.append((args[0].max().item(), args[1].abs().max().item())))
    tokens, _ = ft.padded_batch(VOCAB)
    with torch.no_grad():
        ours(tokens)
    hook.remove()
    gate_max, up_max = seen[0]
    assert gate_max > 0.5 and up_max > 0.5


def test_padded_logits_match_transformers(pair):
    hf, ours, _ = pair
    ft.check_padded_logits(hf, ours, VOCAB)


def test_builder_matches_transformers():
    hf, _, config = ft.make_pair(GptOssConfig(**VARIANTS["yarn_alternating"]), GptOssForCausalLM, std=0.3)
    rope = config["rope_parameters"]
    ours = gpt_oss(vocab_size=VOCAB, num_layers=3, num_heads=4, num_kv_heads=2, head_dim=8, embed_dim=32,
                   num_experts=4, num_experts_per_tok=2, intermediate_dim=16, max_seq_len=64, sliding_window=4,
                   swiglu_limit=0.5, rope_base=rope["rope_theta"],
                   rope_scaling={k: v for k, v in rope.items() if k != "rope_theta"}).eval()
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


def test_round_trip(pair):
    hf, _, config = pair
    ft.check_round_trip(hf, config)


def _mxfp4(shape: tuple[int, ...], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    blocks = torch.randint(0, 256, (*shape[:-1], shape[-1] // 32, 16), generator=g, dtype=torch.uint8)
    scales = torch.randint(122, 131, (*shape[:-1], shape[-1] // 32), generator=g, dtype=torch.uint8)
    return blocks, scales


def test_mxfp4_decoding_matches_transformers():
    blocks, scales = _mxfp4((3, 8, 96), seed=0)
    expected = convert_moe_packed_tensors(blocks, scales, dtype=torch.float32)  # [E, in, out]
    assert torch.equal(dequantize_mxfp4(blocks, scales).transpose(1, 2), expected)
    with pytest.raises(ValueError, match=r"MXFP4 blocks \[3, 8, 3, 16\] and scales \[3, 8, 2\] do not pair up"):
        dequantize_mxfp4(blocks, scales[..., :2])


def test_an_mxfp4_checkpoint_loads_as_its_decoded_weights():
    """The Hub's files hold the experts as MXFP4 blocks and scales; they load as the weights
    transformers decodes from them, and are written back dense."""
    sizes = dict(VARIANTS["yarn_alternating"], intermediate_size=32)  # MXFP4 rows hold whole blocks of 32
    hf, ours, config = ft.make_pair(GptOssConfig(**sizes), GptOssForCausalLM, std=0.3)
    packed, dense = {}, dict(hf.state_dict())
    e, h, d = 4, 32, 32
    for i in range(3):
        for name, rows, cols in (("gate_up_proj", 2 * h, d), ("down_proj", d, h)):
            blocks, scales = _mxfp4((e, rows, cols), seed=10 * i + rows)
            key = f"model.layers.{i}.mlp.experts.{name}"
            packed[f"{key}_blocks"], packed[f"{key}_scales"] = blocks, scales
            dense[key] = convert_moe_packed_tensors(blocks, scales, dtype=torch.float32)
    on_disk = {**{k: v for k, v in dense.items() if not k.endswith(("experts.gate_up_proj", "experts.down_proj"))},
               **packed}
    got = hf_to_tune(on_disk, config)
    expected = hf_to_tune(dense, config)
    assert got.keys() == expected.keys() and all(torch.equal(got[k], expected[k]) for k in got)
    hf.load_state_dict(dense)
    ours.load_state_dict(got)
    ft.check_padded_logits(hf, ours, VOCAB)
    assert tune_to_hf(got, config).keys() == dense.keys()
    with pytest.raises(ValueError, match=r"model\.layers\.0\.mlp\.experts\.down_proj: the MXFP4 checkpoint holds only "
                                         r"its \['blocks'\]"):
        hf_to_tune({k: v for k, v in on_disk.items() if k != "model.layers.0.mlp.experts.down_proj_scales"}, config)


def test_expert_shapes_disagreeing_with_config_name_the_tensor():
    hf, _, config = ft.make_pair(GptOssConfig(**VARIANTS["yarn_alternating"]), GptOssForCausalLM)
    bad = {**hf.state_dict(), "model.layers.1.mlp.experts.gate_up_proj": torch.zeros(3, 32, 32)}
    with pytest.raises(ValueError, match=r"model\.layers\.1\.mlp\.experts\.gate_up_proj has shape \[3, 32, 32\] but "
                                         r"config\.json \(num_local_experts=4, intermediate_size=16, hidden_size=32\) "
                                         r"implies \[4, 32, 32\]"):
        hf_to_tune(bad, config)


# Published parameter counts (model cards: 21B and 117B; exact counts of the published config.json sizes)
PUBLISHED = {gpt_oss_20b: (24, 32, 20_914_757_184), gpt_oss_120b: (36, 128, 116_829_156_672)}


@pytest.mark.parametrize("preset", list(PUBLISHED), ids=lambda f: f.__name__)
def test_preset_matches_published_count(preset):
    layers, experts, count = PUBLISHED[preset]
    hf_config = GptOssConfig(num_hidden_layers=layers, num_local_experts=experts, rope_parameters=dict(
        rope_type="yarn", factor=32.0, beta_fast=32.0, beta_slow=1.0, truncate=False,
        original_max_position_embeddings=4096, rope_theta=150_000.0))
    with torch.device("meta"):
        ours = preset()
        reference = AutoModelForCausalLM.from_config(hf_config)
        from_config = model_from_hf_config(hf_config.to_dict())
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in reference.parameters()) == count
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in from_config.state_dict().items()}
    assert [layer.attn.sliding_window for layer in ours.layers[:4]] == [128, None, 128, None]
    assert ours.layers[0].attn.pos_embeddings.scaling == from_config.layers[0].attn.pos_embeddings.scaling


def test_lora_on_attention_and_experts():
    sizes = dict(vocab_size=VOCAB, num_layers=2, num_heads=4, num_kv_heads=2, head_dim=8, embed_dim=32, num_experts=4,
                 num_experts_per_tok=2, intermediate_dim=16, max_seq_len=32)
    model = lora_gpt_oss(["q_proj", "v_proj"], lora_rank=4, **sizes)
    assert {k for k in model.state_dict() if "lora_a" in k} == {
        f"layers.{i}.attn.{p}.lora_a.weight" for i in range(2) for p in ("q_proj", "v_proj")}
    experts = lora_gpt_oss(["q_proj"], apply_lora_to_mlp=True, lora_rank=4, **sizes).layers[0].mlp.experts
    assert experts.gate_up_proj_lora.lora_a.weight.shape == (4, 4, 32)  # one adapter per expert
    with pytest.raises(ValueError, match="gives each expert a LoRA adapter, which supports neither DoRA nor dropout"):
        lora_gpt_oss(["q_proj"], apply_lora_to_mlp=True, use_dora=True, **sizes)
