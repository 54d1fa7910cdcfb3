"""Build a torchtune decoder from a Hugging Face ``config.json`` dict."""

import logging
from collections.abc import Callable
from typing import Any

from torchtune.models._decoder_builder import build_decoder
from torchtune.models._family_facts import (
    GEMMA2_ATTN_SOFTCAPPING,
    GEMMA2_FINAL_LOGIT_SOFTCAPPING,
    GEMMA2_QUERY_PRE_ATTN_SCALAR,
    GEMMA2_SLIDING_WINDOW,
    GEMMA3_SLIDING_WINDOW_PATTERN,
    GEMMA_NORM_OFFSET,
    gemma2_sliding_windows,
    gemma3_sliding_windows,
    gemma_activation,
    gemma_embed_scale,
)
from torchtune.models._lora_settings import LoRASettings, MoESettings
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
    if rope_type == "linear":
        return float(theta), {"rope_type": "linear", "factor": float(scaling["factor"])}
    if rope_type == "yarn":
        keys = ("factor", "original_max_position_embeddings", "beta_fast", "beta_slow", "truncate", "attention_factor",
                "mscale", "mscale_all_dim")
        return float(theta), {"rope_type": "yarn", **{k: scaling[k] for k in keys if scaling.get(k) is not None}}
    if rope_type != "llama3":
        raise ValueError(f"rope_type={rope_type!r} is not supported; supported: ['default', 'linear', 'llama3', 'yarn']")
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


def _qwen3_moe(config: dict[str, Any]) -> dict[str, Any]:
    """Qwen3-MoE: Qwen3 attention; layer i is sparse unless listed in ``mlp_only_layers`` or
    ``(i + 1) % decoder_sparse_step != 0`` (dense layers use ``intermediate_size``)."""
    n = config["num_hidden_layers"]
    num_experts = config.get("num_experts", config.get("num_local_experts", 0))  # 5.x writes the latter
    step = config.get("decoder_sparse_step", 1)
    dense = set(config.get("mlp_only_layers") or [])
    layers = tuple(i not in dense and num_experts > 0 and (i + 1) % step == 0 for i in range(n))
    kwargs = _qwen3(config)
    if any(layers):
        kwargs["moe"] = MoESettings(num_experts=num_experts, top_k=config["num_experts_per_tok"],
                                    hidden_dim=config["moe_intermediate_size"],
                                    norm_topk_prob=bool(config.get("norm_topk_prob", False)), layers=layers)
    return kwargs


def _gpt_oss(config: dict[str, Any]) -> dict[str, Any]:
    """gpt-oss: every layer sparse (router with a bias, softmax over the top k logits, experts with
    biases and the clamped SwiGLU), attention with biases and learned sinks, sliding-window and
    full layers alternating (``layer_types``), YaRN RoPE."""
    n = config["num_hidden_layers"]
    types = config.get("layer_types") or ["sliding_attention" if (i + 1) % 2 else "full_attention" for i in range(n)]
    window = config.get("sliding_window")
    bias = bool(config.get("attention_bias", True))
    moe = MoESettings(
        num_experts=config.get("num_local_experts", config.get("num_experts", 0)), top_k=config["num_experts_per_tok"],
        hidden_dim=config["intermediate_size"], norm_topk_prob=False, softmax_before_topk=False, router_bias=True,
        expert_bias=True, swiglu_limit=float(config.get("swiglu_limit", 7.0)),
        swiglu_alpha=float(config.get("swiglu_alpha", 1.702)),
    )
    return {
        **_common(config), "qkv_bias": bias, "output_proj_bias": bias, "attention_sinks": True, "moe": moe,
        "sliding_window": [window if t == "sliding_attention" else None for t in types],
    }


_GELU_TANH = ("gelu_pytorch_tanh", "gelu")  # Gemma's legacy "gelu" means the tanh approximation


def _gemma(config: dict[str, Any], act_key: str = "hidden_act") -> dict[str, Any]:
    return {
        **_common(config, act_key, _GELU_TANH),
        "tie_word_embeddings": bool(config.get("tie_word_embeddings", True)),
        "norm_offset": GEMMA_NORM_OFFSET,
        "mlp_activation": gemma_activation(),
        "embed_scale": gemma_embed_scale(config["hidden_size"]),
    }


def _layer_windows(types: list[str], window: int | None) -> list[int | None]:
    return [window if t == "sliding_attention" else None for t in types]


def _gemma2(config: dict[str, Any]) -> dict[str, Any]:
    """Gemma 2: a key that ``config.json`` leaves out takes Gemma2Config's default (the published
    soft caps and window; an explicit null disables them)."""
    n = config["num_hidden_layers"]
    window = config.get("sliding_window", GEMMA2_SLIDING_WINDOW)
    types = config.get("layer_types")
    return {
        **_gemma(config, "hidden_activation"),
        "attn_scale": config.get("query_pre_attn_scalar", GEMMA2_QUERY_PRE_ATTN_SCALAR) ** -0.5,
        "attn_softcapping": config.get("attn_logit_softcapping", GEMMA2_ATTN_SOFTCAPPING),
        "final_logit_softcapping": config.get("final_logit_softcapping", GEMMA2_FINAL_LOGIT_SOFTCAPPING),
        "post_norms": True,
        "sliding_window": _layer_windows(types, window) if types else gemma2_sliding_windows(n, window),
    }


def _smollm3(config: dict[str, Any]) -> dict[str, Any]:
    """SmolLM3: Llama with no RoPE on the layers whose ``no_rope_layers`` entry is 0 (every
    ``no_rope_layer_interval``-th layer when the list is absent)."""
    n = config["num_hidden_layers"]
    interval = config.get("no_rope_layer_interval", 4)
    flags = config.get("no_rope_layers") or [int((i + 1) % interval != 0) for i in range(n)]
    if len(flags) < n:
        raise ValueError(f"no_rope_layers has {len(flags)} entries but num_hidden_layers={n}")
    types = config.get("layer_types") or ["full_attention"] * n
    window = config.get("sliding_window") if config.get("use_sliding_window", False) else None
    return {
        **_llama(config),
        "rope_layers": [bool(f) for f in flags[:n]],
        "sliding_window": [window if t == "sliding_attention" else None for t in types],
    }


# Gemma3TextConfig's defaults: a multimodal config.json stores only the text_config entries
# that differ from them.
_GEMMA3_TEXT_DEFAULTS: dict[str, Any] = {
    "vocab_size": 262_208, "hidden_size": 2304, "intermediate_size": 9216, "num_hidden_layers": 26,
    "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256, "max_position_embeddings": 131_072,
    "rms_norm_eps": 1e-6, "query_pre_attn_scalar": 256, "sliding_window": 4096,
    "hidden_activation": "gelu_pytorch_tanh", "tie_word_embeddings": True,
}


def _gemma3_rope(config: dict[str, Any]) -> tuple[float, dict[str, Any] | None, float]:
    """Global theta and scaling, and local theta, from the v5 per-layer-type ``rope_parameters``
    or the v4 ``rope_theta`` / ``rope_scaling`` / ``rope_local_base_freq`` keys."""
    params = config.get("rope_parameters") or {}
    if "full_attention" in params or "sliding_attention" in params:
        local = dict(params.get("sliding_attention") or {})
        if local.get("rope_type", "default") != "default":
            raise ValueError(f"rope_parameters.sliding_attention={local} is not supported; local layers use default RoPE")
        theta, scaling = _rope({"rope_parameters": params.get("full_attention") or {"rope_theta": 1e6}})
        return theta, scaling, float(local.get("rope_theta", 10_000.0))
    theta, scaling = _rope({"rope_theta": config.get("rope_theta", 1e6), "rope_scaling": config.get("rope_scaling")})
    return theta, scaling, float(config.get("rope_local_base_freq", 10_000.0))


def _gemma3_text(config: dict[str, Any]) -> dict[str, Any]:
    """Gemma 3's text decoder: Gemma 2's four norms without its attention soft-cap (transformers
    ignores ``attn_logit_softcapping`` for Gemma 3), plus q/k norms, 5:1 local:global layers and a
    separate RoPE theta for the local layers."""
    config = {**_GEMMA3_TEXT_DEFAULTS, **config}
    if config.get("use_bidirectional_attention"):
        raise ValueError("use_bidirectional_attention=True (an encoder variant) is not supported; only causal Gemma 3")
    n = config["num_hidden_layers"]
    pattern = config.get("sliding_window_pattern", GEMMA3_SLIDING_WINDOW_PATTERN)
    types = config.get("layer_types")
    theta, scaling, local_theta = _gemma3_rope(config)
    window = config.get("sliding_window")
    return {
        **_gemma(config, "hidden_activation"),
        "rope_base": theta,
        "rope_scaling": scaling,
        "local_rope_base": local_theta,
        "qk_norm": True,
        "attn_scale": config["query_pre_attn_scalar"] ** -0.5,
        "final_logit_softcapping": config.get("final_logit_softcapping"),
        "post_norms": True,
        "sliding_window": _layer_windows(types, window) if types else gemma3_sliding_windows(n, window, pattern),
    }


def _gemma3(config: dict[str, Any]) -> dict[str, Any]:
    """A multimodal Gemma 3 ``config.json``: its ``text_config`` describes the language model."""
    logger.info("model_type='gemma3' (multimodal): building the text decoder from text_config; the "
                "vision tower is not supported and its weights are skipped")
    return _gemma3_text(dict(config.get("text_config") or {}, model_type="gemma3_text"))


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
    "qwen3_moe": _qwen3_moe,
    "gemma": _gemma,
    "gemma2": _gemma2,
    "gemma3": _gemma3,
    "gemma3_text": _gemma3_text,
    "gpt_oss": _gpt_oss,
    "phi3": _phi3,
    "smollm3": _smollm3,
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
    quantize_base: bool = False,
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
        quantize_base (bool): NF4 base weights under the adapters (QLoRA; the ``quant``
            extra). Default: False.

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
            lora_rank, lora_alpha, lora_dropout, use_dora, quantize_base,
        )
    return build_decoder(**kwargs)
