"""Phi-3 against transformers: fused-projection conversion, logits of a padded batch with a
sliding window, KV-cache decoding, partial rotary, preset sizes."""

import pytest
import torch
from transformers import AutoModelForCausalLM, Phi3Config

from torchtune.generation import generation_masks
from torchtune.models import hf_to_tune, model_from_hf_config, tune_to_hf
from torchtune.models.phi3 import lora_phi3, lora_phi3_mini, phi3, phi3_mini

TINY = dict(
    vocab_size=90, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=2, max_position_embeddings=32, rms_norm_eps=1e-5, sliding_window=3,
    pad_token_id=0, bos_token_id=1, eos_token_id=2,
)


def _builder(config: dict) -> torch.nn.Module:
    return phi3(
        vocab_size=config["vocab_size"], num_layers=config["num_hidden_layers"],
        num_heads=config["num_attention_heads"], num_kv_heads=config["num_key_value_heads"],
        embed_dim=config["hidden_size"], intermediate_dim=config["intermediate_size"],
        max_seq_len=config["max_position_embeddings"], norm_eps=config["rms_norm_eps"],
        sliding_window=config["sliding_window"],
    )


def _pair(use_builder: bool = False, **overrides) -> tuple[torch.nn.Module, torch.nn.Module]:
    """transformers' model and ours (from config.json, or from :func:`phi3`) on equal weights."""
    torch.manual_seed(0)
    hf = AutoModelForCausalLM.from_config(Phi3Config(**{**TINY, **overrides}), attn_implementation="eager")
    with torch.no_grad():
        for name, param in hf.named_parameters():
            if "norm" in name:
                param.normal_(1.0, 0.3)
    config = hf.config.to_dict()
    ours = _builder(config) if use_builder else model_from_hf_config(config)
    ours.load_state_dict(hf_to_tune(hf.state_dict(), config))
    return hf.eval(), ours.eval()


def _padded_batch() -> tuple[torch.Tensor, torch.Tensor]:
    tokens = torch.randint(3, TINY["vocab_size"], (3, 8), generator=torch.Generator().manual_seed(1))
    is_real = torch.ones_like(tokens, dtype=torch.bool)
    is_real[1, :2] = False
    is_real[2, :5] = False
    return tokens.masked_fill(~is_real, 0), is_real


def _hf_logits(hf: torch.nn.Module, tokens: torch.Tensor, is_real: torch.Tensor) -> torch.Tensor:
    position_ids = (is_real.long().cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        return hf(input_ids=tokens, attention_mask=is_real.long(), position_ids=position_ids).logits


@pytest.mark.parametrize("use_builder", [False, True], ids=["from_hf_config", "builder"])
def test_padded_batch_logits_match_transformers(use_builder: bool) -> None:
    hf, ours = _pair(use_builder)
    tokens, is_real = _padded_batch()
    mask, input_pos = generation_masks(is_real, 0)
    with torch.no_grad():
        logits = ours(tokens, mask=mask, input_pos=input_pos)
    expected = _hf_logits(hf, tokens, is_real)
    torch.testing.assert_close(logits[is_real], expected[is_real], atol=1e-5, rtol=1e-5)


def test_partial_rotary_matches_transformers() -> None:
    hf, ours = _pair(partial_rotary_factor=0.5, sliding_window=None)
    tokens = torch.randint(0, TINY["vocab_size"], (2, 6), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(ours(tokens), hf(input_ids=tokens).logits, atol=1e-5, rtol=1e-5)


def test_kv_cache_decoding_matches_full_forward() -> None:
    hf, ours = _pair()
    tokens, is_real = _padded_batch()
    b, s = tokens.shape
    mask, input_pos = generation_masks(is_real, 0)
    ours.setup_caches(b, torch.float32, decoder_max_seq_len=s)
    with torch.no_grad():
        steps = [ours(tokens[:, :3], mask=mask[:, :3], input_pos=input_pos[:, :3])]
        for t in range(3, s):
            steps.append(ours(tokens[:, t : t + 1], mask=mask[:, t : t + 1], input_pos=input_pos[:, t : t + 1]))
    expected = _hf_logits(hf, tokens, is_real)
    torch.testing.assert_close(torch.cat(steps, dim=1)[is_real], expected[is_real], atol=1e-5, rtol=1e-5)


def test_fused_projections_round_trip() -> None:
    hf, ours = _pair()
    config = hf.config.to_dict()
    back = tune_to_hf(ours.state_dict(), config)
    expected = hf.state_dict()
    assert back.keys() == expected.keys()
    for key, value in expected.items():
        assert torch.equal(back[key], value), key


def test_longrope_is_refused() -> None:
    config = Phi3Config(**TINY).to_dict()
    config["rope_parameters"] = {"rope_type": "longrope", "rope_theta": 10000.0}
    with pytest.raises(ValueError, match="rope_type='longrope' is not supported"):
        model_from_hf_config(config)


MINI = dict(vocab_size=32064, hidden_size=3072, intermediate_size=8192, num_hidden_layers=32,
            num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096,
            sliding_window=2047)


def test_phi3_mini_matches_published_config() -> None:
    with torch.device("meta"):
        model = phi3_mini()
        hf = AutoModelForCausalLM.from_config(Phi3Config(**MINI))
        from_config = model_from_hf_config(Phi3Config(**MINI).to_dict())
    count = sum(p.numel() for p in model.parameters())
    assert count == 3_821_079_552 == sum(p.numel() for p in hf.parameters())  # published figure
    assert {k: v.shape for k, v in model.state_dict().items()} == {
        k: v.shape for k, v in from_config.state_dict().items()
    }
    assert {layer.attn.sliding_window for layer in model.layers} == {2047}


def test_lora_output_adapter() -> None:
    with torch.device("meta"):
        model = lora_phi3_mini(["q_proj"], apply_lora_to_output=True, lora_rank=4)
    assert model.output.lora_a.weight.shape == (4, 3072)


def test_bad_head_count() -> None:
    with pytest.raises(ValueError, match="num_heads=3 must divide embed_dim=8"):
        lora_phi3(["q_proj"], vocab_size=16, num_layers=1, num_heads=3, num_kv_heads=3, embed_dim=8,
                  intermediate_dim=8, max_seq_len=8)


def test_positional_arguments_are_deprecated_but_build_the_same_model() -> None:
    import inspect

    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in inspect.signature(phi3).parameters.values())
    torch.manual_seed(0)
    new = phi3(vocab_size=64, num_layers=2, num_heads=2, num_kv_heads=1, embed_dim=16, intermediate_dim=24,
                max_seq_len=32, sliding_window=5)
    torch.manual_seed(0)
    with pytest.warns(DeprecationWarning, match=r"phi3\(\) takes keyword arguments only; .* call phi3\(vocab_size=\.\.\."):
        old = phi3(64, 2, 2, 1, 16, 24, 32, 0.0, 1e-5, 10_000, 5)
    assert str(old) == str(new)
    assert all(torch.equal(a, b) for a, b in zip(old.state_dict().values(), new.state_dict().values()))
