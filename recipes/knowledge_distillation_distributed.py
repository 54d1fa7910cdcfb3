"""Knowledge distillation on several processes with FSDP2 (GPUs with nccl, or CPU with gloo): a
student (LoRA / DoRA adapters, or every weight) learns from a frozen teacher's next-token
distributions.

Launch it through torchrun, via the ``tune`` command or directly::

    tune run --nproc_per_node 2 knowledge_distillation_distributed --config tiny/kd_distributed
    torchrun --nproc_per_node 8 knowledge_distillation_distributed.py --config my.yaml model_dir=/s teacher_dir=/t

The same steps as ``knowledge_distillation_single_device.py``, with these differences: the
student's decoder layers and root are sharded with FSDP2, so it returns the logits of the
labelled positions (its output weight is sharded and is not applied outside the forward); the
teacher is a whole frozen copy on every process (no gradients and no optimizer state, so it costs
only its weights) and returns hidden states that the loss projects a chunk of rows at a time;
each process reads its own slice of every epoch's sample order and of the validation samples;
and losses and token counts are summed over processes, so the gradient is the mean over every
token of the global batch. Checkpoints are gathered to process 0, which writes them with the
configured checkpointer (merged weights, plus the peft adapter for LoRA). Copy it with
``tune cp knowledge_distillation_distributed .`` and edit freely.
"""

import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
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
    "save_adapter_weights_only", "resume", "backend",
)


def check_config(cfg: config.DictConfig) -> None:
    """Stop before any work when the config cannot run: unknown keys, bad component arguments,
    missing dataset files."""
    config.validate(cfg, known_keys=KNOWN_KEYS)
    check_local_data_files(cfg)  # and the datasets extra for Hub data
    training.check_metric_loggers(cfg.get("metric_logger"))


def build_student(cfg: config.DictConfig, checkpointer: Checkpointer, device: torch.device, dtype: torch.dtype,
                  resume_dir: Path | None) -> tuple[torch.nn.Module, bool]:
    """The sharded student with its weights loaded (from ``resume_dir`` when resuming), and
    whether it has adapters (LoRA / DoRA); with adapters only they train, else every weight.

    ``model`` names a builder (``_component_``), or holds LoRA options (or nothing), in which case
    the architecture is read from the checkpoint's config.
    """
    node = cfg.get("model")
    if node is not None and "_component_" in node:
        model = config.instantiate(node)
    else:
        model = model_from_hf_config(checkpointer.config, **(node.to_dict() if node is not None else {}))
    lora = bool(get_adapter_params(model))
    state_dict = checkpointer.load_checkpoint(None if lora else resume_dir)  # every process reads, keeps its shard
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
        if resume_dir is not None:
            adapter = checkpointer.load_adapter(resume_dir)
            missing, unexpected = model.load_state_dict(adapter, strict=False)
            validate_missing_and_unexpected_for_lora(model, lora_missing=missing, lora_unexpected=unexpected)
        set_trainable_params(model, get_adapter_params(model))
    if cfg.enable_activation_checkpointing:
        training.apply_activation_checkpointing(model, auto_wrap_policy={TransformerSelfAttentionLayer})
    training.shard_model(model)  # FSDP2: one unit per decoder layer, plus the root
    if cfg.compile:
        model.compile()
    model.set_num_output_chunks(0)  # one logits tensor of the labelled positions
    return model, lora


def build_teacher(cfg: config.DictConfig, teacher_checkpointer: Checkpointer, device: torch.device,
                  dtype: torch.dtype) -> torch.nn.Module:
    """The frozen teacher, whole on every process: no gradients, eval mode. ``teacher_model``
    names a builder or is absent (the architecture is read from the teacher checkpoint's config)."""
    node = cfg.get("teacher_model")
    model = config.instantiate(node) if node is not None else model_from_hf_config(teacher_checkpointer.config)
    state_dict = teacher_checkpointer.load_checkpoint()
    check_weights_fit(model, state_dict, builder=node.get("_component_") if node is not None else None)
    model.load_state_dict(state_dict)
    model.to(device=device, dtype=dtype)
    model.requires_grad_(False)
    return model.eval()


def epoch_batches(ds: Any, collate: Any, cfg: config.DictConfig, epoch: int, skip: int,
                  world_size: int, rank: int) -> Iterator[dict[str, torch.Tensor]]:
    """This process's batches of one epoch, skipping the first ``skip`` of its samples.

    The epoch's order depends only on the seed and the epoch (so a resumed run sees the same
    batches); process ``rank`` takes every ``world_size``-th sample of it.
    """
    order = epoch_sample_order(len(ds), seed=cfg.seed, epoch=epoch, shuffle=cfg.shuffle, world_size=world_size, rank=rank)
    yield from DataLoader(ds, batch_size=cfg.batch_size, sampler=order[skip:], collate_fn=collate, drop_last=True)


def forward_loss(model: torch.nn.Module, teacher: torch.nn.Module, loss_fn: Any, batch: dict[str, torch.Tensor],
                 device: torch.device) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Summed mixed loss of a batch, the sums of its two parts ``[ce, kd]`` and its token count.

    Only the positions that carry a label come out of either model (``output_index``): the
    student's logits, and the teacher's hidden states, which the loss projects a chunk at a time.
    """
    batch = {k: v.to(device) for k, v in batch.items()}
    labels = batch["labels"].reshape(1, -1)  # [1, b * s], already shifted
    keep = torch.nonzero(labels[0] != CROSS_ENTROPY_IGNORE_IDX).squeeze(1)  # [n]
    inputs = {"mask": batch.get("mask"), "input_pos": batch.get("input_pos"), "output_index": keep}
    logits = model(batch["tokens"], **inputs, output="logits")  # [1, n, v]
    with torch.no_grad():
        teacher_hidden = teacher(batch["tokens"], **inputs, output="hidden")  # [1, n, d_t]
    out = loss_fn(logits, teacher_hidden, labels[:, keep], teacher_project=teacher.project)
    n = out.num_tokens
    return out.loss * n, torch.stack([out.ce, out.kd]) * n, n


def main(argv: Sequence[str] | None = None) -> Path:
    """Parse ``--config PATH key=value ...``, train, and return the final checkpoint directory."""
    cfg = config.parse_args(argv, variables={"recipes_root": str(torchtune.recipes_root())})
    check_config(cfg)
    training.init_distributed(cfg.get("backend"))  # gloo on CPU, nccl on GPUs (None: pick)
    world_size, rank = training.get_world_size_and_rank()
    say = print if rank == 0 else (lambda *args, **kwargs: None)  # only process 0 talks
    seed = training.set_seed(cfg.seed, rank)
    if cfg.get("num_threads"):
        torch.set_num_threads(cfg.num_threads)  # CPU intra-op threads per process
    device = training.get_device(cfg.device, distributed=True)
    dtype, dtype_reason = training.get_dtype(cfg.dtype, device)
    say(f"Device {device} x {world_size} processes, {dtype_reason}")
    output_dir = Path(cfg.output_dir)
    manager = CheckpointManager(output_dir, save_every_n_steps=cfg.save_every_n_steps, keep_last_n=cfg.keep_last_n_checkpoints)
    resume_dir = manager.resolve_resume(cfg.resume)
    dist.barrier()  # every process has seen the checkpoints before process 0 may write new ones

    # ----- checkpointers, tokenizer, data, student, teacher, loss --------------------------------
    checkpointer: Checkpointer = config.instantiate(cfg.checkpointer)  # reads the model's config only
    teacher_checkpointer: Checkpointer = config.instantiate(cfg.teacher_checkpointer)
    check_same_vocabulary(checkpointer, teacher_checkpointer)  # before any weight is read
    tokenizer = config.instantiate(cfg.tokenizer)
    padding_free = cfg.get("padding_free", True)  # the samples of a batch end to end in one row
    ds, collate = build_sft_data(cfg.dataset, tokenizer, padding_free=padding_free)
    val_loader = build_validation_loader(cfg.get("dataset_val"), tokenizer, padding_free=padding_free,
                                         batch_size=cfg.batch_size, world_size=world_size, rank=rank)  # a share each
    training.set_seed(cfg.seed)  # the same adapter initialisation on every process ...
    model, lora = build_student(cfg, checkpointer, device, dtype, resume_dir)
    adapter_specs = get_adapter_specs(model)  # each adapter's rank and alpha, for merging and the peft config
    # every tensor a save writes must have a name in the checkpoint's layout: fail now, not at the first save
    check_save_mappings(model.state_dict(), checkpointer.config, adapter_specs=adapter_specs or None)
    seed = training.set_seed(cfg.seed, rank)  # ... then one random stream per process (dropout)
    trainable = [p for p in model.parameters() if p.requires_grad]
    say(f"Student: {sum(p.numel() for p in model.parameters()):,} parameters, {sum(p.numel() for p in trainable):,} "
        f"trainable ({'adapters' if lora else 'all'}), sharded over {world_size} processes")
    teacher = build_teacher(cfg, teacher_checkpointer, device, dtype)
    say(f"Teacher: {sum(p.numel() for p in teacher.parameters()):,} parameters, frozen, one copy per process")
    loss_fn = config.instantiate(cfg.loss)
    say(f"Loss: (1 - {loss_fn.kd_ratio}) * cross-entropy + {loss_fn.kd_ratio} * {loss_fn.divergence} divergence "
        f"(temperature {loss_fn.temperature})")

    # ----- optimizer and schedule -----------------------------------------------------------------
    accum = cfg.gradient_accumulation_steps
    steps_per_epoch = training.steps_per_epoch(len(ds), batch_size=cfg.batch_size, gradient_accumulation_steps=accum,
                                               world_size=world_size, max_steps_per_epoch=cfg.max_steps_per_epoch)
    total_steps = steps_per_epoch * cfg.epochs
    optimizer = config.instantiate(cfg.optimizer, trainable)
    lr_scheduler = config.instantiate(cfg.lr_scheduler, optimizer, num_training_steps=total_steps)

    # ----- resume -----------------------------------------------------------------------------------
    step, epoch, samples_seen = 0, 0, 0
    if resume_dir is not None:  # the weights (or adapters) were loaded by build_student
        step, epoch, samples_seen = restore_training_state(resume_dir, optimizer, lr_scheduler, sharded_model=model,
                                                           rank=rank)  # rank 0 restores its RNG streams
        say(f"Resumed from {resume_dir} at step {step} (epoch {epoch})")
    if rank == 0:
        manager.clean_temp()
    run_log = training.RunLog(cfg.metric_logger, total_steps=total_steps, initial_step=step, desc="kd", rank=rank)

    def save(at: int) -> Path:
        state_dict = training.gather_full_state_dict(model)  # every process takes part; process 0 gets it
        optimizer_state = training.gather_full_optimizer_state_dict(model, optimizer)

        def write(directory: Path) -> None:
            # training state first: what resumes the run is written before the model
            save_recipe_state(directory, step=at, epoch=epoch, seed=cfg.seed, samples_seen=samples_seen,
                              optimizer=optimizer_state, lr_scheduler=lr_scheduler)
            if lora:
                adapter_only = bool(cfg.get("save_adapter_weights_only")) and at < total_steps
                checkpointer.write_checkpoint(directory, state_dict, adapter_specs=adapter_specs, adapter_only=adapter_only)
            else:
                checkpointer.write_checkpoint(directory, state_dict)

        if rank == 0:
            manager.save(at, write)
        dist.barrier()
        return manager.step_dir(at)

    def validate() -> dict[str, float]:
        totals = torch.zeros(4, device=device)  # summed loss, ce, kd; tokens
        model.eval()
        with torch.no_grad():
            for i, batch in enumerate(val_loader):
                if cfg.max_val_batches is not None and i >= cfg.max_val_batches:
                    break
                loss_sum, parts, n = forward_loss(model, teacher, loss_fn, batch, device)
                totals += torch.cat([loss_sum[None], parts, torch.tensor([float(n)], device=device)])
        dist.all_reduce(totals)  # sums over processes
        model.train()
        val = totals[:3] / totals[3].clamp(min=1)
        return {"val_loss": float(val[0]), "val_ce_loss": float(val[1]), "val_kd_loss": float(val[2])}

    # ----- train ------------------------------------------------------------------------------------
    model.train()
    meter = training.TokensPerSecond(pad_id=tokenizer.pad_id)
    last_saved = resume_dir if resume_dir is not None and step == total_steps else None
    start, first_step = time.perf_counter(), step
    while epoch < cfg.epochs:
        batches = epoch_batches(ds, collate, cfg, epoch, samples_seen, world_size, rank)
        while samples_seen < steps_per_epoch * cfg.batch_size * accum:
            totals = torch.zeros(5, device=device)  # summed loss, ce, kd; loss tokens, real (non-padding) tokens
            for _ in range(accum):
                batch = next(batches)
                real = training.count_tokens(batch["tokens"], tokenizer.pad_id)
                micro_loss, micro_parts, n = forward_loss(model, teacher, loss_fn, batch, device)
                micro_loss.backward()
                totals += torch.cat([micro_loss.detach()[None], micro_parts,
                                     torch.tensor([float(n), float(real)], device=device)])
                samples_seen += cfg.batch_size
            dist.all_reduce(totals)  # sums over processes
            meter.update(int(totals[4]))
            num_tokens = max(float(totals[3]), 1.0)
            loss, parts = totals[0] / num_tokens, totals[1:3] / num_tokens
            training.check_finite(loss, step + 1)  # stop before a NaN reaches the weights
            # FSDP averaged the gradients over processes; make them the mean over every token
            training.scale_grads(model, world_size / num_tokens)
            grad_norm = training.clip_grad_norm(trainable, cfg.clip_grad_norm)
            grad_norm = grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm
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

    # ----- finish: close the loggers, leave the process group, report -------------------------------
    final = Path(last_saved if last_saved is not None else manager.latest()).resolve()
    say(training.finish_run(run_log, final, output_dir=output_dir, started=start, steps=total_steps - first_step,
                            what="student (merged weights and peft adapter)" if lora else "student (every weight)"))
    return final


if __name__ == "__main__":
    try:
        main()
    except (config.ConfigError, training.TrainingDivergedError) as e:
        sys.exit(f"error: {e}")
    # Everything is saved and the process group is destroyed. Leave without the interpreter's
    # teardown: with gloo on CPU it sometimes aborts there ("terminate called without an
    # active exception"), turning a finished run into a failed one.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
