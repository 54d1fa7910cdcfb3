"""Full fine-tuning (every weight trains) on one device (CPU, one GPU or Apple MPS).

Run it through the ``tune`` command or directly::

    tune run full_finetune_single_device --config tiny/full_single_device
    python full_finetune_single_device.py --config my.yaml model_dir=/models/x output_dir=/out

The script reads top to bottom: check the config, build the tokenizer and the data, the model
(weights from the configured checkpointer: a Hugging Face directory, a Meta checkpoint or a GGUF
file), the optimizer and the schedule, then train with gradient accumulation; every
``save_every_n_steps`` optimizer steps and at the end it writes ``<output_dir>/step_<N>`` (the
weights in the checkpointer's format plus the state needed to resume). With
``optimizer_in_bwd: true`` each parameter is updated inside backward instead, as soon as its
gradient is ready (``torchtune.training.OptimizerInBackward``: less memory, the same run).
Copy it with ``tune cp full_finetune_single_device .`` and edit freely.
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
from torchtune.modules import TransformerSelfAttentionLayer, bind_loss, load_balancing_loss
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
    "optimizer", "optimizer_in_bwd", "lr_scheduler", "loss", "num_output_chunks", "clip_grad_norm", "router_aux_loss_coef", "device", "dtype", "num_threads",
    "enable_activation_checkpointing", "enable_activation_offloading", "compile", "pad_to_multiple_of",
    "fp32_master_weights", "metric_logger", "log_every_n_steps",
    "run_val_every_n_steps", "max_val_batches", "save_every_n_steps", "keep_last_n_checkpoints",
    "resume",
)


def check_config(cfg: config.DictConfig) -> None:
    """Stop before any work when the config cannot run: unknown keys, bad component arguments,
    missing dataset files."""
    config.validate(cfg, known_keys=KNOWN_KEYS)
    training.check_optimizer_in_bwd(cfg)  # no clipping or accumulation with the step in backward
    check_local_data_files(cfg)  # and the datasets extra for Hub data
    training.check_metric_loggers(cfg.get("metric_logger"))


def build_model(cfg: config.DictConfig, checkpointer: Checkpointer, device: torch.device, dtype: torch.dtype,
                resume_dir: Path | None) -> torch.nn.Module:
    """The model with its weights loaded (from ``resume_dir`` when resuming); every parameter trains.

    ``model`` names a builder (``_component_``, e.g. a preset such as
    ``torchtune.models.llama3_2.llama3_2_1b``), or is empty / absent, in which case the
    architecture is read from the checkpoint's config.
    """
    node = cfg.get("model")
    if node is not None and "_component_" in node:
        model = config.instantiate(node)
    else:
        model = model_from_hf_config(checkpointer.config)
    state_dict = checkpointer.load_checkpoint(resume_dir)  # resume_dir None: the source weights
    check_weights_fit(model, state_dict, builder=node.get("_component_") if node is not None else None)
    model.load_state_dict(state_dict)
    model.to(device=device, dtype=dtype)
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
    plan = training.precision_plan(dtype, device, fp32_master_weights=bool(cfg.get("fp32_master_weights")))
    if cfg.compile:
        training.check_compile(device)  # a missing compiler stops the run here, not at step 1
    offload = training.activation_offloading(device, bool(cfg.get("enable_activation_offloading")))
    print(f"Device {device}, {dtype_reason}")
    output_dir = Path(cfg.output_dir)
    manager = CheckpointManager(output_dir, save_every_n_steps=cfg.save_every_n_steps, keep_last_n=cfg.keep_last_n_checkpoints)
    manager.clean_temp()
    resume_dir = manager.resolve_resume(cfg.resume)

    # ----- checkpointer, tokenizer, data, model ------------------------------------------------
    checkpointer: Checkpointer = config.instantiate(cfg.checkpointer)  # reads the model's config only
    tokenizer = config.instantiate(cfg.tokenizer)
    padding_free = cfg.get("padding_free", True)  # the samples of a batch end to end in one row
    ds, collate = build_sft_data(cfg.dataset, tokenizer, padding_free=padding_free,
                                 pad_to_multiple_of=cfg.get("pad_to_multiple_of") or 1)
    val_loader = build_validation_loader(cfg.get("dataset_val"), tokenizer, padding_free=padding_free,
                                         batch_size=cfg.batch_size)
    model = build_model(cfg, checkpointer, device, plan.param_dtype, resume_dir)
    check_save_mappings(model.state_dict(), checkpointer.config)  # fail now, not at the first save
    trainable = [p for p in model.parameters() if p.requires_grad]
    print(f"Model: {sum(p.numel() for p in trainable):,} parameters, all trainable")
    loss_fn = config.instantiate(cfg.loss)
    model.set_num_output_chunks(cfg.num_output_chunks)  # the loss upcasts one chunk at a time
    output = bind_loss(loss_fn, model)  # "hidden" for LinearCrossEntropyLoss: it projects only labelled positions

    # ----- optimizer and schedule -----------------------------------------------------------------
    accum = cfg.gradient_accumulation_steps
    steps_per_epoch = training.steps_per_epoch(len(ds), batch_size=cfg.batch_size, gradient_accumulation_steps=accum,
                                               max_steps_per_epoch=cfg.max_steps_per_epoch)
    total_steps = steps_per_epoch * cfg.epochs
    if device.type == "cpu" and not cfg.compile:  # torchao's optimizers compile their step: a minute per shape on CPU
        torch.compiler.set_stance("force_eager")
    optimizer = config.instantiate(cfg.optimizer, trainable)  # e.g. torchao.optim.AdamW8bit: 8-bit Adam moments
    # optimizer_in_bwd: each parameter is updated inside backward as soon as its gradient is
    # ready, and the gradient freed (one parameter's gradient alive at a time, not all of them)
    in_bwd = training.OptimizerInBackward(optimizer) if cfg.get("optimizer_in_bwd", False) else None
    lr_scheduler = config.instantiate(cfg.lr_scheduler, optimizer, num_training_steps=total_steps)

    # ----- resume -----------------------------------------------------------------------------------
    step, epoch, samples_seen = 0, 0, 0
    if resume_dir is not None:  # the weights were loaded by build_model
        step, epoch, samples_seen = restore_training_state(resume_dir, optimizer, lr_scheduler)
        print(f"Resumed from {resume_dir} at step {step} (epoch {epoch})")
    run_log = training.RunLog(cfg.metric_logger, total_steps=total_steps, initial_step=step, desc="full")

    def save(at: int) -> Path:
        state_dict = {k: v.detach().cpu() for k, v in model.state_dict().items()}

        def write(directory: Path) -> None:
            checkpointer.write_checkpoint(directory, state_dict)
            save_recipe_state(directory, step=at, epoch=epoch, seed=seed, samples_seen=samples_seen,
                              optimizer=optimizer, lr_scheduler=lr_scheduler)

        return manager.save(at, write)

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
                with offload, plan.autocast():  # saved activations to host; bf16 on fp32 master weights
                    micro_loss, n = forward_loss(model, loss_fn, output, batch, device, aux_coef)
                if in_bwd is not None:  # the weights change during backward: check and scale first
                    training.check_finite(micro_loss.detach() / max(n, 1), step + 1)
                    in_bwd.prepare(grad_scale=1.0 / max(n, 1))  # mean over the step's tokens (one micro-batch)
                micro_loss.backward()
                loss_sum, num_tokens = loss_sum + micro_loss.detach(), num_tokens + n
                samples_seen += cfg.batch_size
            loss = loss_sum / max(num_tokens, 1)
            if in_bwd is None:
                training.check_finite(loss, step + 1)  # stop before a NaN reaches the weights
                training.scale_grads(model, 1.0 / max(num_tokens, 1))  # mean over all tokens of the step
                grad_norm = training.clip_grad_norm(trainable, cfg.clip_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            else:
                grad_norm = in_bwd.grad_norm()  # the optimizer already stepped, inside backward
            lr_scheduler.step()
            step += 1
            run_log.step(loss.item())
            if step % cfg.log_every_n_steps == 0 or step == total_steps:
                run_log.log({"loss": loss.item(), "lr": float(optimizer.param_groups[0]["lr"]), "grad_norm": float(grad_norm),
                             "tokens_per_second": meter.rate(), **training.peak_memory_stats(device),
                             **router_metrics(model)}, step)
                meter.reset()
            if val_loader is not None and cfg.run_val_every_n_steps and step % cfg.run_val_every_n_steps == 0:
                with plan.autocast():
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
    print(training.finish_run(run_log, final, output_dir=output_dir, started=start, steps=total_steps - first_step))
    return final


if __name__ == "__main__":
    try:
        main()
    except (config.ConfigError, training.TrainingDivergedError) as e:
        sys.exit(f"error: {e}")
