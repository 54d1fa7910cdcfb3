"""What each supported GGUF architecture means in Hugging Face terms.

A GGUF file names its architecture in ``general.architecture`` and keeps the sizes under
``<arch>.*`` keys. This module turns that metadata into a Hugging Face style ``config.json``
dictionary, maps GGUF tensor names to Hugging Face parameter names (and back), and applies
the value changes llama.cpp's converter makes:

- ``llama`` and ``smollm3``: the q/k projection rows (weights and biases) are permuted per head
  from the "rotate half" layout to interleaved pairs (``permute_qk``); import undoes it
  (``unpermute_qk``). qwen2, qwen3 and gemma2 are stored unpermuted.
- ``qwen3moe``: the router is ``ffn_gate_inp``; the experts are three stacked tensors
  ``ffn_gate_exps`` / ``ffn_up_exps`` ``[E, h, d]`` and ``ffn_down_exps`` ``[E, d, h]`` (Hugging
  Face's in-memory ``mlp.experts.gate_up_proj`` is gate and up concatenated). llama.cpp always
  renormalises the chosen experts' weights (``norm_topk_prob``).
- ``smollm3``: llama.cpp fixes the NoPE layers at every 4th (``n_no_rope_layer_step = 4``, no
  GGUF key), so only that layout can be read or written.
- ``gemma3`` (Hugging Face ``gemma3_text``): Gemma 2's tensor names plus q/k norms, every norm
  stored as ``w + 1``; llama.cpp fixes one global layer in 6 and the local layers' RoPE theta
  at 10000, and reads linear RoPE scaling of the global layers from ``rope.scaling.*``.
- ``gemma2``: every RMSNorm weight is stored as ``w + 1`` because llama.cpp's RMSNorm
  multiplies by the weight where Gemma's multiplies by ``1 + w``.
- ``gpt-oss`` (Hugging Face ``gpt_oss``): the router is ``ffn_gate_inp`` (with a bias), the
  sinks ``attn_sinks``, the norm before the experts ``post_attention_norm``. Hugging Face's
  ``experts.gate_up_proj [E, d, 2h]`` (gate and up columns interleaved) becomes
  ``ffn_gate_exps`` / ``ffn_up_exps`` ``[E, h, d]`` (its even and odd columns, transposed) and
  ``down_proj [E, h, d]`` becomes ``ffn_down_exps [E, d, h]``; the biases split the same way.
  The expert tensors may be MXFP4. llama.cpp fixes the clamped SwiGLU (alpha 1.702, limit 7),
  the softmax over the top-k router logits, and one sliding-window layer in 2 (the first);
  RoPE is YaRN from ``rope.scaling.*``.
"""

import re
from typing import Any

import torch

from torchtune.gguf._rope import rope_scaling_from_divisors


SUPPORTED_ARCHITECTURES = ("llama", "qwen2", "qwen3", "gemma2", "gemma3", "smollm3", "qwen3moe", "gpt-oss")
# GGUF architecture -> Hugging Face model_type, where they differ
_MODEL_TYPES = {"qwen3moe": "qwen3_moe", "gemma3": "gemma3_text", "gpt-oss": "gpt_oss"}
GEMMA3_SLIDING_WINDOW_PATTERN = 6  # llama.cpp's constants for gemma3
GEMMA3_LOCAL_ROPE_BASE = 10_000.0
_GGUF_ARCHITECTURES = {v: k for k, v in _MODEL_TYPES.items()}
_PERMUTED_ARCHITECTURES = frozenset({"llama", "smollm3"})
SMOLLM3_NO_ROPE_LAYER_STEP = 4  # llama.cpp's constant
_NORM_PLUS_ONE_ARCHITECTURES = frozenset({"gemma2", "gemma3"})
GPT_OSS_SWA_PERIOD = 2  # llama.cpp's default for gpt-oss: layer i slides unless (i + 1) % 2 == 0
GPT_OSS_SWIGLU_LIMIT = 7.0  # llama.cpp's fixed clamp of the gpt-oss SwiGLU (alpha 1.702)
_YARN_BETA_FAST, _YARN_BETA_SLOW = 32.0, 1.0  # llama.cpp's defaults when the file has no yarn_beta_* keys

_HF_MODEL_CLASSES = {
    "llama": "LlamaForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
    "qwen3": "Qwen3ForCausalLM",
    "gemma2": "Gemma2ForCausalLM",
    "smollm3": "SmolLM3ForCausalLM",
    "qwen3moe": "Qwen3MoeForCausalLM",
    "gemma3": "Gemma3ForCausalLM",
    "gpt-oss": "GptOssForCausalLM",
}

# GGUF block tensor stem -> Hugging Face module path inside model.layers.{i}
_BLOCK_NAMES = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "attn_q_norm": "self_attn.q_norm",
    "attn_k_norm": "self_attn.k_norm",
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
# gemma2 has four norms per block: HF's post_attention_layernorm is GGUF's post_attention_norm
_GEMMA2_BLOCK_NAMES = {
    **_BLOCK_NAMES,
    "ffn_norm": "pre_feedforward_layernorm",
    "post_attention_norm": "post_attention_layernorm",
    "post_ffw_norm": "post_feedforward_layernorm",
}
# qwen3moe: router and stacked experts; gate/up are halves of HF's gate_up_proj (joined on read)
_MOE_BLOCK_NAMES = {
    **_BLOCK_NAMES,
    "ffn_gate_inp": "mlp.gate",
    "ffn_gate_exps": "mlp.experts.gate_proj",
    "ffn_up_exps": "mlp.experts.up_proj",
    "ffn_down_exps": "mlp.experts.down_proj",
}
# gpt-oss: attention with sinks, the router and stacked experts with biases; GGUF's split gate/up
# experts are joined into Hugging Face's interleaved gate_up_proj on read (join_gpt_oss_experts)
_GPT_OSS_BLOCK_NAMES = {
    **{k: v for k, v in _BLOCK_NAMES.items() if k.startswith("attn_") and not k.endswith(("q_norm", "k_norm"))},
    "attn_sinks": "self_attn.sinks",
    "post_attention_norm": "post_attention_layernorm",
    "ffn_gate_inp": "mlp.router",
    "ffn_gate_exps": "mlp.experts.gate_proj",
    "ffn_up_exps": "mlp.experts.up_proj",
    "ffn_down_exps": "mlp.experts.down_proj",
}
_GLOBAL_NAMES = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}
_BLOCK_RE = re.compile(r"^blk\.(\d+)\.([a-z_0-9]+)\.(weight|bias)$")
_GLOBAL_RE = re.compile(r"^([a-z_0-9]+)\.(weight|bias)$")


def check_architecture(arch: str) -> None:
    """Raise unless ``arch`` is a supported GGUF architecture.

    Raises:
        ValueError: naming the architecture and the supported ones.
    """
    if arch not in SUPPORTED_ARCHITECTURES:
        raise ValueError(
            f"GGUF architecture '{arch}' is not supported; supported architectures: "
            f"{', '.join(SUPPORTED_ARCHITECTURES)}"
        )


def gguf_architecture(model_type: str) -> str:
    """The GGUF ``general.architecture`` of a Hugging Face ``model_type`` (``qwen3_moe`` -> ``qwen3moe``)."""
    return _GGUF_ARCHITECTURES.get(model_type, model_type)


def _block_names(arch: str) -> dict[str, str]:
    arch = gguf_architecture(arch)
    return {"gemma2": _GEMMA2_BLOCK_NAMES, "gemma3": _GEMMA2_BLOCK_NAMES, "qwen3moe": _MOE_BLOCK_NAMES,
            "gpt-oss": _GPT_OSS_BLOCK_NAMES}.get(arch, _BLOCK_NAMES)


def gguf_to_hf_name(name: str, arch: str) -> str:
    """``blk.3.attn_q.weight`` -> ``model.layers.3.self_attn.q_proj.weight``.

    Raises:
        ValueError: for a tensor name with no Hugging Face counterpart.
    """
    if match := _BLOCK_RE.match(name):
        layer, stem, kind = match.groups()
        if stem in _block_names(arch):
            return f"model.layers.{layer}.{_block_names(arch)[stem]}.{kind}"
    elif (match := _GLOBAL_RE.match(name)) and match.group(1) in _GLOBAL_NAMES:
        return f"{_GLOBAL_NAMES[match.group(1)]}.{match.group(2)}"
    raise ValueError(f"GGUF tensor '{name}' of architecture '{arch}' has no known mapping")


def hf_to_gguf_name(name: str, arch: str) -> str:
    """``model.layers.3.self_attn.q_proj.weight`` -> ``blk.3.attn_q.weight``.

    Raises:
        ValueError: for a parameter name with no GGUF counterpart.
    """
    reverse_block = {hf: stem for stem, hf in _block_names(arch).items()}
    reverse_global = {hf: stem for stem, hf in _GLOBAL_NAMES.items()}
    if match := re.match(r"^model\.layers\.(\d+)\.(.+)\.(weight|bias)$", name):
        layer, module, kind = match.groups()
        if module in reverse_block:
            return f"blk.{layer}.{reverse_block[module]}.{kind}"
    elif (match := re.match(r"^(.+)\.(weight|bias)$", name)) and match.group(1) in reverse_global:
        return f"{reverse_global[match.group(1)]}.{match.group(2)}"
    raise ValueError(f"parameter '{name}' of architecture '{arch}' has no GGUF tensor name")


def permute_qk(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Reorder each head's rows from "rotate half" to llama.cpp's interleaved pairs.

    Row ``i`` of the first half of a head goes to row ``2 i``, row ``i`` of the second half to
    row ``2 i + 1``.

    Args:
        w (torch.Tensor): ``[n_heads * h_d, ...]`` weight or bias.
        n_heads (int): heads in ``w`` (query heads for q, kv heads for k).

    Returns:
        torch.Tensor: the same shape.
    """
    rows = w.shape[0]
    w = w.reshape(n_heads, 2, rows // n_heads // 2, *w.shape[1:])  # [n_h, 2, h_d/2, ...]
    return w.transpose(1, 2).reshape(rows, *w.shape[3:])  # [n_h * h_d, ...]


def unpermute_qk(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Inverse of :func:`permute_qk`: interleaved pairs back to "rotate half" rows."""
    rows = w.shape[0]
    w = w.reshape(n_heads, rows // n_heads // 2, 2, *w.shape[1:])  # [n_h, h_d/2, 2, ...]
    return w.transpose(1, 2).reshape(rows, *w.shape[3:])  # [n_h * h_d, ...]


def _is_norm(hf_name: str) -> bool:
    return hf_name.endswith("norm.weight")


def gguf_value_to_hf(hf_name: str, w: torch.Tensor, config: dict[str, Any]) -> torch.Tensor:
    """Undo llama.cpp's converter changes to one tensor (see module docstring)."""
    arch = gguf_architecture(config["model_type"])
    if arch in _PERMUTED_ARCHITECTURES:
        if ".q_proj." in hf_name:
            return unpermute_qk(w, config["num_attention_heads"])
        if ".k_proj." in hf_name:
            return unpermute_qk(w, config["num_key_value_heads"])
    if arch in _NORM_PLUS_ONE_ARCHITECTURES and _is_norm(hf_name):
        return w - 1
    return w


def hf_value_to_gguf(hf_name: str, w: torch.Tensor, config: dict[str, Any]) -> torch.Tensor:
    """Apply llama.cpp's converter changes to one tensor (inverse of :func:`gguf_value_to_hf`)."""
    arch = gguf_architecture(config["model_type"])
    if arch in _PERMUTED_ARCHITECTURES:
        if ".q_proj." in hf_name:
            return permute_qk(w, config["num_attention_heads"])
        if ".k_proj." in hf_name:
            return permute_qk(w, config["num_key_value_heads"])
    if arch in _NORM_PLUS_ONE_ARCHITECTURES and _is_norm(hf_name):
        return w + 1
    return w


def _require(metadata: dict[str, Any], key: str) -> Any:
    if key not in metadata:
        raise ValueError(f"GGUF metadata lacks required key '{key}'")
    return metadata[key]


def hf_config_from_metadata(
    metadata: dict[str, Any],
    tensor_shapes: dict[str, tuple[int, ...]],
    rope_freqs: torch.Tensor | None = None,
) -> dict[str, Any]:
    """Build a Hugging Face ``config.json`` dictionary from GGUF metadata.

    Args:
        metadata (dict[str, Any]): GGUF key -> value (strings, numbers, lists).
        tensor_shapes (dict[str, tuple[int, ...]]): GGUF tensor name -> shape in torch order
            (rows first); detects tied embeddings and biases, and gives the vocabulary size
            (rows of ``token_embd``, which may exceed the token list).
        rope_freqs (torch.Tensor | None): the ``rope_freqs.weight`` tensor when the file has one
            (Llama 3.x RoPE scaling). Default None.

    Returns:
        dict[str, Any]: ``model_type``, ``architectures``, sizes, ``rope_theta``,
        ``rms_norm_eps``, ``tie_word_embeddings``, token ids, and the family's extras.

    Raises:
        ValueError: for an unsupported architecture, rope scaling, or a missing key.
    """
    arch = _require(metadata, "general.architecture")
    check_architecture(arch)
    scaling = metadata.get(f"{arch}.rope.scaling.type", "none")
    allowed = {"gemma3": "linear", "gpt-oss": "yarn"}.get(arch)
    if (scaling != "none" and scaling != allowed) or ("rope_freqs.weight" in tensor_shapes and rope_freqs is None):
        raise ValueError(f"GGUF rope scaling '{scaling}' (or a rope_freqs tensor not passed in) is not supported")

    def key(name: str) -> Any:
        return _require(metadata, f"{arch}.{name}")

    n_heads, d = int(key("attention.head_count")), int(key("embedding_length"))
    head_dim = int(metadata.get(f"{arch}.attention.key_length", d // n_heads))
    vocab = (
        tensor_shapes["token_embd.weight"][0]
        if "token_embd.weight" in tensor_shapes
        else metadata.get(f"{arch}.vocab_size") or len(_require(metadata, "tokenizer.ggml.tokens"))
    )
    rope_theta = float(metadata.get(f"{arch}.rope.freq_base", 10000.0))
    config = {
        "model_type": _MODEL_TYPES.get(arch, arch),
        "architectures": [_HF_MODEL_CLASSES[arch]],
        "vocab_size": int(vocab),
        "hidden_size": d,
        "intermediate_size": int(key("feed_forward_length")),
        "num_hidden_layers": int(key("block_count")),
        "num_attention_heads": n_heads,
        "num_key_value_heads": int(metadata.get(f"{arch}.attention.head_count_kv", n_heads)),
        "head_dim": head_dim,
        "rms_norm_eps": float(key("attention.layer_norm_rms_epsilon")),
        "rope_theta": rope_theta,
        "rope_parameters": {"rope_type": "default", "rope_theta": rope_theta},
        "max_position_embeddings": int(key("context_length")),
        "tie_word_embeddings": "output.weight" not in tensor_shapes,
        "attention_bias": "blk.0.attn_q.bias" in tensor_shapes,
        "hidden_act": "silu",
    }
    if rope_freqs is not None:
        rope_dim = int(metadata.get(f"{arch}.rope.dimension_count", head_dim))
        config["rope_scaling"] = rope_scaling_from_divisors(rope_freqs, rope_theta, rope_dim)
        config["rope_parameters"] = {**config["rope_scaling"], "rope_theta": rope_theta}
    for name in ("bos", "eos", "padding"):
        if f"tokenizer.ggml.{name}_token_id" in metadata:
            config[f"{name if name != 'padding' else 'pad'}_token_id"] = int(
                metadata[f"tokenizer.ggml.{name}_token_id"]
            )
    if arch == "gemma2":
        config.update(_gemma2_extras(metadata, config))
    if arch == "gemma3":
        config.update(_gemma3_extras(metadata, config, scaling))
    if arch == "qwen3moe":
        config.update(
            num_experts=int(key("expert_count")), num_experts_per_tok=int(key("expert_used_count")),
            moe_intermediate_size=int(key("expert_feed_forward_length")), norm_topk_prob=True,
        )
    if arch == "gpt-oss":
        config.update(_gpt_oss_extras(metadata, config, scaling))
        check_gpt_oss_tensor_shapes(tensor_shapes, config)
    if arch == "smollm3":
        step = SMOLLM3_NO_ROPE_LAYER_STEP
        config["no_rope_layer_interval"] = step
        config["no_rope_layers"] = [int((i + 1) % step != 0) for i in range(config["num_hidden_layers"])]
    return config


def _gemma3_extras(metadata: dict[str, Any], config: dict[str, Any], scaling: str) -> dict[str, Any]:
    """Gemma 3's window, layer pattern, per-layer-type RoPE and query scaling as llama.cpp runs it."""
    n, theta = config["num_hidden_layers"], config["rope_theta"]
    full = {"rope_type": "default", "rope_theta": theta}
    if scaling == "linear":
        full = {"rope_type": "linear", "factor": float(_require(metadata, "gemma3.rope.scaling.factor")), "rope_theta": theta}
    # llama.cpp scales queries by 1/sqrt(d / n_h) for the 27B model (62 blocks), else 1/sqrt(h_d)
    scalar = config["hidden_size"] // config["num_attention_heads"] if n == 62 else config["head_dim"]
    pattern = GEMMA3_SLIDING_WINDOW_PATTERN
    return {
        "hidden_act": "gelu_pytorch_tanh",
        "hidden_activation": "gelu_pytorch_tanh",
        "sliding_window": int(_require(metadata, "gemma3.attention.sliding_window")),
        "layer_types": ["sliding_attention" if (i + 1) % pattern else "full_attention" for i in range(n)],
        "rope_parameters": {"full_attention": full,
                            "sliding_attention": {"rope_type": "default", "rope_theta": GEMMA3_LOCAL_ROPE_BASE}},
        "query_pre_attn_scalar": scalar,
    }


def gemma3_gguf_rope(config: dict[str, Any]) -> tuple[float, float | None]:
    """Global RoPE theta and linear scaling factor of a Gemma 3 config, checked against what
    llama.cpp's gemma3 can run.

    Raises:
        ValueError: naming the setting that a GGUF file cannot hold.
    """
    n = config["num_hidden_layers"]
    pattern = config.get("sliding_window_pattern", GEMMA3_SLIDING_WINDOW_PATTERN)
    types = config.get("layer_types") or ["sliding_attention" if (i + 1) % pattern else "full_attention" for i in range(n)]
    expected = ["sliding_attention" if (i + 1) % GEMMA3_SLIDING_WINDOW_PATTERN else "full_attention" for i in range(n)]
    if list(types) != expected:
        raise ValueError(f"layer_types={list(types)} cannot be written to GGUF: llama.cpp's gemma3 makes every "
                         f"{GEMMA3_SLIDING_WINDOW_PATTERN}th layer global")
    head_dim = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    scalar = config["hidden_size"] // config["num_attention_heads"] if n == 62 else head_dim
    if config.get("query_pre_attn_scalar", scalar) != scalar:
        raise ValueError(f"query_pre_attn_scalar={config['query_pre_attn_scalar']} cannot be written to GGUF: "
                         f"llama.cpp's gemma3 uses {scalar} for this model")
    if config.get("final_logit_softcapping") or config.get("use_bidirectional_attention"):
        raise ValueError("final_logit_softcapping / use_bidirectional_attention cannot be written to a gemma3 GGUF")
    params = config.get("rope_parameters") or {}
    if "full_attention" in params:
        full, local = params["full_attention"], params.get("sliding_attention") or {}
        local_theta = float(local.get("rope_theta", GEMMA3_LOCAL_ROPE_BASE))
    else:
        full = {"rope_theta": config.get("rope_theta", 1e6), **(config.get("rope_scaling") or {})}
        local_theta = float(config.get("rope_local_base_freq", GEMMA3_LOCAL_ROPE_BASE))
    if local_theta != GEMMA3_LOCAL_ROPE_BASE:
        raise ValueError(f"local RoPE theta {local_theta} cannot be written to GGUF: llama.cpp's gemma3 uses "
                         f"{GEMMA3_LOCAL_ROPE_BASE}")
    kind = full.get("rope_type", full.get("type", "default"))
    if kind not in ("default", "linear"):
        raise ValueError(f"rope_type={kind!r} cannot be written to a gemma3 GGUF; supported: default, linear")
    return float(full.get("rope_theta", 1e6)), float(full["factor"]) if kind == "linear" else None


def check_smollm3_layout(config: dict[str, Any]) -> None:
    """Raise unless a SmolLM3 config has llama.cpp's NoPE layout (every 4th layer).

    Raises:
        ValueError: naming the config's ``no_rope_layers`` and the layout GGUF can hold.
    """
    n = config["num_hidden_layers"]
    step = SMOLLM3_NO_ROPE_LAYER_STEP
    expected = [int((i + 1) % step != 0) for i in range(n)]
    interval = config.get("no_rope_layer_interval", step)
    flags = list(config.get("no_rope_layers") or [int((i + 1) % interval != 0) for i in range(n)])[:n]
    if flags != expected:
        raise ValueError(
            f"no_rope_layers={flags} cannot be written to GGUF: llama.cpp's smollm3 puts NoPE on every "
            f"{step}th layer ({expected})"
        )


def _gemma2_extras(metadata: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """Gemma2 soft-capping, sliding window and query scaling (llama.cpp's choice of scalar)."""
    # llama.cpp scales queries by 1/sqrt(d / n_h) for the 27B model (46 blocks), else 1/sqrt(h_d)
    big = config["num_hidden_layers"] == 46
    scalar = config["hidden_size"] // config["num_attention_heads"] if big else config["head_dim"]
    return {
        "hidden_act": "gelu_pytorch_tanh",
        "hidden_activation": "gelu_pytorch_tanh",
        "attn_logit_softcapping": float(metadata.get("gemma2.attn_logit_softcapping", 50.0)),
        "final_logit_softcapping": float(metadata.get("gemma2.final_logit_softcapping", 30.0)),
        "sliding_window": int(metadata.get("gemma2.attention.sliding_window", 4096)),
        "query_pre_attn_scalar": scalar,
    }


def join_gguf_experts(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Join GGUF's stacked gate and up experts into Hugging Face's ``mlp.experts.gate_up_proj [E, 2h, d]``."""
    out = {}
    for name, value in state_dict.items():
        if name.endswith(".mlp.experts.gate_proj.weight"):
            prefix = name[: -len("gate_proj.weight")]
            out[f"{prefix}gate_up_proj"] = torch.cat([value, state_dict[f"{prefix}up_proj.weight"]], dim=1)
        elif name.endswith(".mlp.experts.down_proj.weight"):
            out[name[: -len(".weight")]] = value
        elif not name.endswith(".mlp.experts.up_proj.weight"):
            out[name] = value
    return out


def split_hf_experts(state_dict: dict[str, torch.Tensor], config: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Hugging Face expert tensors (one per expert, or stacked ``gate_up_proj`` / ``down_proj``) as
    GGUF's three stacked tensors per layer, named ``mlp.experts.{gate,up,down}_proj.weight``.

    Raises:
        ValueError: when a layer's experts are incomplete.
    """
    n = config["num_experts"]
    out: dict[str, torch.Tensor] = {}
    per: dict[str, dict[str, dict[int, torch.Tensor]]] = {}
    for name, value in state_dict.items():
        if match := re.match(r"^(.*\.mlp\.experts)\.(\d+)\.(gate_proj|up_proj|down_proj)\.weight$", name):
            per.setdefault(match.group(1), {}).setdefault(match.group(3), {})[int(match.group(2))] = value
        elif name.endswith(".mlp.experts.gate_up_proj"):
            gate, up = value.chunk(2, dim=1)  # [E, h, d] each
            out[name.replace("gate_up_proj", "gate_proj.weight")] = gate
            out[name.replace("gate_up_proj", "up_proj.weight")] = up
        elif name.endswith(".mlp.experts.down_proj"):
            out[f"{name}.weight"] = value
        else:
            out[name] = value
    for prefix, projs in per.items():
        for proj in ("gate_proj", "up_proj", "down_proj"):
            got = projs.get(proj, {})
            if sorted(got) != list(range(n)):
                raise ValueError(f"{prefix}.*.{proj}.weight: has experts {sorted(got)}, expected 0..{n - 1}")
            out[f"{prefix}.{proj}.weight"] = torch.stack([got[i] for i in range(n)])
    return out


def _gpt_oss_layer_types(period: int, n: int) -> list[str]:
    """llama.cpp's sliding-window layers for a pattern period: layer i slides when
    ``i % period < period - 1`` (every layer when the period is 0)."""
    return ["sliding_attention" if period == 0 or i % period < period - 1 else "full_attention" for i in range(n)]


def _gpt_oss_extras(metadata: dict[str, Any], config: dict[str, Any], scaling: str) -> dict[str, Any]:
    """gpt-oss's experts, sliding window, layer pattern and YaRN RoPE as llama.cpp runs them.

    YaRN is read as gpt-oss defines it (``truncate=False``, the published configs' setting): the
    correction range is not rounded to whole dims.
    """
    arch, theta = "gpt-oss", config["rope_theta"]
    period = metadata.get(f"{arch}.attention.sliding_window_pattern", GPT_OSS_SWA_PERIOD)
    if isinstance(period, (list, tuple)) or isinstance(period, bool):
        raise ValueError(f"{arch}.attention.sliding_window_pattern={period!r} is not supported; only a period "
                         f"(an integer, llama.cpp's default {GPT_OSS_SWA_PERIOD}) is")
    rope = {"rope_type": "default", "rope_theta": theta}
    if scaling == "yarn":
        rope = {
            "rope_type": "yarn",
            "rope_theta": theta,
            "factor": float(_require(metadata, f"{arch}.rope.scaling.factor")),
            "original_max_position_embeddings": int(_require(metadata, f"{arch}.rope.scaling.original_context_length")),
            "beta_fast": float(metadata.get(f"{arch}.rope.scaling.yarn_beta_fast", _YARN_BETA_FAST)),
            "beta_slow": float(metadata.get(f"{arch}.rope.scaling.yarn_beta_slow", _YARN_BETA_SLOW)),
            "truncate": False,
        }
        if f"{arch}.rope.scaling.yarn_attn_factor" in metadata:
            rope["attention_factor"] = float(metadata[f"{arch}.rope.scaling.yarn_attn_factor"])
    return {
        "intermediate_size": int(_require(metadata, f"{arch}.expert_feed_forward_length")),
        "num_local_experts": int(_require(metadata, f"{arch}.expert_count")),
        "num_experts_per_tok": int(_require(metadata, f"{arch}.expert_used_count")),
        "sliding_window": int(_require(metadata, f"{arch}.attention.sliding_window")),
        "layer_types": _gpt_oss_layer_types(int(period), config["num_hidden_layers"]),
        "attention_bias": True,
        "swiglu_limit": GPT_OSS_SWIGLU_LIMIT,
        "rope_parameters": rope,
    }


def check_gpt_oss_tensor_shapes(tensor_shapes: dict[str, tuple[int, ...]], config: dict[str, Any]) -> None:
    """Check a gpt-oss file's router, expert and sink tensors against its metadata.

    Args:
        tensor_shapes (dict[str, tuple[int, ...]]): GGUF tensor name -> torch-order shape.
        config (dict[str, Any]): from :func:`hf_config_from_metadata`.

    Raises:
        ValueError: naming the tensor, its shape and the shape the metadata implies.
    """
    e, h, d = config["num_local_experts"], config["intermediate_size"], config["hidden_size"]
    expected = {
        ("ffn_gate_inp", "weight"): (e, d), ("ffn_gate_inp", "bias"): (e,),
        ("ffn_gate_exps", "weight"): (e, h, d), ("ffn_gate_exps", "bias"): (e, h),
        ("ffn_up_exps", "weight"): (e, h, d), ("ffn_up_exps", "bias"): (e, h),
        ("ffn_down_exps", "weight"): (e, d, h), ("ffn_down_exps", "bias"): (e, d),
        ("attn_sinks", "weight"): (config["num_attention_heads"],),
    }
    for name, shape in tensor_shapes.items():
        match = _BLOCK_RE.match(name)
        want = expected.get(match.groups()[1:]) if match else None
        if want is not None and tuple(shape) != want:
            raise ValueError(
                f"GGUF tensor '{name}' has shape {list(shape)} but the metadata (gpt-oss.expert_count={e}, "
                f"gpt-oss.expert_feed_forward_length={h}, gpt-oss.embedding_length={d}, "
                f"gpt-oss.attention.head_count={config['num_attention_heads']}) implies {list(want)}"
            )


def gpt_oss_gguf_rope(config: dict[str, Any]) -> dict[str, Any] | None:
    """The YaRN parameters of a gpt-oss config (v4 ``rope_scaling`` or v5 ``rope_parameters``), None
    for plain RoPE.

    Raises:
        ValueError: for another kind of RoPE scaling.
    """
    scaling = config.get("rope_scaling") or config.get("rope_parameters") or {}
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    if kind == "default":
        return None
    if kind != "yarn":
        raise ValueError(f"rope_type={kind!r} cannot be written to a gpt-oss GGUF; supported: default, yarn")
    return scaling


def check_gpt_oss_layout(config: dict[str, Any]) -> None:
    """Raise unless a gpt-oss config has what llama.cpp's gpt-oss runs: attention biases, the
    clamped SwiGLU of limit 7 and alpha 1.702, and a sliding-window layer then a full one.

    Raises:
        ValueError: naming the setting that a GGUF file cannot hold.
    """
    n = config["num_hidden_layers"]
    expected = _gpt_oss_layer_types(GPT_OSS_SWA_PERIOD, n)
    types = list(config.get("layer_types") or expected)
    if types != expected:
        raise ValueError(f"layer_types={types} cannot be written to GGUF: llama.cpp's gpt-oss slides the window "
                         f"on every other layer, starting with the first ({expected})")
    if float(config.get("swiglu_limit", GPT_OSS_SWIGLU_LIMIT)) != GPT_OSS_SWIGLU_LIMIT:
        raise ValueError(f"swiglu_limit={config['swiglu_limit']} cannot be written to GGUF: llama.cpp's gpt-oss "
                         f"clamps at {GPT_OSS_SWIGLU_LIMIT}")
    if float(config.get("swiglu_alpha", 1.702)) != 1.702:
        raise ValueError(f"swiglu_alpha={config['swiglu_alpha']} cannot be written to GGUF: llama.cpp's gpt-oss "
                         "uses 1.702")
    if not config.get("attention_bias", True):
        raise ValueError("attention_bias=False cannot be written to GGUF: llama.cpp's gpt-oss requires the "
                         "attention biases")
    gpt_oss_gguf_rope(config)


def _interleave(first: torch.Tensor, second: torch.Tensor, dim: int) -> torch.Tensor:
    """``first`` and ``second`` alternating along ``dim`` (first, second, first, ...)."""
    return torch.stack([first, second], dim=dim + 1).flatten(dim, dim + 1)


def join_gpt_oss_experts(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """GGUF's split gpt-oss experts (under :func:`gguf_to_hf_name`'s names) in Hugging Face's layout:
    ``experts.gate_up_proj [E, d, 2h]`` and ``gate_up_proj_bias [E, 2h]`` with gate and up
    interleaved, ``down_proj [E, h, d]``, ``down_proj_bias [E, d]``, and ``self_attn.sinks``.

    Raises:
        ValueError: when a layer has only one of the gate and up tensors.
    """
    out = {}
    for name, value in state_dict.items():
        if ".mlp.experts.up_proj." in name:
            continue
        if ".mlp.experts.gate_proj." in name:
            up_name = name.replace(".gate_proj.", ".up_proj.")
            if up_name not in state_dict:
                raise ValueError(f"{name} has no {up_name} to pair with (GGUF's ffn_gate_exps needs its ffn_up_exps)")
            prefix, kind = name.rsplit(".gate_proj.", 1)
            joined = _interleave(value, state_dict[up_name], dim=1)  # [E, 2h, d] or [E, 2h]
            if kind == "weight":
                out[f"{prefix}.gate_up_proj"] = joined.transpose(1, 2).contiguous()  # [E, d, 2h]
            else:
                out[f"{prefix}.gate_up_proj_bias"] = joined
        elif ".mlp.experts.down_proj." in name:
            prefix, kind = name.rsplit(".down_proj.", 1)
            if kind == "weight":
                out[f"{prefix}.down_proj"] = value.transpose(1, 2).contiguous()  # [E, d, h] -> [E, h, d]
            else:
                out[f"{prefix}.down_proj_bias"] = value
        elif name.endswith(".self_attn.sinks.weight"):
            out[name[: -len(".weight")]] = value
        else:
            out[name] = value
    missing = sorted(n for n in state_dict if ".mlp.experts.up_proj." in n
                     and n.replace(".up_proj.", ".gate_proj.") not in state_dict)
    if missing:
        raise ValueError(f"{missing[0]} has no gate_proj to pair with (GGUF's ffn_up_exps needs its ffn_gate_exps)")
    return out


def split_gpt_oss_experts(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Hugging Face's gpt-oss experts and sinks as llama.cpp's converter splits them (inverse of
    :func:`join_gpt_oss_experts`), under names :func:`hf_to_gguf_name` maps."""
    out = {}
    for name, value in state_dict.items():
        if name.endswith(".mlp.experts.gate_up_proj"):
            prefix = name[: -len(".gate_up_proj")]
            rows = value.transpose(1, 2)  # [E, 2h, d], gate and up rows interleaved
            out[f"{prefix}.gate_proj.weight"] = rows[:, 0::2].contiguous()
            out[f"{prefix}.up_proj.weight"] = rows[:, 1::2].contiguous()
        elif name.endswith(".mlp.experts.gate_up_proj_bias"):
            prefix = name[: -len(".gate_up_proj_bias")]
            out[f"{prefix}.gate_proj.bias"] = value[:, 0::2].contiguous()
            out[f"{prefix}.up_proj.bias"] = value[:, 1::2].contiguous()
        elif name.endswith(".mlp.experts.down_proj"):
            out[f"{name}.weight"] = value.transpose(1, 2).contiguous()  # [E, h, d] -> [E, d, h]
        elif name.endswith(".mlp.experts.down_proj_bias"):
            out[name[: -len("_bias")] + ".bias"] = value
        elif name.endswith(".self_attn.sinks"):
            out[f"{name}.weight"] = value
        else:
            out[name] = value
    return out
