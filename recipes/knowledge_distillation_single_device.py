"""Knowledge distillation on one device (CPU, one GPU or Apple MPS): a student (LoRA / DoRA
adapters, or every weight) learns from a frozen teacher's next-token distributions.

Run it through the ``tune`` command or directly::

    tune run knowledge_distillation_single_device --config tiny/kd_single_device
    python knowledge_distillation_single_device.py --config my.yaml model_dir=/models/s teacher_dir=/models/t

The script reads top to bottom: check the config, build the tokenizer and the data, the student
(from ``checkpointer``; with LoRA options under ``model`` only its adapters train, without them
every weight does), the teacher (from ``teacher_checkpointer``, frozen, in eval mode; it must
share the student's vocabulary), the loss (``torchtune.modules.KDLoss``: ``(1 - kd_ratio)`` times
the cross-entropy on the labels plus ``kd_ratio`` times the forward KL, reverse KL or
Jensen-Shannon divergence from the teacher), the optimizer and the schedule, then train with
gradient accumulation. Both models return final hidden states at the labelled positions only;
the loss projects them a chunk of rows at a time, so neither model's full-vocabulary logits of a
whole batch exist at once. It logs the mixed loss and both of its parts. Every
``save_every_n_steps`` optimizer steps and at the end it writes ``<output_dir>/step_<N>`` (the
weights in the checkpointer's format, merged, plus the peft adapter for LoRA, and the state needed
to resume).
Copy it with ``tune cp knowledge_distillation_single_device .`` and edit freely.
"""

import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

import torchtune
from torchtune import config, training
from torchtune.data import CROSS_ENTROPY_IGNORE_IDX, epoch_sample_order
from torchtune.datasets import build_sft_data, build_validation_loader, check_local_data_files
from torchtune.models import model_from_hf_config
from torchtune.modules import TransformerSelfAttentionLayer
from torchtune.modules.peft import (
    get_adapter_params,
    get_adapter_specs,
    initialize_dora_magnitudes,
    set_adapter_dtype,
    set_trainable_params,
    validate_missing_and_unexpected_for_lora,
)
from torchtune.training.checkpointing import (
    CheckpointManager,
    Checkpointer,
    check_same_vocabulary,
    check_save_mappings,
    check_weights_fit,
    restore_training_state,
    save_recipe_state,
)

# Every top-level key this recipe reads; anything else in the config is reported as unknown.
KNOWN_KEYS = (
    "model_dir", "teacher_dir", "output_dir", "model", "teacher_model", "tokenizer", "checkpointer",
    "teacher_checkpointer", "dataset", "dataset_val", "seed", "shuffle", "padding_free", "batch_size", "epochs",
    "max_steps_per_epoch", "gradient_accumulation_steps", "optimizer", "lr_scheduler", "loss", "clip_grad_norm",
    "device", "dtype", "num_threads", "enable_activation_checkpointing", "compile", "metric_logger",
    "log_every_n_steps", "run_val_every_n_steps", "max_val_batches", "save_every_n_steps", "keep_last_n_checkpoints",
    "save_adapter_weights_only", "resume",
)


def check_config(cfg: config.DictConfig) -> None:
    """Stop before any work when the config cannot run: unknown keys, bad component arguments,
    missing dataset files."""
    config.validate(cfg, known_keys=KNOWN_KEYS)
    check_local_data_files(cfg)  # and the datasets extra for Hub data
    training.check_metric_loggers(cfg.get("metric_logger"))


def build_student(cfg: config.DictConfig, checkpointer: Checkpointer, device: torch.device, dtype: torch.dtype,
                  resume_dir: Path | None) -> tuple[torch.nn.Module, bool]:
    """The student with its weights loaded, and whether it has adapters (LoRA / DoRA).

    ``model`` names a builder (``_component_``), or holds LoRA options (or nothing), in which case
    the architecture is read from the checkpoint's config. With adapters only they train (they
    resume from ``resume_dir`` later); without, every weight trains and resumes from ``resume_dir``.
    """
    node = cfg.get("model")
    if node is not None and "_component_" in node:
        model = config.instantiate(node)
    else:
        model = model_from_hf_config(checkpointer.config, **(node.to_dict() if node is not None else {}))
    lora = bool(get_adapter_params(model))
    state_dict = checkpointer.load_checkpoint(None if lora else resume_dir)
    check_weights_fit(model, state_dict, builder=node.get("_component_") if node is not None else None)
    if lora:
        missing, unexpected = model.load_state_dict(state_dict, strict=False)
        validate_missing_and_unexpected_for_lora(model, base_missing=missing, base_unexpected=unexpected)
    else:
        model.load_state_dict(state_dict)
    model.to(device=device, dtype=dtype)
    if lora:
        set_adapter_dtype(model, torch.float32)  # fp32 master weights for the adapters; they compute in dtype
        initialize_dora_magnitudes(model)  # DoRA: magnitudes from the loaded base weights
        set_trainable_params(model, get_adapter_params(model))
    if cfg.enable_activation_checkpointing:
        training.apply_activation_checkpointing(model, auto_wrap_policy={TransformerSelfAttentionLayer})
    if cfg.compile:
        model.compile()
    return model, lora


def build_teacher(cfg: config.DictConfig, teacher_checkpointer: Checkpointer, device: torch.device,
                  dtype: torch.dtype) -> torch.nn.Module:
    """The frozen teacher: no gradients, eval mode. ``teacher_model`` names a builder or is absent
    (the architecture is read from the teacher checkpoint's config)."""
    node = cfg.get("teacher_model")
    model = config.instantiate(node) if node is not None else model_from_hf_config(teacher_checkpointer.config)
    state_dict = teacher_checkpointer.load_checkpoint()
    check_weights_fit(model, state_dict, builder=node.get("_component_") if node is not None else None)
    model.load_state_dict(state_dict)
    model.to(device=device, dtype=dtype)
    model.requires_grad_(False)
    return model.eval()


def epoch_batches(ds: Any, collate: Any, cfg: config.DictConfig, epoch: int, skip: int) -> Iterator[dict[str, torch.Tensor]]:
    """Batches of one epoch in a seeded order (seed + epoch), skipping the first ``skip`` samples,
    so that a resumed run sees the same batches."""
    order = epoch_sample_order(len(ds), seed=cfg.seed, epoch=epoch, shuffle=cfg.shuffle)
    yield from DataLoader(ds, batch_size=cfg.batch_size, sampler=order[skip:], collate_fn=collate, drop_last=True)


def forward_loss(model: torch.nn.Module, teacher: torch.nn.Module, loss_fn: Any, batch: dict[str, torch.Tensor],
                 device: torch.device) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Summed mixed loss of a batch, the sums of its two parts ``[ce, kd]`` and its token count.

    Only the positions that carry a label come out of either model (``output_index``), as final
    hidden states; the loss projects them itself, a chunk at a time. The teacher runs without
    gradients.
    """
    batch = {k: v.to(device) for k, v in batch.items()}
    labels = batch["labels"].reshape(1, -1)  # [1, b * s], already shifted
    keep = torch.nonzero(labels[0] != CROSS_ENTROPY_IGNORE_IDX).squeeze(1)  # [n]
    inputs = {"mask": batch.get("mask"), "input_pos": batch.get("input_pos"), "output_index": keep, "output": "hidden"}
    hidden = model(batch["tokens"], **inputs)  # [1, n, d]
    with torch.no_grad():
        teacher_hidden = teacher(batch["tokens"], **inputs)  # [1, n, d_t]
    out = loss_fn(hidden, teacher_hidden, labels[:, keep], student_project=model.project, teacher_project=teacher.project)
    n = out.num_tokens
    return out.loss * n, torch.stack([out.ce, out.kd]) * n, n


def main(argv: Sequence[str] | None = None) -> Path:
    """Parse ``--config PATH key=value ...``, train, and return the final checkpoint directory."""
    cfg = config.parse_args(argv, variables={"recipes_root": str(torchtune.recipes_root())})
    check_config(cfg)
    seed = training.set_seed(cfg.seed)
    if cfg.get("num_threads"):
        torch.set_num_threads(cfg.num_threads)  # CPU intra-op threads; tiny models run best on one
    device = training.get_device(cfg.device)
    dtype, dtype_reason = training.get_dtype(cfg.dtype, device)
    print(f"Device {device}, {dtype_reason}")
    output_dir = Path(cfg.output_dir)
    manager = CheckpointManager(output_dir, save_every_n_steps=cfg.save_every_n_steps, keep_last_n=cfg.keep_last_n_checkpoints)
    manager.clean_temp()
    resume_dir = manager.resolve_resume(cfg.resume)

    # ----- checkpointers, tokenizer, data, student, teacher, loss --------------------------------
    checkpointer: Checkpointer = config.instantiate(cfg.checkpointer)  # reads the model's config only
    teacher_checkpointer: Checkpointer = config.instantiate(cfg.teacher_checkpointer)
    check_same_vocabulary(checkpointer, teacher_checkpointer)  # before any weight is read
    tokenizer = config.instantiate(cfg.tokenizer)
    padding_free = cfg.get("padding_free", True)  # the samples of a batch end to end in one row
    ds, collate = build_sft_data(cfg.dataset, tokenizer, padding_free=padding_free)
    val_loader = build_validation_loader(cfg.get("dataset_val"), tokenizer, padding_free=padding_free,
                                         batch_size=cfg.batch_size)
    model, lora = build_student(cfg, checkpointer, device, dtype, resume_dir)
    adapter_specs = get_adapter_specs(model)  # each adapter's rank and alpha, for merging and the peft config
    # every tensor a save writes must have a name in the checkpoint's layout: fail now, not at the first save
    check_save_mappings(model.state_dict(), checkpointer.config, adapter_specs=adapter_specs or None)
    trainable = [p for p in model.parameters() if p.requires_grad]
    print(f"Student: {sum(p.numel() for p in model.parameters()):,} parameters, {sum(p.numel() for p in trainable):,} "
          f"trainable ({'adapters' if lora else 'all'})")
    teacher = build_teacher(cfg, teacher_checkpointer, device, dtype)
    print(f"Teacher: {sum(p.numel() for p in teacher.parameters()):,} parameters, frozen")
    loss_fn = config.instantiate(cfg.loss)
    print(f"Loss: (1 - {loss_fn.kd_ratio}) * cross-entropy + {loss_fn.kd_ratio} * {loss_fn.divergence} divergence "
          f"(temperature {loss_fn.temperature})")

    # ----- optimizer and schedule -----------------------------------------------------------------
    accum = cfg.gradient_accumulation_steps
    steps_per_epoch = training.steps_per_epoch(len(ds), batch_size=cfg.batch_size, gradient_accumulation_steps=accum,
                                               max_steps_per_epoch=cfg.max_steps_per_epoch)
    total_steps = steps_per_epoch * cfg.epochs
    optimizer = config.instantiate(cfg.optimizer, trainable)
    lr_scheduler = config.instantiate(cfg.lr_scheduler, optimizer, num_training_steps=total_steps)

    # ----- resume -----------------------------------------------------------------------------------
    step, epoch, samples_seen = 0, 0, 0
    if resume_dir is not None:  # a full student's weights were loaded by build_student
        if lora:
            adapter = checkpointer.load_adapter(resume_dir)
            missing, unexpected = model.load_state_dict(adapter, strict=False)
            validate_missing_and_unexpected_for_lora(model, lora_missing=missing, lora_unexpected=unexpected)
        step, epoch, samples_seen = restore_training_state(resume_dir, optimizer, lr_scheduler)
        print(f"Resumed from {resume_dir} at step {step} (epoch {epoch})")
    run_log = training.RunLog(cfg.metric_logger, total_steps=total_steps, initial_step=step, desc="kd")

    def save(at: int) -> Path:
        state_dict = {k: v.detach().cpu() for k, v in model.state_dict().items()}

        def write(directory: Path) -> None:
            # training state first: what resumes the run is written before the model
            save_recipe_state(directory, step=at, epoch=epoch, seed=seed, samples_seen=samples_seen,
                              optimizer=optimizer, lr_scheduler=lr_scheduler)
            if lora:
                adapter_only = bool(cfg.get("save_adapter_weights_only")) and at < total_steps
                checkpointer.write_checkpoint(directory, state_dict, adapter_specs=adapter_specs, adapter_only=adapter_only)
            else:
                checkpointer.write_checkpoint(directory, state_dict)

        return manager.save(at, write)

    def validate() -> dict[str, float]:
        totals = torch.zeros(4, device=device)  # summed loss, ce, kd; tokens
        model.eval()
        with torch.no_grad():
            for i, batch in enumerate(val_loader):
                if cfg.max_val_batches is not None and i >= cfg.max_val_batches:
                    break
                loss_sum, parts, n = forward_loss(model, teacher, loss_fn, batch, device)
                totals += torch.cat([loss_sum[None], parts, torch.tensor([float(n)], device=device)])
        model.train()
        val = totals[:3] / totals[3].clamp(min=1)
        return {"val_loss": float(val[0]), "val_ce_loss": float(val[1]), "val_kd_loss": float(val[2])}

    # ----- train ------------------------------------------------------------------------------------
    model.train()
    meter = training.TokensPerSecond(pad_id=tokenizer.pad_id)
    last_saved = resume_dir if resume_dir is not None and step == total_steps else None
    start, first_step = time.perf_counter(), step
    while epoch < cfg.epochs:
        batches = epoch_batches(ds, collate, cfg, epoch, samples_seen)
        while samples_seen < steps_per_epoch * cfg.batch_size * accum:
            loss_sum, parts, num_tokens = torch.zeros((), device=device), torch.zeros(2, device=device), 0
            for _ in range(accum):
                batch = next(batches)
                meter.update(batch["tokens"])
                micro_loss, micro_parts, n = forward_loss(model, teacher, loss_fn, batch, device)
                micro_loss.backward()
                loss_sum, parts, num_tokens = loss_sum + micro_loss.detach(), parts + micro_parts, num_tokens + n
                samples_seen += cfg.batch_size
            loss, parts = loss_sum / max(num_tokens, 1), parts / max(num_tokens, 1)
            training.check_finite(loss, step + 1)  # stop before a NaN reaches the weights
            training.scale_grads(model, 1.0 / max(num_tokens, 1))  # mean over all tokens of the step
            grad_norm = training.clip_grad_norm(trainable, cfg.clip_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            lr_scheduler.step()
            step += 1
            run_log.step(loss.item())
            if step % cfg.log_every_n_steps == 0 or step == total_steps:
                run_log.log({"loss": loss.item(), "ce_loss": float(parts[0]), "kd_loss": float(parts[1]),
                             "lr": optimizer.param_groups[0]["lr"], "grad_norm": float(grad_norm),
                             "tokens_per_second": meter.rate(), **training.peak_memory_stats(device)}, step)
                meter.reset()
            if val_loader is not None and cfg.run_val_every_n_steps and step % cfg.run_val_every_n_steps == 0:
                run_log.log(validate(), step)
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
                              what="student (merged weights and peft adapter)" if lora else "student (every weight)"))
    return final


if __name__ == "__main__":
    try:
        main()
    except (config.ConfigError, training.TrainingDivergedError) as e:
        sys.exit(f"error: {e}")
