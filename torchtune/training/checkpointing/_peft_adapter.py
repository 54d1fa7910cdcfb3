"""LoRA/DoRA adapters in the peft format (``adapter_model.safetensors`` + ``adapter_config.json``).

Our adapter keys ``<module>.lora_a.weight``, ``<module>.lora_b.weight`` and ``<module>.magnitude``
become ``base_model.model.<hf module>.lora_A.weight``, ``...lora_B.weight`` and
``...lora_magnitude_vector``, where ``<hf module>`` is the Hugging Face module path.
"""

import json
import re
import warnings
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from torchtune.config import ConfigError
from torchtune.models import (
    EXPERT_PARAMS,
    EXPERTS_MODULE,
    expert_adapter_from_peft,
    expert_adapter_to_peft,
    fused_part_of,
    hf_to_tune,
    hf_to_tune_module_name,
    per_expert_module_names,
    tune_to_hf,
    tune_to_hf_module_name,
)
from torchtune.modules.peft import AdapterSpec, get_adapter_state_dict, get_merged_lora_ckpt

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_SUBDIR = "adapter"  # a checkpoint's peft adapter, beside the merged model
_PEFT_PREFIX = "base_model.model."
# safetensors metadata of an adapter with fused modules: how their adapters split back into ours
_FUSED_METADATA = "torchtune_fused"
# per-expert adapters (torchtune.modules.peft.ExpertLoRA) beside the stacked expert weights; in peft,
# LoRA on these parameters (target_parameters, in the order of EXPERT_PARAMS)
_EXPERT_ADAPTER = re.compile(rf"^(.*\.{re.escape(EXPERTS_MODULE)})\.({'|'.join(EXPERT_PARAMS)})_lora$")
# our parameter suffix -> peft parameter suffix
_SUFFIXES = {"lora_a.weight": "lora_A.weight", "lora_b.weight": "lora_B.weight", "magnitude": "lora_magnitude_vector"}


class _TargetsError(ValueError):
    """Adapters on targets that the checkpoint's peft layout cannot hold; the message names the config
    keys that fix it (so :func:`check_save_mappings` adds no hint of its own)."""


def _split_adapter_key(key: str) -> tuple[str, str]:
    for ours in _SUFFIXES:
        if key.endswith("." + ours):
            return key[: -len(ours) - 1], ours
    raise ValueError(f"key={key!r} is not an adapter key (expected a suffix in {sorted(_SUFFIXES)})")


def adapter_to_peft(
    adapter_state_dict: dict[str, torch.Tensor],
    config: dict[str, Any],
    *,
    adapter_specs: Mapping[str, AdapterSpec] | None = None,
) -> dict[str, torch.Tensor]:
    """Rename our adapter entries to peft keys.

    Adapters on modules that the checkpoint's layout fuses (Phi-3's ``qkv_proj`` and
    ``gate_up_proj``) become one peft adapter on the fused module, exactly: the parts' ``A`` are
    stacked ``[sum r_i, in]`` and their ``B`` placed block-diagonally ``[sum out_i, sum r_i]``, so
    the fused update equals each part's update on its rows (see :func:`_fuse_part_adapters`).

    Args:
        adapter_state_dict (dict[str, torch.Tensor]): only ``lora_a``/``lora_b``/``magnitude`` keys.
        config (dict[str, Any]): the Hugging Face ``config.json`` of the base model.
        adapter_specs (Mapping[str, AdapterSpec] | None): each adapter's rank and alpha (from
            ``get_adapter_specs(model)``); needed only when fused parts have different
            ``alpha / rank``. Default None.

    Returns:
        dict[str, torch.Tensor]: peft-keyed tensors.

    Raises:
        ValueError: on a non-adapter key, a module without a Hugging Face counterpart, or DoRA on
            only some parts of a fused module.
    """
    return _to_peft(adapter_state_dict, config, adapter_specs)[0]


def _to_peft(
    adapter_state_dict: Mapping[str, torch.Tensor],
    config: dict[str, Any],
    adapter_specs: Mapping[str, AdapterSpec] | None,
) -> tuple[dict[str, torch.Tensor], dict[str, AdapterSpec], dict[str, list]]:
    """:func:`adapter_to_peft`, plus each peft module's spec and how fused modules split back.

    Returns:
        tuple: the peft state dict; Hugging Face module -> AdapterSpec (the modules found in
        ``adapter_specs``, and every fused one); fused Hugging Face module ->
        ``[[our module, rank, ratio], ...]`` (its parts in column order; ``ratio`` is the factor
        their ``B`` was scaled by).
    """
    modules: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in adapter_state_dict.items():
        module, suffix = _split_adapter_key(key)
        modules.setdefault(module, {})[suffix] = value
    out, hf_specs, layout = {}, {}, {}
    fused_groups: dict[str, list] = {}
    experts = {m: _EXPERT_ADAPTER.match(m) for m in modules}
    # adapters on modules named like one expert's in the checkpoint files (a dense MLP's, beside experts)
    per_expert, renamed = per_expert_module_names(config), []
    targeted = [p for p in EXPERT_PARAMS if any(match and match.group(2) == p for match in experts.values())]
    for module, tensors in modules.items():
        if experts[module]:  # peft nests one wrapper per targeted parameter: the last one outermost
            experts_module, leaf = experts[module].groups()
            depth = len(targeted) - 1 - targeted.index(leaf)
            hf_module = tune_to_hf_module_name(experts_module, config) + ".base_layer" * depth
            lora_a, lora_b = expert_adapter_to_peft(leaf, tensors["lora_a.weight"], tensors["lora_b.weight"], config)
            out[f"{_PEFT_PREFIX}{hf_module}.lora_A.weight"] = lora_a
            out[f"{_PEFT_PREFIX}{hf_module}.lora_B.weight"] = lora_b
            if adapter_specs is not None and module in adapter_specs:
                hf_specs[f"{EXPERTS_MODULE}.{leaf}"] = adapter_specs[module]
            continue
        part = fused_part_of(module, config)
        if part is not None:
            fused_groups.setdefault(part.hf_module, []).append((part, module, tensors))
            continue
        hf_module = tune_to_hf_module_name(module, config)
        for suffix, value in tensors.items():
            out[f"{_PEFT_PREFIX}{hf_module}.{_SUFFIXES[suffix]}"] = value
        if adapter_specs is not None and module in adapter_specs:
            hf_specs[hf_module] = adapter_specs[module]
        if hf_module.rsplit(".", 1)[-1] in per_expert:
            renamed.append(module)
    if targeted and renamed:
        raise _TargetsError(
            f"peft reads LoRA targets named {'/'.join(per_expert)} of a {config['model_type']} model as its "
            f"experts' parameters, so adapters on both the experts and the dense feed-forward layers ({min(renamed)}, "
            "...) cannot be written in a form it loads: train the experts' adapters on a model without dense "
            "layers, or set apply_lora_to_mlp=false"
        )
    for hf_module, parts in fused_groups.items():
        parts = sorted(parts, key=lambda p: p[0].index)
        tensors, hf_specs[hf_module], layout[hf_module] = _fuse_part_adapters(hf_module, parts, adapter_specs)
        for suffix, value in tensors.items():
            out[f"{_PEFT_PREFIX}{hf_module}.{_SUFFIXES[suffix]}"] = value
    return out, hf_specs, layout


def _fuse_part_adapters(
    hf_module: str,
    parts: list,
    adapter_specs: Mapping[str, AdapterSpec] | None,
) -> tuple[dict[str, torch.Tensor], AdapterSpec, list]:
    """One peft adapter on a fused module from our adapters on some of its parts.

    Part ``i`` adds ``s_i B_i A_i x`` to its rows. The fused adapter has ``A = [A_0; A_1; ...]``
    and ``B`` holding ``(s_i / s) B_i`` at part ``i``'s rows and columns, zeros elsewhere (a part
    without an adapter keeps zero rows); its rank is ``sum r_i`` and its alpha ``s * rank``, with
    ``s`` the first part's ``alpha / rank``, so ``s B A x`` is every part's update on its rows.
    ``parts`` holds ``(FusedPart, our module, its adapter tensors)`` in concatenation order.
    """
    layout_of = parts[0][0]
    specs = []
    for _, module, tensors in parts:
        spec = adapter_specs.get(module) if adapter_specs is not None else None
        if spec is None:  # without specs all parts are taken to share one alpha / rank
            rank = tensors["lora_a.weight"].shape[0]
            spec = AdapterSpec(rank=rank, alpha=float(rank), use_dora="magnitude" in tensors)
        specs.append(spec)
    dora = [spec.use_dora for spec in specs]
    if any(dora) and (not all(dora) or len(parts) != len(layout_of.modules)):
        raise _TargetsError(
            f"DoRA on {hf_module!r} (Hugging Face fuses {list(layout_of.modules)} into it) needs DoRA adapters on "
            f"all of its parts, got {[module for _, module, _ in parts]}: add the missing ones to the LoRA targets "
            "(model.lora_attn_modules, model.apply_lora_to_mlp) or use LoRA (model.use_dora: false)"
        )
    scale = specs[0].alpha / specs[0].rank
    rank = sum(spec.rank for spec in specs)
    row_offsets = [sum(layout_of.sizes[:i]) for i in range(len(layout_of.sizes))]
    b = parts[0][2]["lora_b.weight"].new_zeros(sum(layout_of.sizes), rank)  # [sum out_i, sum r_i]
    column, layout, a_blocks, magnitudes = 0, [], [], []
    for (part, module, tensors), spec in zip(parts, specs):
        ratio = (spec.alpha / spec.rank) / scale
        rows = slice(row_offsets[part.index], row_offsets[part.index] + layout_of.sizes[part.index])
        b[rows, column : column + spec.rank] = tensors["lora_b.weight"] if ratio == 1.0 else tensors["lora_b.weight"] * ratio
        a_blocks.append(tensors["lora_a.weight"])
        if "magnitude" in tensors:
            magnitudes.append(tensors["magnitude"])
        layout.append([module, spec.rank, ratio])
        column += spec.rank
    fused = {"lora_a.weight": torch.cat(a_blocks, dim=0), "lora_b.weight": b}  # A: [sum r_i, in]
    if magnitudes:
        fused["magnitude"] = torch.cat(magnitudes, dim=0)  # [sum out_i]
    spec = AdapterSpec(rank=rank, alpha=scale * rank, dropout=max(s.dropout for s in specs), use_dora=all(dora))
    return fused, spec, layout


def peft_to_adapter(
    peft_state_dict: dict[str, torch.Tensor],
    config: dict[str, Any],
    *,
    fused_layout: Mapping[str, list] | None = None,
    target_parameters: list[str] | None = None,
) -> dict[str, torch.Tensor]:
    """Rename peft adapter tensors to our adapter keys (inverse of :func:`adapter_to_peft`).

    A peft adapter on a fused module (Phi-3's ``qkv_proj``) becomes adapters on our parts. With
    the ``fused_layout`` that our writer records in the file, each part gets back exactly the
    adapter it had; without it (an adapter trained elsewhere) each part gets the whole ``A`` and
    its rows of ``B``, which computes the same update at the fused rank.

    Args:
        peft_state_dict (dict[str, torch.Tensor]): peft-keyed tensors.
        config (dict[str, Any]): the base model's Hugging Face ``config.json``.
        fused_layout (Mapping[str, list] | None): the adapter file's ``torchtune_fused`` metadata.
            Default None.
        target_parameters (list[str] | None): ``adapter_config.json``'s (LoRA on expert
            parameters; peft nests one wrapper per entry, the last outermost). Default None.

    Raises:
        ValueError: on a key that is not a peft LoRA/DoRA key of a known module.
    """
    reverse = {v: k for k, v in _SUFFIXES.items()}
    modules: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in peft_state_dict.items():
        hf_key = key.removeprefix(_PEFT_PREFIX)
        peft_suffix = next((s for s in reverse if hf_key.endswith("." + s)), None)
        if not key.startswith(_PEFT_PREFIX) or peft_suffix is None:
            raise ValueError(f"key={key!r} is not a peft LoRA key (base_model.model.<module>.lora_A.weight, ...)")
        modules.setdefault(hf_key[: -len(peft_suffix) - 1], {})[reverse[peft_suffix]] = value
    out = {}
    params = [p.rsplit(".", 1)[-1] for p in target_parameters or []]
    for hf_module, tensors in modules.items():
        if "lora_b.weight" not in tensors:
            raise ValueError(f"the peft adapter has no lora_B.weight for {hf_module!r}")
        experts_module, depth = hf_module, 0
        while experts_module.endswith(".base_layer"):
            experts_module, depth = experts_module.removesuffix(".base_layer"), depth + 1
        if experts_module.endswith(f".{EXPERTS_MODULE}"):
            if depth >= len(params) or params[len(params) - 1 - depth] not in EXPERT_PARAMS:
                raise ValueError(f"{hf_module!r}: the adapter's target_parameters={target_parameters} do not say "
                                 f"which expert parameter it adapts")
            leaf = params[len(params) - 1 - depth]
            a, b = expert_adapter_from_peft(leaf, tensors["lora_a.weight"], tensors["lora_b.weight"], config)
            module = f"{hf_to_tune_module_name(experts_module, config)}.{leaf}_lora"
            out[f"{module}.lora_a.weight"], out[f"{module}.lora_b.weight"] = a, b
            continue
        # B's rows (and DoRA's magnitude) split as the module's weight does: a fused module gives several parts
        rows = _split_rows(hf_module, tensors["lora_b.weight"], config)
        if len(rows) == 1:
            ((module, _),) = rows.items()
            out.update({f"{module}.{suffix}": value for suffix, value in tensors.items()})
            continue
        magnitudes = _split_rows(hf_module, tensors["magnitude"], config) if "magnitude" in tensors else {}
        if fused_layout is not None and hf_module in fused_layout:
            parts, column = [], 0
            for module, rank, ratio in fused_layout[hf_module]:
                b = rows[module][:, column : column + rank]
                parts.append((module, tensors["lora_a.weight"][column : column + rank], b if ratio == 1.0 else b / ratio))
                column += rank
        else:
            parts = [(module, tensors["lora_a.weight"], b) for module, b in rows.items()]
        for module, a, b in parts:
            out[f"{module}.lora_a.weight"] = a.clone()
            out[f"{module}.lora_b.weight"] = b.clone()
            if module in magnitudes:
                out[f"{module}.magnitude"] = magnitudes[module].clone()
    return out


def _split_rows(hf_module: str, value: torch.Tensor, config: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Our module(s) for a Hugging Face module, each with its rows of ``value`` (split as the weight is)."""
    return {key.rsplit(".", 1)[0]: part for key, part in hf_to_tune({f"{hf_module}.weight": value}, config).items()}


def _specs_from(
    adapter_state_dict: Mapping[str, torch.Tensor],
    adapter_specs: Mapping[str, AdapterSpec] | None,
    lora_alpha: float | None,
    lora_dropout: float,
) -> dict[str, AdapterSpec]:
    """Each adapter module's spec: from ``adapter_specs``, else rank from ``lora_a`` and one alpha."""
    specs = {}
    for key, value in adapter_state_dict.items():
        if not key.endswith(".lora_a.weight"):
            continue
        module = key[: -len(".lora_a.weight")]
        if adapter_specs is not None and module in adapter_specs:
            specs[module] = adapter_specs[module]
        elif lora_alpha is not None:
            use_dora = f"{module}.magnitude" in adapter_state_dict
            # lora_a is [r, in], or [E, r, in] for expert adapters
            specs[module] = AdapterSpec(rank=value.shape[-2], alpha=float(lora_alpha), dropout=lora_dropout,
                                        use_dora=use_dora)
        else:
            raise ValueError(
                f"no alpha for the adapter of {module!r}: pass adapter_specs=get_adapter_specs(model) "
                "(torchtune.modules.peft)"
            )
    return specs


def save_peft_adapter(
    directory: str | Path,
    adapter_state_dict: dict[str, torch.Tensor],
    config: dict[str, Any],
    *,
    adapter_specs: Mapping[str, AdapterSpec] | None = None,
    lora_alpha: float | None = None,
    lora_dropout: float = 0.0,
    base_model_name_or_path: str | None = None,
) -> None:
    """Write ``adapter_model.safetensors`` and ``adapter_config.json`` into ``directory``.

    Adapters of different ranks or alphas are written with peft's ``rank_pattern`` /
    ``alpha_pattern`` (the most common rank and alpha are ``r`` and ``lora_alpha``).

    Args:
        directory (str | Path): an existing directory.
        adapter_state_dict (dict[str, torch.Tensor]): our adapter entries; DoRA is recognised by
            the presence of ``magnitude``.
        config (dict[str, Any]): the base model's Hugging Face ``config.json``.
        adapter_specs (Mapping[str, AdapterSpec] | None): each adapter module's rank, alpha and
            dropout (``torchtune.modules.peft.get_adapter_specs(model)``). Default None.
        lora_alpha (float | None): one alpha for every adapter, when ``adapter_specs`` is not
            given (ranks then come from the ``lora_a`` shapes ``[r, in]``). Default None.
        lora_dropout (float): the dropout recorded with ``lora_alpha``. Default 0.0.
        base_model_name_or_path (str | None): recorded for ``PeftModel``. Default None.

    Raises:
        ValueError: if there are no adapters, or an adapter's alpha is known from neither argument.
    """
    specs = _specs_from(adapter_state_dict, adapter_specs, lora_alpha, lora_dropout)
    if not specs:
        raise ValueError("the adapter state dict holds no lora_a/lora_b weights; nothing to write")
    peft_sd, hf_specs, fused_layout = _to_peft(adapter_state_dict, config, specs)
    expert_specs = {m: spec for m, spec in hf_specs.items() if m.startswith(f"{EXPERTS_MODULE}.")}
    hf_specs = {m: spec for m, spec in hf_specs.items() if m not in expert_specs}
    # "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight" -> "q_proj"; beside expert parameters
    # "self_attn.q_proj", "mlp.down_proj" (peft would also take a bare "down_proj" for the experts' parameter)
    width = 2 if expert_specs else 1
    targets = sorted({".".join(k.split(".")[-2 - width : -2]) for k in peft_sd
                      if k.endswith(".lora_A.weight") and f".{EXPERTS_MODULE}." not in k})
    metadata = {"format": "pt"}
    if fused_layout:  # how to split the fused modules' adapters back into ours exactly (resume)
        metadata[_FUSED_METADATA] = json.dumps(fused_layout, sort_keys=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in peft_sd.items()}, Path(directory) / ADAPTER_WEIGHTS,
              metadata=metadata)
    every = [*hf_specs.values(), *expert_specs.values()]
    rank = Counter(s.rank for s in every).most_common(1)[0][0]
    alpha = Counter(s.alpha for s in every).most_common(1)[0][0]
    odd = {m: (s.rank, s.alpha) for m, s in expert_specs.items() if (s.rank, s.alpha) != (rank, alpha)}
    if odd:  # peft's rank_pattern / alpha_pattern do not reach the expert parameters
        raise ValueError(f"per-expert adapters {odd} have another (rank, alpha) than the other adapters' "
                         f"({rank}, {alpha}); give every adapter the same rank and alpha")
    adapter_config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "r": rank,
        "lora_alpha": alpha,
        "rank_pattern": {m: s.rank for m, s in sorted(hf_specs.items()) if s.rank != rank},
        "alpha_pattern": {m: s.alpha for m, s in sorted(hf_specs.items()) if s.alpha != alpha},
        "lora_dropout": max(s.dropout for s in every),
        "target_modules": targets,
        "use_dora": any(s.use_dora for s in every),
        "bias": "none",
        "fan_in_fan_out": False,
        "inference_mode": True,
        "base_model_name_or_path": base_model_name_or_path,
    }
    if expert_specs:  # peft >= 0.17 (LoRA on parameters); written only when there are expert adapters
        adapter_config["target_parameters"] = [f"{EXPERTS_MODULE}.{p}" for p in EXPERT_PARAMS
                                               if f"{EXPERTS_MODULE}.{p}" in expert_specs]
    with open(Path(directory) / ADAPTER_CONFIG, "w", encoding="utf-8") as f:
        json.dump(adapter_config, f, indent=2)


def adapter_dir_of(path: str | Path) -> Path:
    """The peft adapter directory of ``path``: its ``adapter/`` sub-directory when it is a
    checkpoint written by a checkpointer, else ``path`` itself."""
    path = Path(path)
    return path / ADAPTER_SUBDIR if (path / ADAPTER_SUBDIR / ADAPTER_CONFIG).is_file() else path


def write_adapter_and_merge(
    directory: str | Path,
    state_dict: dict[str, torch.Tensor],
    config: dict[str, Any],
    *,
    adapter_specs: Mapping[str, AdapterSpec] | None,
    adapter_only: bool,
    base_model_name_or_path: str,
    lora_alpha: float | None = None,
) -> Mapping[str, torch.Tensor] | None:
    """The adapter half of every checkpointer's ``write_checkpoint``.

    Writes the peft adapter of ``state_dict`` (if it holds one) into ``directory/adapter`` (into
    ``directory`` with ``adapter_only``) and returns the state dict the checkpointer writes as the
    model: adapters merged into their base weights (a :class:`torchtune.utils.LazyStateDict`
    that merges each weight when the writer reads it), or None when only the adapter is written.

    Args:
        directory (str | Path): the checkpoint directory (exists).
        state_dict (dict[str, torch.Tensor]): torchtune state dict, adapters included or not.
        config (dict[str, Any]): the model's Hugging Face config.
        adapter_specs (Mapping[str, AdapterSpec] | None): from ``get_adapter_specs(model)``.
        adapter_only (bool): write only the adapter.
        base_model_name_or_path (str): recorded in ``adapter_config.json``.
        lora_alpha (float | None): deprecated; one alpha for every adapter. Default None.

    Returns:
        Mapping[str, torch.Tensor] | None: the weights to write, or None.

    Raises:
        ValueError: on ``adapter_only`` without adapters, or adapters whose alpha is unknown.
    """
    if lora_alpha is not None:
        warnings.warn("write_checkpoint(lora_alpha=...) is deprecated; pass adapter_specs=get_adapter_specs(model)",
                      DeprecationWarning, stacklevel=3)
    adapter = get_adapter_state_dict(state_dict)
    if adapter_only and not adapter:
        raise ValueError("adapter_only=True but the state dict holds no adapter weights")
    if not adapter:
        return state_dict
    specs = _specs_from(adapter, adapter_specs, lora_alpha, 0.0)
    adapter_dir = Path(directory) if adapter_only else Path(directory) / ADAPTER_SUBDIR
    adapter_dir.mkdir(exist_ok=True)
    save_peft_adapter(adapter_dir, adapter, config, adapter_specs=specs, base_model_name_or_path=base_model_name_or_path)
    if adapter_only:
        return None
    # adapters folded in and dropped, one weight at a time as the writer reads them
    return get_merged_lora_ckpt(state_dict, adapter_specs=specs, lazy=True)


def check_save_mappings(
    state_dict: Mapping[str, torch.Tensor],
    config: dict[str, Any],
    *,
    adapter_specs: Mapping[str, AdapterSpec] | None = None,
) -> None:
    """Check, before training, that every tensor a save writes has a Hugging Face name.

    Runs what a save does to the keys (the peft names of the adapters, the merge, the Hugging Face
    names and fusions of the merged weights) on meta tensors, so it costs no memory and finds
    e.g. a LoRA target on a module that the checkpoint's layout fuses (``q_proj`` of a fused
    ``qkv_proj``) before the first step instead of at the final save.

    Args:
        state_dict (Mapping[str, torch.Tensor]): the model's state dict (adapters included or not).
        config (dict[str, Any]): the checkpoint's Hugging Face ``config.json``.
        adapter_specs (Mapping[str, AdapterSpec] | None): from ``get_adapter_specs(model)``.
            Default: None (no adapters).

    Raises:
        ConfigError: naming the tensor without a mapping and what to change.
    """
    meta = {k: torch.empty(v.shape, dtype=v.dtype, device="meta") for k, v in state_dict.items()}
    adapter = get_adapter_state_dict(meta)
    try:
        adapter_to_peft(adapter, config, adapter_specs=adapter_specs)
    except ValueError as e:
        fix = "" if isinstance(e, _TargetsError) else (
            ". Choose LoRA targets that exist in its layout (config keys model.lora_attn_modules, "
            "model.apply_lora_to_mlp, model.apply_lora_to_output)")
        raise ConfigError(
            f"the adapters cannot be saved in the peft format of this checkpoint ({config.get('model_type')}): {e}{fix}"
        ) from e
    merged = get_merged_lora_ckpt(meta, adapter_specs=adapter_specs) if adapter else meta
    try:
        tune_to_hf(merged, config)
    except ValueError as e:
        raise ConfigError(
            f"the model's weights cannot be saved in this checkpoint's layout ({config.get('model_type')}): {e}. "
            "The model (config key model) does not match the checkpoint's architecture"
        ) from e


def load_peft_adapter(directory: str | Path, config: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a peft adapter directory into our adapter keys.

    Args:
        directory (str | Path): holds ``adapter_model.safetensors`` and ``adapter_config.json``.
        config (dict[str, Any]): the base model's Hugging Face ``config.json``.

    Returns:
        tuple[dict[str, torch.Tensor], dict[str, Any]]: adapter state dict and adapter config.

    Raises:
        FileNotFoundError: if either file is missing.
    """
    directory = Path(directory)
    for name in (ADAPTER_WEIGHTS, ADAPTER_CONFIG):
        if not (directory / name).is_file():
            raise FileNotFoundError(f"{name} not found in {str(directory)!r}")
    with open(directory / ADAPTER_CONFIG, encoding="utf-8") as f:
        adapter_config = json.load(f)
    with safe_open(directory / ADAPTER_WEIGHTS, framework="pt") as f:
        fused_layout = (f.metadata() or {}).get(_FUSED_METADATA)
    weights = load_file(directory / ADAPTER_WEIGHTS)
    adapter = peft_to_adapter(weights, config, fused_layout=json.loads(fused_layout) if fused_layout else None,
                              target_parameters=adapter_config.get("target_parameters"))
    return adapter, adapter_config
