"""Hugging Face <-> torchtune state-dict key mapping.

Each model_type has a module-name table (torchtune path -> Hugging Face path, ``{}`` standing
for the layer index). Norm parameters are ``scale`` here and ``weight`` there. Families whose
Hugging Face checkpoints fuse projections (Phi-3) also list the fused modules, which are split
on the way in and concatenated on the way out.
"""

import logging
import re
from typing import Any, NamedTuple

import torch

from torchtune.models._mxfp4 import dequantize_mxfp4
from torchtune.utils import LazyStateDict

logger = logging.getLogger(__name__)

_LLAMA = {
    "tok_embeddings": "model.embed_tokens",
    "layers.{}.sa_norm": "model.layers.{}.input_layernorm",
    "layers.{}.attn.q_proj": "model.layers.{}.self_attn.q_proj",
    "layers.{}.attn.k_proj": "model.layers.{}.self_attn.k_proj",
    "layers.{}.attn.v_proj": "model.layers.{}.self_attn.v_proj",
    "layers.{}.attn.output_proj": "model.layers.{}.self_attn.o_proj",
    "layers.{}.attn.q_norm": "model.layers.{}.self_attn.q_norm",
    "layers.{}.attn.k_norm": "model.layers.{}.self_attn.k_norm",
    "layers.{}.mlp_norm": "model.layers.{}.post_attention_layernorm",
    "layers.{}.mlp.w1": "model.layers.{}.mlp.gate_proj",
    "layers.{}.mlp.w2": "model.layers.{}.mlp.down_proj",
    "layers.{}.mlp.w3": "model.layers.{}.mlp.up_proj",
    "norm": "model.norm",
    "output": "lm_head",
}
_GEMMA2 = {
    **_LLAMA,
    "layers.{}.sa_scale": "model.layers.{}.post_attention_layernorm",
    "layers.{}.mlp_norm": "model.layers.{}.pre_feedforward_layernorm",
    "layers.{}.mlp_scale": "model.layers.{}.post_feedforward_layernorm",
}
# Mixture-of-experts layers: the experts module of a decoder layer (EXPERTS_MODULE, so named in our
# layout and in Hugging Face's) holds the stacked parameters EXPERT_PARAMS, named as in transformers 5
# and listed in the order peft nests its LoRA wrappers on them (``target_parameters``:
# ``mlp.experts.<param>``). Our per-expert adapters of ``<param>`` are its submodule ``<param>_lora``.
EXPERTS_MODULE = "mlp.experts"
EXPERT_PARAMS = ("gate_up_proj", "down_proj")
# Qwen3-MoE: the router, and the experts stacked [E, ...] as transformers 5 holds them in memory
# (``experts.gate_up_proj [E, 2h, d]``, ``experts.down_proj [E, d, h]``). Checkpoint files (the
# Hub's and transformers' save_pretrained) hold one tensor per expert instead: they are stacked
# on the way in and split on the way out.
_QWEN3_MOE = {
    **_LLAMA,
    "layers.{}.mlp.router.gate": "model.layers.{}.mlp.gate",
    "layers.{}." + EXPERTS_MODULE: "model.layers.{}." + EXPERTS_MODULE,
}
# model_type -> the modules of one expert in its checkpoint files, which hold one tensor per expert
# (stacked on the way in, split on the way out); peft (transformers 5) reads LoRA targets so named
# as the experts' parameters
_PER_EXPERT_MODULES = {"qwen3_moe": ("gate_proj", "up_proj", "down_proj")}
_PER_EXPERT = re.compile(r"^(model\.layers\.\d+\.mlp\.experts)\.(\d+)\.(gate_proj|up_proj|down_proj)\.weight$")
# gpt-oss: the router and stacked experts (biases included), and the attention's sinks (a parameter
# of the attention module itself). Its files hold gate_up_proj as [E, d, 2h] with the gate and up
# columns interleaved and down_proj as [E, h, d] (the Hub's files: MXFP4 blocks and scales);
# ours are [E, 2h, d] (gate rows, then up rows) and [E, d, h].
_GPT_OSS = {
    **{k: v for k, v in _LLAMA.items() if not k.startswith("layers.{}.mlp.")},
    "layers.{}.attn": "model.layers.{}.self_attn",
    "layers.{}.mlp.router.gate": "model.layers.{}.mlp.router",
    "layers.{}." + EXPERTS_MODULE: "model.layers.{}." + EXPERTS_MODULE,
}
_MXFP4 = re.compile(r"^(.*\.mlp\.experts\.(gate_up_proj|down_proj))_(blocks|scales)$")
# Gemma 3 adds per-head q/k norms, already in the Llama table (as for Qwen3)
_GEMMA3 = _GEMMA2
# fused Hugging Face module -> torchtune modules in concatenation order (sizes from the config)
_PHI3_FUSED = {
    "model.layers.{}.self_attn.qkv_proj": ("layers.{}.attn.q_proj", "layers.{}.attn.k_proj", "layers.{}.attn.v_proj"),
    "model.layers.{}.mlp.gate_up_proj": ("layers.{}.mlp.w1", "layers.{}.mlp.w3"),
}
_PHI3 = {k: v for k, v in _LLAMA.items() if k not in {m for parts in _PHI3_FUSED.values() for m in parts}}

# model_type -> (module table, fused modules)
MODULE_TABLES: dict[str, tuple[dict[str, str], dict[str, tuple[str, ...]]]] = {
    "llama": (_LLAMA, {}),
    "mistral": (_LLAMA, {}),
    "qwen2": (_LLAMA, {}),
    "qwen3": (_LLAMA, {}),
    "qwen3_moe": (_QWEN3_MOE, {}),
    "gemma": (_LLAMA, {}),
    "gemma2": (_GEMMA2, {}),
    "gemma3_text": (_GEMMA3, {}),
    "gemma3": (_GEMMA3, {}),
    "gpt_oss": (_GPT_OSS, {}),
    "phi3": (_PHI3, _PHI3_FUSED),
    "smollm3": (_LLAMA, {}),
}
# model_type -> tie_word_embeddings when config.json does not say
_TIED_BY_DEFAULT = {"gemma": True, "gemma2": True, "gemma3_text": True, "gemma3": True, "smollm3": True}
# A multimodal Gemma 3 checkpoint nests the language model: transformers 4.x wrote
# ``language_model.model.*``, 5.x writes ``model.language_model.*``. Its vision tower and
# projector are skipped (the text decoder is all that is built from it).
_GEMMA3_TEXT_PREFIXES = (("language_model.model.", "model."), ("model.language_model.", "model."),
                         ("language_model.lm_head.", "lm_head."))
_GEMMA3_VISION = re.compile(r"^(model\.)?(vision_tower|multi_modal_projector)\.")


def _gemma3_text_keys(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The language model's weights of a multimodal Gemma 3 checkpoint, named as in Gemma3ForCausalLM."""
    out, skipped = {}, 0
    for key, value in state_dict.items():
        if _GEMMA3_VISION.match(key):
            skipped += 1
            continue
        for old, new in _GEMMA3_TEXT_PREFIXES:
            if key.startswith(old):
                key = new + key[len(old):]
                break
        out[key] = value
    if skipped:
        logger.info("model_type='gemma3': skipped %d vision-tower/projector tensors (text decoder only)", skipped)
    return out
_NORM_SUFFIXES = ("norm", "_scale")
_IGNORED_HF = re.compile(r".*rotary_emb\.inv_freq$")
_LAYER = re.compile(r"\.(\d+)\.")


def _tables(config: dict[str, Any]) -> tuple[dict[str, str], dict[str, tuple[str, ...]]]:
    model_type = config.get("model_type")
    if model_type not in MODULE_TABLES:
        raise ValueError(f"model_type={model_type!r} is not supported; supported: {sorted(MODULE_TABLES)}")
    return MODULE_TABLES[model_type]


def _template(name: str) -> tuple[str, str | None]:
    """Replace the first ``.<digits>.`` with ``.{}.``; return the template and the index."""
    match = _LAYER.search(name)
    if match is None:
        return name, None
    return name[: match.start()] + ".{}." + name[match.end() :], match.group(1)


def _map_module(name: str, table: dict[str, str]) -> str:
    template, layer = _template(name)
    if template not in table:
        raise ValueError(f"no mapping for module {name!r}; known: {sorted(table)}")
    return table[template].format(layer) if layer is not None else table[template]


def tune_to_hf_module_name(name: str, config: dict[str, Any]) -> str:
    """Map a torchtune module path to the Hugging Face one (e.g. for peft adapter keys).

    Args:
        name (str): e.g. ``"layers.3.attn.q_proj"``.
        config (dict[str, Any]): parsed Hugging Face ``config.json``.

    Returns:
        str: e.g. ``"model.layers.3.self_attn.q_proj"``.

    Raises:
        ValueError: on an unsupported model_type or an unknown (or fused) module.
    """
    return _map_module(name, _tables(config)[0])


def hf_to_tune_module_name(name: str, config: dict[str, Any]) -> str:
    """Map a Hugging Face module path to ours (inverse of :func:`tune_to_hf_module_name`).

    Args:
        name (str): e.g. ``"model.layers.3.mlp.experts"``.
        config (dict[str, Any]): parsed Hugging Face ``config.json``.

    Returns:
        str: e.g. ``"layers.3.mlp.experts"``.

    Raises:
        ValueError: on an unsupported model_type or an unknown (or fused) module.
    """
    return _map_module(name, {v: k for k, v in _tables(config)[0].items()})


def _num_experts(config: dict[str, Any]) -> int:
    return config.get("num_experts", config.get("num_local_experts"))


def expert_adapter_to_peft(
    leaf: str, lora_a: torch.Tensor, lora_b: torch.Tensor, config: dict[str, Any]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Our per-expert adapter of ``experts.<leaf>`` as peft's LoRA on that expert parameter.

    peft (``target_parameters``) keeps the E adapters of a stacked parameter as one ``lora_A``
    ``[E * r, in]`` (expert-major) and one ``lora_B`` ``[out, r * E]`` (expert-minor), with
    ``out`` in the order of the Hugging Face parameter (gpt-oss interleaves gate and up).

    Args:
        leaf (str): ``"gate_up_proj"`` or ``"down_proj"``.
        lora_a (torch.Tensor): ours, ``[E, r, in]``.
        lora_b (torch.Tensor): ours, ``[E, out, r]``.
        config (dict[str, Any]): parsed Hugging Face ``config.json``.

    Returns:
        tuple[torch.Tensor, torch.Tensor]: peft's ``lora_A.weight`` and ``lora_B.weight``.
    """
    if config.get("model_type") == "gpt_oss" and leaf == "gate_up_proj":
        gate, up = lora_b.chunk(2, dim=1)
        lora_b = torch.stack([gate, up], dim=2).flatten(1, 2)  # rows gate, up, gate, up, ...
    e, r, in_dim = lora_a.shape
    return lora_a.reshape(e * r, in_dim), lora_b.permute(1, 2, 0).reshape(lora_b.shape[1], r * e)


def expert_adapter_from_peft(
    leaf: str, lora_a: torch.Tensor, lora_b: torch.Tensor, config: dict[str, Any]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse of :func:`expert_adapter_to_peft`: ours ``[E, r, in]`` and ``[E, out, r]``.

    Raises:
        ValueError: when the shapes do not divide by config.json's expert count.
    """
    e = _num_experts(config)
    if not e or lora_a.shape[0] % e or lora_b.shape[1] % e:
        raise ValueError(f"the peft adapter of experts.{leaf} ({list(lora_a.shape)}, {list(lora_b.shape)}) does not "
                         f"hold one adapter for each of config.json's {e} experts")
    r = lora_a.shape[0] // e
    a = lora_a.reshape(e, r, lora_a.shape[1])
    b = lora_b.reshape(lora_b.shape[0], r, e).permute(2, 0, 1)  # [E, out, r]
    if config.get("model_type") == "gpt_oss" and leaf == "gate_up_proj":
        b = torch.cat([b[:, 0::2], b[:, 1::2]], dim=1)  # gate rows, then up rows
    return a.contiguous(), b.contiguous()


def per_expert_module_names(config: dict[str, Any]) -> tuple[str, ...]:
    """The module names of one expert in the checkpoint files of ``config``'s model type.

    Qwen3-MoE files hold one ``gate_proj``/``up_proj``/``down_proj`` per expert (transformers 4's
    layout, stacked into ``experts.gate_up_proj`` / ``experts.down_proj`` on the way in); peft, on
    transformers 5, reads LoRA targets named like them as the stacked experts' parameters.

    Args:
        config (dict[str, Any]): parsed Hugging Face ``config.json``.

    Returns:
        tuple[str, ...]: e.g. ``("gate_proj", "up_proj", "down_proj")``; empty when the model type has
        no experts or its files stack them.
    """
    return _PER_EXPERT_MODULES.get(config.get("model_type"), ())


class FusedPart(NamedTuple):
    """Where a torchtune module lives in a Hugging Face layout that fuses it with its siblings.

    Attributes:
        hf_module (str): the fused Hugging Face module, e.g. ``"model.layers.0.self_attn.qkv_proj"``.
        index (int): this module's position among the parts.
        modules (tuple[str, ...]): the torchtune modules of all parts in concatenation order, e.g.
            ``("layers.0.attn.q_proj", "layers.0.attn.k_proj", "layers.0.attn.v_proj")``.
        sizes (tuple[int, ...]): each part's output rows (from the config), in the same order.
    """

    hf_module: str
    index: int
    modules: tuple[str, ...]
    sizes: tuple[int, ...]


def fused_part_of(name: str, config: dict[str, Any]) -> FusedPart | None:
    """The fused Hugging Face module that holds torchtune module ``name``, if the layout fuses it.

    Args:
        name (str): a torchtune module path, e.g. ``"layers.3.mlp.w1"``.
        config (dict[str, Any]): parsed Hugging Face ``config.json``.

    Returns:
        FusedPart | None: None when ``name`` has a Hugging Face module of its own.

    Raises:
        ValueError: on an unsupported model_type.
    """
    template, layer = _template(name)
    for hf_template, parts in _tables(config)[1].items():
        if template in parts:
            return FusedPart(hf_template.format(layer), parts.index(template), tuple(p.format(layer) for p in parts),
                             tuple(_fused_sizes(hf_template, config)))
    return None


def _expert_shapes(config: dict[str, Any]) -> tuple[int, int, int]:
    # the Hub's config.json says num_experts; transformers 5 writes num_local_experts
    num_experts = config.get("num_experts", config.get("num_local_experts"))
    return num_experts, config["moe_intermediate_size"], config["hidden_size"]


def _check_shape(key: str, got: tuple[int, ...], expected: tuple[int, ...], config: dict[str, Any]) -> None:
    if tuple(got) != tuple(expected):
        e, h, d = _expert_shapes(config)
        raise ValueError(
            f"{key} has shape {list(got)} but config.json (num_experts={e}, moe_intermediate_size={h}, "
            f"hidden_size={d}) implies {list(expected)}"
        )


def _stack_experts(state_dict: dict[str, torch.Tensor], config: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Stack per-expert tensors into ``experts.gate_up_proj`` / ``experts.down_proj`` and check
    every expert tensor's shape against config.json."""
    e, h, d = _expert_shapes(config)
    out: dict[str, torch.Tensor] = {}
    per: dict[str, dict[str, dict[int, torch.Tensor]]] = {}
    for key, value in state_dict.items():
        match = _PER_EXPERT.match(key)
        if match is None:
            if key.endswith(".mlp.experts.gate_up_proj"):
                _check_shape(key, value.shape, (e, 2 * h, d), config)
            elif key.endswith(".mlp.experts.down_proj"):
                _check_shape(key, value.shape, (e, d, h), config)
            out[key] = value
            continue
        prefix, index, proj = match.group(1), int(match.group(2)), match.group(3)
        _check_shape(key, value.shape, (d, h) if proj == "down_proj" else (h, d), config)
        if index >= e:
            raise ValueError(f"{key}: expert index {index} but config.json has num_experts={e}")
        per.setdefault(prefix, {}).setdefault(proj, {})[index] = value
    for prefix, projs in per.items():
        for proj in ("gate_proj", "up_proj", "down_proj"):
            missing = sorted(set(range(e)) - set(projs.get(proj, {})))
            if missing:
                raise ValueError(f"{prefix}.*.{proj}.weight: experts {missing} missing (config.json has num_experts={e})")
        gate = torch.stack([projs["gate_proj"][i] for i in range(e)])  # [E, h, d]
        up = torch.stack([projs["up_proj"][i] for i in range(e)])  # [E, h, d]
        out[f"{prefix}.gate_up_proj"] = torch.cat([gate, up], dim=1)  # [E, 2h, d]
        out[f"{prefix}.down_proj"] = torch.stack([projs["down_proj"][i] for i in range(e)])  # [E, d, h]
    return out


def _split_experts(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The checkpoint-file layout: one ``gate_proj``/``up_proj``/``down_proj`` per expert."""
    out = {}
    for key, value in state_dict.items():
        if key.endswith(".mlp.experts.gate_up_proj"):
            prefix = key[: -len("gate_up_proj")]
            for i, (gate, up) in enumerate(zip(*value.chunk(2, dim=1))):
                out[f"{prefix}{i}.gate_proj.weight"] = gate
                out[f"{prefix}{i}.up_proj.weight"] = up
        elif key.endswith(".mlp.experts.down_proj"):
            prefix = key[: -len("down_proj")]
            for i, down in enumerate(value.unbind(0)):
                out[f"{prefix}{i}.down_proj.weight"] = down
        else:
            out[key] = value
    return out


def _gpt_oss_experts_in(state_dict: dict[str, torch.Tensor], config: dict[str, Any]) -> dict[str, torch.Tensor]:
    """gpt-oss expert tensors of a file (MXFP4 decoded) in our layout, each shape checked."""
    e, h, d = config.get("num_local_experts", config.get("num_experts")), config["intermediate_size"], config["hidden_size"]
    out, packed = {}, {}
    for key, value in state_dict.items():
        match = _MXFP4.match(key)
        if match is not None:
            packed.setdefault(match.group(1), {})[match.group(3)] = value
        else:
            out[key] = value
    for key, parts in packed.items():
        if set(parts) != {"blocks", "scales"}:
            raise ValueError(f"{key}: the MXFP4 checkpoint holds only its {sorted(parts)} (needs blocks and scales)")
        out[key] = dequantize_mxfp4(parts["blocks"], parts["scales"]).transpose(1, 2)  # the file layout: [E, in, out]
    if packed:
        logger.info("model_type='gpt_oss': dequantised %d MXFP4 expert tensors to float32 (outputs are written "
                    "in the training dtype, not MXFP4)", len(packed))
    expected = {"gate_up_proj": (e, d, 2 * h), "gate_up_proj_bias": (e, 2 * h), "down_proj": (e, h, d),
                "down_proj_bias": (e, d)}
    for key in list(out):
        leaf = key.rsplit(".", 1)[1]
        if ".mlp.experts." not in key or leaf not in expected:
            continue
        value = out[key]
        if tuple(value.shape) != expected[leaf]:
            raise ValueError(f"{key} has shape {list(value.shape)} but config.json (num_local_experts={e}, "
                             f"intermediate_size={h}, hidden_size={d}) implies {list(expected[leaf])}")
        if leaf == "gate_up_proj":  # [E, d, 2h] interleaved -> [E, 2h, d], gate rows then up rows
            rows = value.transpose(1, 2)
            out[key] = torch.cat([rows[:, 0::2], rows[:, 1::2]], dim=1).contiguous()
        elif leaf == "gate_up_proj_bias":
            out[key] = torch.cat([value[:, 0::2], value[:, 1::2]], dim=1).contiguous()  # [E, 2h]
        elif leaf == "down_proj":
            out[key] = value.transpose(1, 2).contiguous()  # [E, d, h]
    return out


def _gpt_oss_experts_out(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our gpt-oss expert tensors in the layout of transformers' files (inverse of the above)."""
    out = {}
    for key, value in state_dict.items():
        if key.endswith(".mlp.experts.gate_up_proj") or key.endswith(".mlp.experts.gate_up_proj_bias"):
            gate, up = value.chunk(2, dim=1)
            value = torch.stack([gate, up], dim=2).flatten(1, 2)  # rows (or columns) gate, up, gate, up, ...
            if key.endswith("gate_up_proj"):
                value = value.transpose(1, 2)  # [E, d, 2h]
            out[key] = value.contiguous()
        elif key.endswith(".mlp.experts.down_proj"):
            out[key] = value.transpose(1, 2).contiguous()  # [E, h, d]
        else:
            out[key] = value
    return out


def _tied(config: dict[str, Any]) -> bool:
    model_type = config.get("model_type")
    if model_type == "gemma3" and "tie_word_embeddings" in (config.get("text_config") or {}):
        return bool(config["text_config"]["tie_word_embeddings"])
    return bool(config.get("tie_word_embeddings", _TIED_BY_DEFAULT.get(model_type, False)))


def _split_param(name: str) -> tuple[str, str]:
    module, _, leaf = name.rpartition(".")
    return module, leaf


def _fused_sizes(hf_module: str, config: dict[str, Any]) -> list[int]:
    heads = config["num_attention_heads"]
    head_dim = config.get("head_dim") or config["hidden_size"] // heads
    if hf_module.endswith("qkv_proj"):
        kv = config.get("num_key_value_heads") or heads
        return [heads * head_dim, kv * head_dim, kv * head_dim]
    return [config["intermediate_size"]] * 2


def hf_to_tune(state_dict: dict[str, torch.Tensor], config: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Rename (and split fused) Hugging Face weights into torchtune's layout.

    Args:
        state_dict (dict[str, torch.Tensor]): Hugging Face state dict.
        config (dict[str, Any]): parsed ``config.json`` (``model_type`` selects the table).

    Returns:
        dict[str, torch.Tensor]: torchtune state dict. ``lm_head.weight`` is dropped when
        ``tie_word_embeddings`` is true.

    Raises:
        ValueError: on an unsupported model_type or an unknown key.
    """
    table, fused = _tables(config)
    reverse = {v: k for k, v in table.items()}
    tied = _tied(config)
    if config.get("model_type") == "gemma3":
        state_dict = _gemma3_text_keys(state_dict)
    if config.get("model_type") in _PER_EXPERT_MODULES:
        state_dict = _stack_experts(state_dict, config)
    if config.get("model_type") == "gpt_oss":
        state_dict = _gpt_oss_experts_in(state_dict, config)
    out = {}
    for key, value in state_dict.items():
        if _IGNORED_HF.match(key) or (tied and key == "lm_head.weight"):
            continue
        module, leaf = _split_param(key)
        template, layer = _template(module)
        if template in fused:
            parts = value.split(_fused_sizes(template, config), dim=0)
            for tune_template, part in zip(fused[template], parts):
                out[f"{tune_template.format(layer)}.{leaf}"] = part
            continue
        tune_module = _map_module(module, reverse)
        if tune_module.endswith(_NORM_SUFFIXES) and leaf == "weight":
            leaf = "scale"
        out[f"{tune_module}.{leaf}"] = value
    return out


def tune_to_hf(
    state_dict: dict[str, torch.Tensor] | LazyStateDict, config: dict[str, Any]
) -> dict[str, torch.Tensor] | LazyStateDict:
    """Rename (and fuse) torchtune weights into the Hugging Face layout.

    Args:
        state_dict (dict[str, torch.Tensor] | LazyStateDict): torchtune state dict (no adapter
            entries). A :class:`torchtune.utils.LazyStateDict` gives one: each Hugging Face
            tensor is computed when read, from the tensors of its own layer.
        config (dict[str, Any]): parsed ``config.json``.

    Returns:
        dict[str, torch.Tensor] | LazyStateDict: Hugging Face state dict, lazy for a lazy input.

    Raises:
        ValueError: on an unsupported model_type, an unknown key or a missing fused part.
    """
    if isinstance(state_dict, LazyStateDict):
        return _lazy_tune_to_hf(state_dict, config)
    table, fused = _tables(config)
    part_of = {t: (hf, i) for hf, tunes in fused.items() for i, t in enumerate(tunes)}
    out, pending = {}, {}
    for key, value in state_dict.items():
        module, leaf = _split_param(key)
        template, layer = _template(module)
        if template in part_of:
            hf_template, idx = part_of[template]
            pending.setdefault((hf_template.format(layer), leaf, hf_template), {})[idx] = value
            continue
        hf_module = _map_module(module, table)
        out[f"{hf_module}.{'weight' if leaf == 'scale' else leaf}"] = value
    for (hf_module, leaf, hf_template), parts in pending.items():
        if len(parts) != len(fused[hf_template]):
            raise ValueError(f"cannot fuse {hf_module}.{leaf}: got parts {sorted(parts)} of {fused[hf_template]}")
        out[f"{hf_module}.{leaf}"] = torch.cat([parts[i] for i in range(len(parts))], dim=0)
    if config.get("model_type") in _PER_EXPERT_MODULES:
        out = _split_experts(out)
    if config.get("model_type") == "gpt_oss":
        out = _gpt_oss_experts_out(out)
    if config.get("model_type") == "gemma3":  # transformers 5.x's multimodal layout
        out = {("model.language_model." + k[len("model."):] if k.startswith("model.") else k): v for k, v in out.items()}
    return out


def _lazy_tune_to_hf(state_dict: LazyStateDict, config: dict[str, Any]) -> LazyStateDict:
    """:func:`tune_to_hf` of a lazy state dict, computed one layer at a time.

    Every conversion (renames, fusions, expert stacks) stays within one layer, so a Hugging Face
    tensor is converted from the tensors of its layer alone; the rest of that layer's result is
    kept until read, as writers read a layer's tensors together. Names, order, shapes and dtypes
    are those of the eager conversion, run on meta tensors.
    """
    groups: dict[str, list[str]] = {}  # layer index (or the key itself outside the layers) -> keys
    for key in state_dict:
        layer = _template(key)[1]
        groups.setdefault(key if layer is None else layer, []).append(key)
    metas = tune_to_hf({k: state_dict.meta(k) for k in state_dict}, config)
    group_of = {}
    for group, keys in groups.items():
        for hf_key in tune_to_hf({k: state_dict.meta(k) for k in keys}, config):
            group_of[hf_key] = group
    if set(group_of) != set(metas):
        raise ValueError(f"model_type={config.get('model_type')!r}: converting layer by layer gives other names "
                         "than converting the whole state dict; save an eager state dict (lazy=False) instead")
    pending: dict[str, torch.Tensor] = {}  # converted tensors of the latest layer, not yet read

    def compute(hf_key: str) -> torch.Tensor:
        if hf_key not in pending:
            pending.clear()
            pending.update(tune_to_hf({k: state_dict[k] for k in groups[group_of[hf_key]]}, config))
        return pending.pop(hf_key)

    return LazyStateDict(metas, compute)
