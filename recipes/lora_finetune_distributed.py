"""LoRA / DoRA fine-tuning on several processes with FSDP2 (GPUs with nccl, or CPU with gloo).

Launch it through torchrun, via the ``tune`` command or directly::

    tune run --nproc_per_node 2 lora_finetune_distributed --config tiny/lora_distributed
    torchrun --nproc_per_node 8 lora_finetune_distributed.py --config my.yaml model_dir=/m output_dir=/o

The same steps as ``lora_finetune_single_device.py``, with these differences: the model's
decoder layers and root are sharded with FSDP2 (each process holds a slice of the weights,
gradients and optimizer state); each process reads its own slice of every epoch's sample order
and of the validation data; and losses and token counts are summed over processes, so the
gradient is the mean over every token of the global batch. Checkpoints are gathered to process
0, which writes them with the configured checkpointer (peft adapter plus merged weights). Set
``use_dora: true`` under ``model`` for DoRA. Copy it with ``tune cp lora_finetune_distributed .``
and edit freely.
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
from torchtune.modules import TransformerSelfAttentionLayer, bind_loss, load_balancing_loss
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
    check_save_mappings,
    check_weights_fit,
    restore_training_state,
    save_recipe_state,
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
    "save_adapter_weights_only", "resume", "backend",
)


def check_config(cfg: config.DictConfig) -> None:
    """Stop before any work when the config cannot run: unknown keys, bad component arguments,
    missing dataset files."""
    config.validate(cfg, known_keys=KNOWN_KEYS)
    check_local_data_files(cfg)  # and the datasets extra for Hub data
    training.check_metric_loggers(cfg.get("metric_logger"))


def build_model(cfg: config.DictConfig, checkpointer: Checkpointer, device: torch.device, dtype: torch.dtype,
                resume_dir: Path | None) -> torch.nn.Module:
    """The sharded model with adapters, base weights loaded (and adapters from ``resume_dir``
    when resuming); only adapter parameters train.

    ``model`` names a builder (``_component_``, e.g. a preset such as
    ``torchtune.models.llama3_2.lora_llama3_2_1b``), or holds only LoRA options, in which case
    the architecture is read from the checkpoint's config.
    """
    if "_component_" in cfg.model:
        model = config.instantiate(cfg.model)
    else:
        model = model_from_hf_config(checkpointer.config, **cfg.model.to_dict())
    # every process reads the files, then keeps its shard
    state_dict = checkpointer.load_checkpoint()
    check_weights_fit(model, state_dict, builder=cfg.model.get("_component_"))
    missing, unexpected = model.load_state_dict(state_dict, strict=False)
    validate_missing_and_unexpected_for_lora(model, base_missing=missing, base_unexpected=unexpected)
    del state_dict
    training.release_freed_memory()  # the replaced initial weights (and, with quantize_base, their fp32 form)
    model.to(device=device, dtype=dtype)
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
        training.compile_model(model, device)  # per decoder layer; pad_to_multiple_of bounds the recompiles
    return model


def epoch_batches(ds: Any, collate: Any, cfg: config.DictConfig, epoch: int, skip: int,
                  world_size: int, rank: int) -> Iterator[dict[str, torch.Tensor]]:
    """This process's batches of one epoch, skipping the first ``skip`` of its samples.

    The epoch's order depends only on the seed and the epoch (so a resumed run sees the same
    batches); process ``rank`` takes every ``world_size``-th sample of it.
    """
    order = epoch_sample_order(len(ds), seed=cfg.seed, epoch=epoch, shuffle=cfg.shuffle, world_size=world_size, rank=rank)
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


def router_metrics(model: torch.nn.Module) -> dict[str, float]:
    """``router_aux_loss`` of the latest micro-batch for a mixture-of-experts model, else nothing."""
    with torch.no_grad():
        aux = load_balancing_loss(model)
    return {} if aux is None else {"router_aux_loss": float(aux)}


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
    if cfg.compile:
        training.check_compile(device)  # a missing compiler stops the run here, not at step 1
    offload = training.activation_offloading(device, bool(cfg.get("enable_activation_offloading")))
    say(f"Device {device} x {world_size} processes, {dtype_reason}")
    output_dir = Path(cfg.output_dir)
    manager = CheckpointManager(output_dir, save_every_n_steps=cfg.save_every_n_steps, keep_last_n=cfg.keep_last_n_checkpoints)
    resume_dir = manager.resolve_resume(cfg.resume)
    dist.barrier()  # every process has seen the checkpoints before process 0 may write new ones

    # ----- checkpointer, tokenizer, data, model ------------------------------------------------
    checkpointer: Checkpointer = config.instantiate(cfg.checkpointer)  # reads the model's config only
    tokenizer = config.instantiate(cfg.tokenizer)
    padding_free = cfg.get("padding_free", True)  # the samples of a batch end to end in one row
    ds, collate = build_sft_data(cfg.dataset, tokenizer, padding_free=padding_free,
                                 pad_to_multiple_of=cfg.get("pad_to_multiple_of") or 1)
    val_loader = build_validation_loader(cfg.get("dataset_val"), tokenizer, padding_free=padding_free,
                                         batch_size=cfg.batch_size, world_size=world_size, rank=rank)  # a share each
    training.set_seed(cfg.seed)  # the same adapter initialisation on every process ...
    model = build_model(cfg, checkpointer, device, dtype, resume_dir)
    # every tensor a save writes must have a name in the checkpoint's layout: fail now, not at the final save
    check_save_mappings(model.state_dict(), checkpointer.config, adapter_specs=get_adapter_specs(model))
    seed = training.set_seed(cfg.seed, rank)  # ... then one random stream per process (dropout)
    trainable = [p for p in model.parameters() if p.requires_grad]
    say(f"Model: {sum(p.numel() for p in model.parameters()):,} parameters, {sum(p.numel() for p in trainable):,} "
        f"trainable (adapters), sharded over {world_size} processes")
    loss_fn = config.instantiate(cfg.loss)
    model.set_num_output_chunks(cfg.num_output_chunks)  # the loss upcasts one chunk at a time
    output = bind_loss(loss_fn, model)
    if output != "logits":  # the loss would use the sharded output weight outside forward
        raise config.ConfigError(f"loss {type(loss_fn).__name__} is supported by the single-device recipes only; "
                                 "use torchtune.modules.ChunkedCrossEntropyLoss")

    # ----- optimizer and schedule -----------------------------------------------------------------
    accum = cfg.gradient_accumulation_steps
    steps_per_epoch = training.steps_per_epoch(len(ds), batch_size=cfg.batch_size, gradient_accumulation_steps=accum,
                                               world_size=world_size, max_steps_per_epoch=cfg.max_steps_per_epoch)
    total_steps = steps_per_epoch * cfg.epochs
    optimizer = config.instantiate(cfg.optimizer, trainable)
    lr_scheduler = config.instantiate(cfg.lr_scheduler, optimizer, num_training_steps=total_steps)

    # ----- resume -----------------------------------------------------------------------------------
    step, epoch, samples_seen = 0, 0, 0
    if resume_dir is not None:  # the adapters were loaded by build_model
        step, epoch, samples_seen = restore_training_state(resume_dir, optimizer, lr_scheduler, sharded_model=model,
                                                           rank=rank)  # rank 0 restores its RNG streams
        say(f"Resumed from {resume_dir} at step {step} (epoch {epoch})")
    if rank == 0:
        manager.clean_temp()
    run_log = training.RunLog(cfg.metric_logger, total_steps=total_steps, initial_step=step, desc="lora", rank=rank)
    adapter_specs = get_adapter_specs(model)  # each adapter's rank and alpha, for merging and the peft config

    def save(at: int) -> Path:
        state_dict = training.gather_full_state_dict(model)  # every process takes part; process 0 gets it
        optimizer_state = training.gather_full_optimizer_state_dict(model, optimizer)

        def write(directory: Path, adapter_only: bool) -> None:
            # training state first: what resumes the run is written before the merged model
            save_recipe_state(directory, step=at, epoch=epoch, seed=cfg.seed, samples_seen=samples_seen,
                              optimizer=optimizer_state, lr_scheduler=lr_scheduler)
            checkpointer.write_checkpoint(directory, state_dict, adapter_specs=adapter_specs, adapter_only=adapter_only)

        failure = None
        if rank == 0:
            adapter_only = bool(cfg.save_adapter_weights_only) and at < total_steps
            try:
                manager.save(at, lambda directory: write(directory, adapter_only))
            except Exception as e:
                if adapter_only:
                    raise
                # the merged model could not be written: keep the adapter and the training state
                kept = manager.save(at, lambda directory: write(directory, True))
                failure = config.ConfigError(f"writing the merged model of step {at} failed ({type(e).__name__}: {e}); "
                                             f"the adapter and training state are saved in {kept} (resume=auto continues)")
        dist.barrier()
        if failure is not None:
            raise failure
        return manager.step_dir(at)

    # ----- train ------------------------------------------------------------------------------------
    aux_coef = float(cfg.get("router_aux_loss_coef") or 0.0)  # mixture-of-experts models only
    model.train()
    meter = training.TokensPerSecond(pad_id=tokenizer.pad_id)
    last_saved = resume_dir if resume_dir is not None and step == total_steps else None
    start, first_step = time.perf_counter(), step
    while epoch < cfg.epochs:
        batches = epoch_batches(ds, collate, cfg, epoch, samples_seen, world_size, rank)
        while samples_seen < steps_per_epoch * cfg.batch_size * accum:
            totals = torch.zeros(3, device=device)  # summed loss, loss tokens, real (non-padding) tokens
            for _ in range(accum):
                batch = next(batches)
                real = training.count_tokens(batch["tokens"], tokenizer.pad_id)
                with offload:  # activations saved for backward wait in host memory (CUDA)
                    micro_loss, n = forward_loss(model, loss_fn, output, batch, device, aux_coef)
                micro_loss.backward()
                totals += torch.stack([micro_loss.detach(), torch.tensor(float(n), device=device),
                                       torch.tensor(float(real), device=device)])
                samples_seen += cfg.batch_size
            dist.all_reduce(totals)  # sums over processes
            meter.update(int(totals[2]))
            num_tokens = max(float(totals[1]), 1.0)
            loss = totals[0] / num_tokens
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

    # ----- finish: close the loggers, leave the process group, report -------------------------------
    final = Path(last_saved if last_saved is not None else manager.latest()).resolve()
    say(training.finish_run(run_log, final, output_dir=output_dir, started=start, steps=total_steps - first_step,
                            what="model (merged weights and peft adapter)"))
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
