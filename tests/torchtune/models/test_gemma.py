"""Gemma against transformers: logits of a padded batch, KV-cache decoding, preset sizes."""

import pytest
import torch
from transformers import AutoModelForCausalLM, GemmaConfig

from torchtune.generation import generation_masks
from torchtune.models import hf_to_tune, model_from_hf_config
from torchtune.models.gemma import gemma, gemma_2b, gemma_7b, lora_gemma, lora_gemma_7b

TINY = dict(
    vocab_size=80, hidden_size=32, intermediate_size=40, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=1, head_dim=12, max_position_embeddings=32, rms_norm_eps=1e-6,
    hidden_act="gelu_pytorch_tanh",
)


def _builder(config: dict) -> torch.nn.Module:
    return gemma(
        vocab_size=config["vocab_size"], num_layers=config["num_hidden_layers"],
        num_heads=config["num_attention_heads"], head_dim=config["head_dim"],
        num_kv_heads=config["num_key_value_heads"], embed_dim=config["hidden_size"],
        intermediate_dim=config["intermediate_size"], max_seq_len=config["max_position_embeddings"],
        norm_eps=config["rms_norm_eps"],
    )


def _pair(use_builder: bool = False, **overrides) -> tuple[torch.nn.Module, torch.nn.Module]:
    """transformers' model and ours (from config.json, or from :func:`gemma`) on equal weights."""
    torch.manual_seed(0)
    hf = AutoModelForCausalLM.from_config(GemmaConfig(**{**TINY, **overrides}), attn_implementation="eager")
    with torch.no_grad():
        for name, param in hf.named_parameters():
            if "norm" in name:  # Gemma norms start at 0; make the (1 + w) offset matter
                param.normal_(0.0, 0.3)
    config = hf.config.to_dict()
    ours = _builder(config) if use_builder else model_from_hf_config(config)
    ours.load_state_dict(hf_to_tune(hf.state_dict(), config))
    return hf.eval(), ours.eval()


def _padded_batch() -> tuple[torch.Tensor, torch.Tensor]:
    tokens = torch.randint(1, TINY["vocab_size"], (2, 7), generator=torch.Generator().manual_seed(1))
    is_real = torch.ones_like(tokens, dtype=torch.bool)
    is_real[1, :3] = False
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


def test_legacy_gelu_config_and_default_causal_mask() -> None:
    hf, ours = _pair(hidden_act="gelu")
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
        steps = [ours(tokens[:, :4], mask=mask[:, :4], input_pos=input_pos[:, :4])]
        for t in range(4, s):
            steps.append(ours(tokens[:, t : t + 1], mask=mask[:, t : t + 1], input_pos=input_pos[:, t : t + 1]))
    expected = _hf_logits(hf, tokens, is_real)
    torch.testing.assert_close(torch.cat(steps, dim=1)[is_real], expected[is_real], atol=1e-5, rtol=1e-5)


def test_unsupported_activation_is_refused() -> None:
    config = GemmaConfig(**TINY).to_dict()
    config["hidden_act"] = "relu"
    with pytest.raises(ValueError, match="hidden_act='relu' is not supported for model_type='gemma'"):
        model_from_hf_config(config)


PUBLISHED = {  # sizes from the published config.json files and published parameter counts
    gemma_2b: (dict(hidden_size=2048, intermediate_size=16384, num_hidden_layers=18, num_attention_heads=8,
                    num_key_value_heads=1, head_dim=256), 2_506_172_416),
    gemma_7b: (dict(hidden_size=3072, intermediate_size=24576, num_hidden_layers=28, num_attention_heads=16,
                    num_key_value_heads=16, head_dim=256), 8_537_680_896),
}


@pytest.mark.parametrize("preset", list(PUBLISHED), ids=lambda f: f.__name__)
def test_preset_matches_published_config(preset) -> None:
    sizes, count = PUBLISHED[preset]
    hf_config = GemmaConfig(vocab_size=256000, max_position_embeddings=8192, **sizes)
    with torch.device("meta"):
        model = preset()
        hf = AutoModelForCausalLM.from_config(hf_config)
        from_config = model_from_hf_config(hf_config.to_dict())
    assert sum(p.numel() for p in model.parameters()) == count == sum(p.numel() for p in hf.parameters())
    assert {k: v.shape for k, v in model.state_dict().items()} == {
        k: v.shape for k, v in from_config.state_dict().items()
    }
    assert model.embed_scale == sizes["hidden_size"] ** 0.5 and model.max_seq_len == 8192


def test_lora_preset_builds_dora_adapters() -> None:
    with torch.device("meta"):
        model = lora_gemma_7b(["k_proj", "output_proj"], lora_rank=2, use_dora=True)
    keys = set(model.state_dict())
    assert "layers.3.attn.k_proj.magnitude" in keys and "layers.3.attn.output_proj.lora_b.weight" in keys
    assert "layers.3.attn.q_proj.lora_a.weight" not in keys


def test_lora_unknown_module_is_refused() -> None:
    with pytest.raises(ValueError, match=r"has unknown names \['o_proj'\]"):
        lora_gemma(["o_proj"], vocab_size=16, num_layers=1, num_heads=2, head_dim=4, num_kv_heads=1,
                   embed_dim=8, intermediate_dim=8, max_seq_len=8)


def test_positional_arguments_are_deprecated_but_build_the_same_model() -> None:
    import inspect

    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in inspect.signature(gemma).parameters.values())
    torch.manual_seed(0)
    new = gemma(vocab_size=64, num_layers=2, num_heads=2, head_dim=8, num_kv_heads=1, embed_dim=16,
                intermediate_dim=24, max_seq_len=32)
    torch.manual_seed(0)
    with pytest.warns(DeprecationWarning, match=r"gemma\(\) takes keyword arguments only; .* call gemma\(vocab_size=\.\.\."):
        old = gemma(64, 2, 2, 8, 1, 16, 24, 32)
    assert str(old) == str(new)
    assert all(torch.equal(a, b) for a, b in zip(old.state_dict().values(), new.state_dict().values()))
