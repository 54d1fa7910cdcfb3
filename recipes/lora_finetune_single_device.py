"""LoRA / DoRA fine-tuning on one device (CPU, one GPU or Apple MPS).

Run it through the ``tune`` command or directly::

    tune run lora_finetune_single_device --config tiny/lora_single_device
    python lora_finetune_single_device.py --config my.yaml model_dir=/models/x output_dir=/out

The script reads top to bottom: check the config, build the tokenizer and the data, the model
(base weights from the configured checkpointer: a Hugging Face directory, a Meta checkpoint or a
GGUF file; adapters on top), the optimizer and the schedule, then train with gradient
accumulation; every ``save_every_n_steps`` optimizer steps and at the end it writes
``<output_dir>/step_<N>`` (the peft adapter, the merged weights in the checkpointer's format plus
any other ``output_formats``, and the state needed to resume). With ``sample_prompts`` it
answers each prompt greedily before and after training and prints both. Set ``use_dora: true``
under ``model`` for DoRA.
Copy it with ``tune cp lora_finetune_single_device .`` and edit freely.
"""

import copy
import json
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

import torchtune
from torchtune import config, training
from torchtune.data import CROSS_ENTROPY_IGNORE_IDX, Message, epoch_sample_order
from torchtune.datasets import build_sft_data, build_validation_loader, check_local_data_files
from torchtune.generation import generate_text
from torchtune.gguf import gguf_tokenizer_metadata_from_hf
from torchtune.models import model_from_hf_config, tune_to_hf
from torchtune.modules import TransformerSelfAttentionLayer, bind_loss, load_balancing_loss
from torchtune.modules.peft import (
    get_adapter_params,
    get_adapter_specs,
    get_merged_lora_ckpt,
    initialize_dora_magnitudes,
    set_adapter_dtype,
    set_trainable_params,
    validate_missing_and_unexpected_for_lora,
)
from torchtune.training.checkpointing import (
    CheckpointManager,
    Checkpointer,
    check_save_mappings,
    check_weights_fit,
    export_gguf,
    restore_training_state,
    save_recipe_state,
    save_safetensors,
)

# Every top-level key this recipe reads; anything else in the config is reported as unknown.
KNOWN_KEYS = (
    "model_dir", "output_dir", "model", "tokenizer", "checkpointer", "dataset", "dataset_val",
    "seed", "shuffle", "padding_free", "batch_size", "epochs", "max_steps_per_epoch",
    "gradient_accumulation_steps",
    "optimizer", "lr_scheduler", "loss", "num_output_chunks", "clip_grad_norm", "router_aux_loss_coef", "device", "dtype", "num_threads",
    "enable_activation_checkpointing", "enable_activation_offloading", "compile", "pad_to_multiple_of",
    "metric_logger", "log_every_n_steps",
    "run_val_every_n_steps", "max_val_batches", "save_every_n_steps", "keep_last_n_checkpoints",
    "save_adapter_weights_only", "resume", "output_formats", "sample_prompts", "sample_max_new_tokens",
)
# `output_formats` values: "hf" (config.json, model.safetensors, tokenizer files) and "gguf"
# (model-F16.gguf). The checkpointer always writes its own format; these add the other one.
OUTPUT_FORMATS = ("hf", "gguf")


def check_config(cfg: config.DictConfig) -> None:
    """Stop before any work when the config cannot run: unknown keys, bad component arguments,
    missing dataset files, unknown output formats."""
    config.validate(cfg, known_keys=KNOWN_KEYS)
    check_local_data_files(cfg)  # and the datasets extra for Hub data
    training.check_metric_loggers(cfg.get("metric_logger"))
    for fmt in cfg.get("output_formats") or []:
        if fmt not in OUTPUT_FORMATS:
            raise config.ConfigError(f"output_formats holds {fmt!r}; each entry must be one of {list(OUTPUT_FORMATS)}")


def build_model(cfg: config.DictConfig, checkpointer: Checkpointer, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """The model with adapters and its base weights loaded; only adapter parameters train.

    ``model`` names a builder (``_component_``, e.g. a preset such as
    ``torchtune.models.llama3_2.lora_llama3_2_1b``), or holds only LoRA options, in which case
    the architecture is read from the checkpoint's config.
    """
    if "_component_" in cfg.model:
        model = config.instantiate(cfg.model)
    else:
        model = model_from_hf_config(checkpointer.config, **cfg.model.to_dict())
    state_dict = checkpointer.load_checkpoint()
    check_weights_fit(model, state_dict, builder=cfg.model.get("_component_"))
    missing, unexpected = model.load_state_dict(state_dict, strict=False)
    validate_missing_and_unexpected_for_lora(model, base_missing=missing, base_unexpected=unexpected)
    del state_dict
    training.release_freed_memory()  # the replaced initial weights (and, with quantize_base, their fp32 form)
    model.to(device=device, dtype=dtype)
    set_adapter_dtype(model, torch.float32)  # fp32 master weights for the adapters; they compute in dtype
    initialize_dora_magnitudes(model)  # DoRA: magnitudes from the loaded base weights
    set_trainable_params(model, get_adapter_params(model))
    if cfg.enable_activation_checkpointing:
        training.apply_activation_checkpointing(model, auto_wrap_policy={TransformerSelfAttentionLayer})
    if cfg.compile:
        training.compile_model(model, device)  # per decoder layer; pad_to_multiple_of bounds the recompiles
    return model


def epoch_batches(ds: Any, collate: Any, cfg: config.DictConfig, epoch: int, skip: int) -> Iterator[dict[str, torch.Tensor]]:
    """Batches of one epoch in a seeded order (seed + epoch), skipping the first ``skip`` samples,
    so that a resumed run sees the same batches."""
    order = epoch_sample_order(len(ds), seed=cfg.seed, epoch=epoch, shuffle=cfg.shuffle)
    yield from DataLoader(ds, batch_size=cfg.batch_size, sampler=order[skip:], collate_fn=collate, drop_last=True)


def forward_loss(model: torch.nn.Module, loss_fn: Any, output: str, batch: dict[str, torch.Tensor],
                 device: torch.device, router_aux_loss_coef: float = 0.0) -> tuple[torch.Tensor, int]:
    """Summed token loss of a batch and the number of tokens it covers.

    Only the positions that carry a label come out of the model (``output_index``): its last
    layer and the output projection skip the others, whose outputs no loss would use. ``output``
    is what the loss takes: logits, or hidden states it projects itself. A mixture-of-experts
    model adds ``router_aux_loss_coef`` times its router load-balancing loss (per token).
    """
    batch = {k: v.to(device) for k, v in batch.items()}
    labels = batch["labels"].reshape(1, -1)  # [1, b * s], already shifted
    keep = torch.nonzero(labels[0] != CROSS_ENTROPY_IGNORE_IDX).squeeze(1)  # [n]
    out = model(batch["tokens"], mask=batch.get("mask"), input_pos=batch.get("input_pos"), output_index=keep,
                output=output)  # [1, n, ...]
    loss = loss_fn(out, labels[:, keep]) * keep.numel()
    aux = load_balancing_loss(model) if router_aux_loss_coef else None  # None without MoE layers
    if aux is not None:
        loss = loss + router_aux_loss_coef * aux * keep.numel()
    return loss, keep.numel()


@torch.no_grad()
def sample_answers(model: torch.nn.Module, tokenizer: Any, prompts: Sequence[str], max_new_tokens: int) -> list[str]:
    """Greedy answers to each prompt, sent as a user message in the tokenizer's chat format.

    ``generate_text`` leaves KV caches in the model it runs, so pass a copy when training follows.
    """
    model.eval()
    model.set_num_output_chunks(0)  # generation needs plain logits
    answers = [generate_text(model, tokenizer, [Message("user", prompt)], max_new_tokens, temperature=0.0)
               for prompt in prompts]
    model.train()
    return answers


def print_samples(prompts: Sequence[str], before: Sequence[str], after: Sequence[str]) -> None:
    """Print each prompt with the answers before and after fine-tuning."""
    print("\n===== Answers before / after fine-tuning (greedy) =====")
    for prompt, old, new in zip(prompts, before, after):
        print(f"Prompt: {prompt}\n  before: {old.strip()!r}\n  after:  {new.strip()!r}")


def write_output_formats(directory: Path, state_dict: dict[str, torch.Tensor], adapter_specs: Any,
                         formats: Sequence[str], checkpointer: Checkpointer, tokenizer: Any) -> None:
    """Write the merged model in each format of ``output_formats`` the checkpointer does not write.

    The checkpointer writes its own format: ``model.safetensors`` means ``hf`` is written,
    ``*.gguf`` that ``gguf`` is. ``hf`` adds ``config.json``, ``model.safetensors`` and (for a
    byte-level BPE GGUF vocabulary) ``tokenizer.json`` + ``tokenizer_config.json``, so
    ``transformers`` loads ``directory``; ``gguf`` adds ``model-F16.gguf`` with the tokenizer of
    the copied ``tokenizer.json``.
    """
    written = {"hf" if (directory / "model.safetensors").exists() or (directory / "model.safetensors.index.json").exists()
               else None, "gguf" if any(directory.glob("*.gguf")) else None}
    extra = [fmt for fmt in formats if fmt not in written]
    if not extra:
        return
    # adapters folded in one weight at a time, as each file is written tensor by tensor
    base = get_merged_lora_ckpt(state_dict, adapter_specs=adapter_specs, lazy=True)
    if "hf" in extra:
        save_safetensors(tune_to_hf(base, checkpointer.config), directory / "model.safetensors", metadata={"format": "pt"})
        (directory / "config.json").write_text(json.dumps(checkpointer.config, indent=2), encoding="utf-8")
        if not (hasattr(tokenizer, "save_hf_files") and tokenizer.save_hf_files(directory)):
            print(f"No Hugging Face tokenizer files in {directory}: only byte-level BPE GGUF vocabularies convert")
    if "gguf" in extra:
        metadata = gguf_tokenizer_metadata_from_hf(directory / "tokenizer.json", directory / "tokenizer_config.json")
        export_gguf(base, checkpointer.config, directory / "model-F16.gguf", tokenizer_metadata=metadata)


def router_metrics(model: torch.nn.Module) -> dict[str, float]:
    """``router_aux_loss`` of the latest micro-batch for a mixture-of-experts model, else nothing."""
    with torch.no_grad():
        aux = load_balancing_loss(model)
    return {} if aux is None else {"router_aux_loss": float(aux)}


def main(argv: Sequence[str] | None = None) -> Path:
    """Parse ``--config PATH key=value ...``, train, and return the final checkpoint directory."""
    cfg = config.parse_args(argv, variables={"recipes_root": str(torchtune.recipes_root())})
    check_config(cfg)
    seed = training.set_seed(cfg.seed)
    if cfg.get("num_threads"):
        torch.set_num_threads(cfg.num_threads)  # CPU intra-op threads; tiny models run best on one
    device = training.get_device(cfg.device)
    dtype, dtype_reason = training.get_dtype(cfg.dtype, device)
    if cfg.compile:
        training.check_compile(device)  # a missing compiler stops the run here, not at step 1
    offload = training.activation_offloading(device, bool(cfg.get("enable_activation_offloading")))
    print(f"Device {device}, {dtype_reason}")
    output_dir = Path(cfg.output_dir)

    # ----- checkpointer, tokenizer, data, model ------------------------------------------------
    checkpointer: Checkpointer = config.instantiate(cfg.checkpointer)  # reads the model's config only
    tokenizer = config.instantiate(cfg.tokenizer)
    padding_free = cfg.get("padding_free", True)  # the samples of a batch end to end in one row
    ds, collate = build_sft_data(cfg.dataset, tokenizer, padding_free=padding_free,
                                 pad_to_multiple_of=cfg.get("pad_to_multiple_of") or 1)
    val_loader = build_validation_loader(cfg.get("dataset_val"), tokenizer, padding_free=padding_free,
                                         batch_size=cfg.batch_size)
    model = build_model(cfg, checkpointer, device, dtype)
    # every tensor a save writes must have a name in the checkpoint's layout: fail now, not at the final save
    check_save_mappings(model.state_dict(), checkpointer.config, adapter_specs=get_adapter_specs(model))
    trainable = [p for p in model.parameters() if p.requires_grad]
    print(f"Model: {sum(p.numel() for p in model.parameters()):,} parameters, {sum(p.numel() for p in trainable):,} trainable (adapters)")
    loss_fn = config.instantiate(cfg.loss)
    prompts, max_new = list(cfg.get("sample_prompts") or []), cfg.get("sample_max_new_tokens") or 48
    if prompts:  # the base model's answers (LoRA starts as a no-op), on a copy: generation adds KV caches
        print(f"Generating answers to {len(prompts)} sample prompts before fine-tuning ...")
        answers_before = sample_answers(copy.deepcopy(model), tokenizer, prompts, max_new)
    model.set_num_output_chunks(cfg.num_output_chunks)  # the loss upcasts one chunk at a time
    output = bind_loss(loss_fn, model)  # "hidden" for LinearCrossEntropyLoss: it projects only labelled positions

    # ----- optimizer and schedule -----------------------------------------------------------------
    accum = cfg.gradient_accumulation_steps
    steps_per_epoch = training.steps_per_epoch(len(ds), batch_size=cfg.batch_size, gradient_accumulation_steps=accum,
                                               max_steps_per_epoch=cfg.max_steps_per_epoch)
    total_steps = steps_per_epoch * cfg.epochs
    optimizer = config.instantiate(cfg.optimizer, trainable)
    lr_scheduler = config.instantiate(cfg.lr_scheduler, optimizer, num_training_steps=total_steps)

    # ----- resume -----------------------------------------------------------------------------------
    manager = CheckpointManager(output_dir, save_every_n_steps=cfg.save_every_n_steps, keep_last_n=cfg.keep_last_n_checkpoints)
    manager.clean_temp()
    step, epoch, samples_seen = 0, 0, 0
    resume_dir = manager.resolve_resume(cfg.resume)
    if resume_dir is not None:
        adapter = checkpointer.load_adapter(resume_dir)
        missing, unexpected = model.load_state_dict(adapter, strict=False)
        validate_missing_and_unexpected_for_lora(model, lora_missing=missing, lora_unexpected=unexpected)
        step, epoch, samples_seen = restore_training_state(resume_dir, optimizer, lr_scheduler)
        print(f"Resumed from {resume_dir} at step {step} (epoch {epoch})")
    run_log = training.RunLog(cfg.metric_logger, total_steps=total_steps, initial_step=step, desc="lora")
    adapter_specs = get_adapter_specs(model)  # each adapter's rank and alpha, for merging and the peft config

    def save(at: int) -> Path:
        state_dict = {k: v.detach().cpu() for k, v in model.state_dict().items()}

        def write(directory: Path, adapter_only: bool) -> None:
            # training state first: what resumes the run is written before the merged model
            save_recipe_state(directory, step=at, epoch=epoch, seed=seed, samples_seen=samples_seen,
                              optimizer=optimizer, lr_scheduler=lr_scheduler)
            checkpointer.write_checkpoint(directory, state_dict, adapter_specs=adapter_specs, adapter_only=adapter_only)
            if not adapter_only:
                write_output_formats(directory, state_dict, adapter_specs, cfg.get("output_formats") or [],
                                     checkpointer, tokenizer)

        adapter_only = bool(cfg.save_adapter_weights_only) and at < total_steps
        try:
            return manager.save(at, lambda directory: write(directory, adapter_only))
        except Exception as e:
            if adapter_only:
                raise
            # the merged model could not be written: keep the adapter and the training state
            kept = manager.save(at, lambda directory: write(directory, True))
            raise config.ConfigError(f"writing the merged model of step {at} failed ({type(e).__name__}: {e}); the "
                                     f"adapter and training state are saved in {kept} (resume=auto continues)") from e

    # ----- train ------------------------------------------------------------------------------------
    aux_coef = float(cfg.get("router_aux_loss_coef") or 0.0)  # mixture-of-experts models only
    model.train()
    meter = training.TokensPerSecond(pad_id=tokenizer.pad_id)
    last_saved = resume_dir if resume_dir is not None and step == total_steps else None
    start, first_step = time.perf_counter(), step
    while epoch < cfg.epochs:
        batches = epoch_batches(ds, collate, cfg, epoch, samples_seen)
        while samples_seen < steps_per_epoch * cfg.batch_size * accum:
            loss_sum, num_tokens = torch.zeros((), device=device), 0
            for _ in range(accum):
                batch = next(batches)
                meter.update(batch["tokens"])
                with offload:  # activations saved for backward wait in host memory (CUDA)
                    micro_loss, n = forward_loss(model, loss_fn, output, batch, device, aux_coef)
                micro_loss.backward()
                loss_sum, num_tokens = loss_sum + micro_loss.detach(), num_tokens + n
                samples_seen += cfg.batch_size
            loss = loss_sum / max(num_tokens, 1)
            training.check_finite(loss, step + 1)  # stop before a NaN reaches the weights
            training.scale_grads(model, 1.0 / max(num_tokens, 1))  # mean over all tokens of the step
            grad_norm = training.clip_grad_norm(trainable, cfg.clip_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            lr_scheduler.step()
            step += 1
            run_log.step(loss.item())
            if step % cfg.log_every_n_steps == 0 or step == total_steps:
                run_log.log({"loss": loss.item(), "lr": optimizer.param_groups[0]["lr"], "grad_norm": float(grad_norm),
                             "tokens_per_second": meter.rate(), **training.peak_memory_stats(device),
                             **router_metrics(model)}, step)
                meter.reset()
            if val_loader is not None and cfg.run_val_every_n_steps and step % cfg.run_val_every_n_steps == 0:
                val = training.validation_loss(model, lambda b: forward_loss(model, loss_fn, output, b, device),
                                               val_loader, max_batches=cfg.max_val_batches)
                run_log.log({"val_loss": val}, step)
            if step == total_steps:
                epoch, samples_seen = cfg.epochs, 0  # the saved state says: finished
                last_saved = save(step)
                break
            if manager.should_save(step):
                last_saved = save(step)
        else:
            epoch, samples_seen = epoch + 1, 0

    # ----- finish: close the loggers, report --------------------------------------------------------
    final = Path(last_saved if last_saved is not None else manager.latest()).resolve()
    print(training.finish_run(run_log, final, output_dir=output_dir, started=start, steps=total_steps - first_step,
                              what="model (merged weights and peft adapter)"))
    if prompts:
        print_samples(prompts, answers_before, sample_answers(model, tokenizer, prompts, max_new))
    return final


if __name__ == "__main__":
    try:
        main()
    except (config.ConfigError, training.TrainingDivergedError) as e:
        sys.exit(f"error: {e}")
