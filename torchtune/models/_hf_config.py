"""Build a torchtune decoder from a Hugging Face ``config.json`` dict."""

import logging
from collections.abc import Callable
from typing import Any

from torch import nn

from torchtune.models._decoder_builder import build_decoder
from torchtune.models._lora_settings import LoRASettings
from torchtune.modules import TransformerDecoder

logger = logging.getLogger(__name__)


def _rope(config: dict[str, Any]) -> tuple[float, dict[str, Any] | None]:
    """Read RoPE theta and scaling from either the v4 (``rope_theta``/``rope_scaling``) or the
    v5 (``rope_parameters``) layout."""
    params = dict(config.get("rope_parameters") or {})
    scaling = config.get("rope_scaling") or params
    theta = config.get("rope_theta", params.get("rope_theta", 10000.0))
    rope_type = scaling.get("rope_type", scaling.get("type", "default")) if scaling else "default"
    if rope_type == "default":
        return float(theta), None
    if rope_type != "llama3":
        raise ValueError(f"rope_type={rope_type!r} is not supported; supported: ['default', 'llama3']")
    keys = ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")
    return float(theta), {k: scaling[k] for k in keys}


def _common(config: dict[str, Any], act_key: str = "hidden_act", acts: tuple[str, ...] = ("silu",)) -> dict[str, Any]:
    act = config.get(act_key) or acts[0]
    if act not in acts:
        raise ValueError(f"{act_key}={act!r} is not supported for model_type={config['model_type']!r}; allowed: {list(acts)}")
    theta, scaling = _rope(config)
    return {
        "vocab_size": config["vocab_size"],
        "num_layers": config["num_hidden_layers"],
        "num_heads": config["num_attention_heads"],
        "num_kv_heads": config.get("num_key_value_heads") or config["num_attention_heads"],
        "embed_dim": config["hidden_size"],
        "intermediate_dim": config["intermediate_size"],
        "max_seq_len": config["max_position_embeddings"],
        "head_dim": config.get("head_dim"),
        "norm_eps": config.get("rms_norm_eps", 1e-6),
        "rope_base": theta,
        "rope_scaling": scaling,
        "tie_word_embeddings": bool(config.get("tie_word_embeddings", False)),
    }


def _llama(config: dict[str, Any]) -> dict[str, Any]:
    bias = bool(config.get("attention_bias", False))
    return {**_common(config), "qkv_bias": bias, "output_proj_bias": bias, "mlp_bias": bool(config.get("mlp_bias", False))}


def _mistral(config: dict[str, Any]) -> dict[str, Any]:
    return {**_common(config), "sliding_window": config.get("sliding_window")}


def _qwen_window(config: dict[str, Any]) -> int | list[int | None] | None:
    if not config.get("use_sliding_window", False):
        return None
    first_full = config.get("max_window_layers", config["num_hidden_layers"])
    return [config["sliding_window"] if i >= first_full else None for i in range(config["num_hidden_layers"])]


def _qwen2(config: dict[str, Any]) -> dict[str, Any]:
    return {**_common(config), "qkv_bias": True, "sliding_window": _qwen_window(config)}


def _qwen3(config: dict[str, Any]) -> dict[str, Any]:
    bias = bool(config.get("attention_bias", False))
    return {**_common(config), "qkv_bias": bias, "output_proj_bias": bias, "qk_norm": True,
            "sliding_window": _qwen_window(config)}


_GELU_TANH = ("gelu_pytorch_tanh", "gelu")  # Gemma's legacy "gelu" means the tanh approximation


def _gemma(config: dict[str, Any], act_key: str = "hidden_act") -> dict[str, Any]:
    return {
        **_common(config, act_key, _GELU_TANH),
        "tie_word_embeddings": bool(config.get("tie_word_embeddings", True)),
        "norm_offset": 1.0,
        "mlp_activation": nn.GELU(approximate="tanh"),
        "embed_scale": config["hidden_size"] ** 0.5,
    }


def _gemma2(config: dict[str, Any]) -> dict[str, Any]:
    n = config["num_hidden_layers"]
    types = config.get("layer_types") or ["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(n)]
    window = config.get("sliding_window")
    return {
        **_gemma(config, "hidden_activation"),
        "attn_scale": config.get("query_pre_attn_scalar", 256) ** -0.5,
        "attn_softcapping": config.get("attn_logit_softcapping"),
        "final_logit_softcapping": config.get("final_logit_softcapping"),
        "post_norms": True,
        "sliding_window": [window if t == "sliding_attention" else None for t in types],
    }


def _phi3(config: dict[str, Any]) -> dict[str, Any]:
    kwargs = {**_common(config), "sliding_window": config.get("sliding_window")}
    params = config.get("rope_parameters") or {}
    factor = params.get("partial_rotary_factor", config.get("partial_rotary_factor", 1.0))
    if factor != 1.0:
        head_dim = config["hidden_size"] // config["num_attention_heads"]
        kwargs["rotary_dim"] = int(head_dim * factor)
    return kwargs


# model_type -> function turning config.json into build_decoder keyword arguments
CONFIG_READERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "llama": _llama,
    "mistral": _mistral,
    "qwen2": _qwen2,
    "qwen3": _qwen3,
    "gemma": _gemma,
    "gemma2": _gemma2,
    "phi3": _phi3,
}


def model_from_hf_config(
    config: dict[str, Any],
    *,
    lora_attn_modules: list[str] | None = None,
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
) -> TransformerDecoder:
    """Build the torchtune model described by a Hugging Face config.

    Adapters are added when ``lora_attn_modules`` is non-empty or ``apply_lora_to_mlp`` /
    ``apply_lora_to_output`` is set.

    Args:
        config (dict[str, Any]): parsed ``config.json``.
        lora_attn_modules (list[str] | None): any of q_proj, k_proj, v_proj, output_proj.
        apply_lora_to_mlp (bool): adapt the feed-forward projections. Default: False.
        apply_lora_to_output (bool): adapt the output projection. Default: False.
        lora_rank (int): adapter rank. Default: 8.
        lora_alpha (float): adapter alpha. Default: 16.
        lora_dropout (float): adapter dropout. Default: 0.0.
        use_dora (bool): DoRA instead of LoRA. Default: False.

    Returns:
        TransformerDecoder: the model, randomly initialised.

    Raises:
        ValueError: on an unsupported model_type, activation or RoPE type, or bad LoRA options.
    """
    model_type = config.get("model_type")
    if model_type not in CONFIG_READERS:
        raise ValueError(f"model_type={model_type!r} is not supported; supported: {sorted(CONFIG_READERS)}")
    kwargs = CONFIG_READERS[model_type](config)
    if lora_attn_modules or apply_lora_to_mlp or apply_lora_to_output:
        kwargs["lora"] = LoRASettings(
            tuple(lora_attn_modules or ()), apply_lora_to_mlp, apply_lora_to_output,
            lora_rank, lora_alpha, lora_dropout, use_dora,
        )
    return build_decoder(**kwargs)
