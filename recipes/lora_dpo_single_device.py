"""LoRA / DoRA preference optimisation (DPO, IPO or SimPO) on one device (CPU, one GPU or MPS).

Run it through the ``tune`` command or directly::

    tune run lora_dpo_single_device --config tiny/lora_dpo_single_device
    python lora_dpo_single_device.py --config my.yaml model_dir=/models/x output_dir=/out

The script reads top to bottom: check the config, build the tokenizer and the preference pairs
(chosen and rejected answers to the same prompt), the model (base weights from the configured
checkpointer, adapters on top), the loss (``loss._component_``: ``torchtune.modules.DPOLoss``,
``IPOLoss`` or the reference-free ``SimPOLoss``), the optimizer and the schedule, then train with
gradient accumulation. Each step scores both answers of every pair with the policy (adapters on)
and, unless the loss is reference free, with the reference model: the same weights with the
adapters switched off, so no second copy of the model exists. Only answer tokens come out of the
model and through its output projection. It logs the loss, the rewards of the chosen and the
rejected answers, their margin and the preference accuracy (the share of pairs whose chosen
answer has the higher reward). Every ``save_every_n_steps`` optimizer steps and at the end it
writes ``<output_dir>/step_<N>`` (the peft adapter, the merged weights in the checkpointer's
format, and the state needed to resume).
Copy it with ``tune cp lora_dpo_single_device .`` and edit freely.
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
from torchtune.datasets import build_preference_data, check_local_data_files
from torchtune.models import model_from_hf_config
from torchtune.modules import SequenceLogProbs, TransformerSelfAttentionLayer, reward_metrics, reward_sums, sequence_log_probs
from torchtune.modules.peft import (
    disable_adapter,
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
    "gradient_accumulation_steps", "optimizer", "lr_scheduler", "loss", "clip_grad_norm", "device", "dtype",
    "num_threads", "enable_activation_checkpointing", "compile", "metric_logger", "log_every_n_steps",
    "run_val_every_n_steps", "max_val_batches", "save_every_n_steps", "keep_last_n_checkpoints",
    "save_adapter_weights_only", "resume",
)


def check_config(cfg: config.DictConfig) -> None:
    """Stop before any work when the config cannot run: unknown keys, bad component arguments,
    missing dataset files."""
    config.validate(cfg, known_keys=KNOWN_KEYS)
    check_local_data_files(cfg)  # and the datasets extra for Hub data
    training.check_metric_loggers(cfg.get("metric_logger"))


def build_model(cfg: config.DictConfig, checkpointer: Checkpointer, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """The model with adapters and its base weights loaded; only adapter parameters train.

    ``model`` names a builder (``_component_``, e.g. ``torchtune.models.llama3_2.lora_llama3_2_1b``),
    or holds only LoRA options, in which case the architecture is read from the checkpoint's config.
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
        model.compile()
    return model


def build_data(node: Any, tokenizer: Any, padding_free: bool, key: str) -> tuple[Any, Any]:
    """The preference pairs of the config's ``key`` node and their collate function; a bad row
    stops the run with one message naming the node, the file, the row and the field."""
    try:
        return build_preference_data(node, tokenizer, padding_free=padding_free)
    except ValueError as e:
        raise config.ConfigError(f"{key}: {e}") from e


def epoch_batches(ds: Any, collate: Any, cfg: config.DictConfig, epoch: int, skip: int) -> Iterator[dict[str, Any]]:
    """Batches of pairs of one epoch in a seeded order (seed + epoch), skipping the first ``skip``
    pairs, so that a resumed run sees the same batches."""
    order = epoch_sample_order(len(ds), seed=cfg.seed, epoch=epoch, shuffle=cfg.shuffle)
    yield from DataLoader(ds, batch_size=cfg.batch_size, sampler=order[skip:], collate_fn=collate, drop_last=True)


def log_probs(model: torch.nn.Module, batch: dict[str, Any], num_pairs: int) -> SequenceLogProbs:
    """Summed log-probabilities of the chosen and rejected answers of a batch of pairs.

    Only the answer positions (those with a label) come out of the model (``output_index``), as
    final hidden states; the output projection then runs on them alone, a chunk at a time.
    """
    labels = batch["labels"].reshape(1, -1)  # [1, N * s] or [1, T], already shifted
    keep = torch.nonzero(labels[0] != CROSS_ENTROPY_IGNORE_IDX).squeeze(1)  # [n]
    hidden = model(batch["tokens"], mask=batch.get("mask"), input_pos=batch.get("input_pos"), output_index=keep,
                   output="hidden")  # [1, n, d]
    sequence_ids = batch["sequence_ids"].reshape(1, -1)[:, keep]  # [1, n]
    sums, counts = sequence_log_probs(hidden, labels[:, keep], sequence_ids, 2 * num_pairs, project=model.project)
    return SequenceLogProbs.from_sequences(sums, counts)


def forward_loss(model: torch.nn.Module, loss_fn: Any, batch: dict[str, Any], num_pairs: int,
                 device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed loss of a batch of pairs and the :func:`~torchtune.modules.reward_sums` of its rewards.

    The reference model is the policy with its adapters switched off, run without gradients.
    """
    batch = {k: v.to(device) for k, v in batch.items()}
    reference = None
    if not loss_fn.reference_free:
        with torch.no_grad(), disable_adapter(model):
            reference = log_probs(model, batch, num_pairs)
    out = loss_fn(log_probs(model, batch, num_pairs), reference)
    return out.losses.sum(), reward_sums(out)


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

    # ----- checkpointer, tokenizer, data, model, loss --------------------------------------------
    checkpointer: Checkpointer = config.instantiate(cfg.checkpointer)  # reads the model's config only
    tokenizer = config.instantiate(cfg.tokenizer)
    padding_free = cfg.get("padding_free", True)  # the sequences of a batch end to end in one row
    ds, collate = build_data(cfg.dataset, tokenizer, padding_free, "dataset")
    val_loader = None
    if cfg.get("dataset_val") is not None:
        val_ds, val_collate = build_data(cfg.dataset_val, tokenizer, padding_free, "dataset_val")
        val_loader = DataLoader(val_ds, batch_size=cfg.batch_size, collate_fn=val_collate, drop_last=True)
    model = build_model(cfg, checkpointer, device, dtype)
    # every tensor a save writes must have a name in the checkpoint's layout: fail now, not at the first save
    check_save_mappings(model.state_dict(), checkpointer.config, adapter_specs=get_adapter_specs(model))
    trainable = [p for p in model.parameters() if p.requires_grad]
    print(f"Model: {sum(p.numel() for p in model.parameters()):,} parameters, {sum(p.numel() for p in trainable):,} trainable (adapters)")
    loss_fn = config.instantiate(cfg.loss)
    print(f"Loss: {type(loss_fn).__name__}" + (" (reference free)" if loss_fn.reference_free else
                                               ", reference = the base model (adapters off)"))

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
    run_log = training.RunLog(cfg.metric_logger, total_steps=total_steps, initial_step=step, desc="lora dpo")
    adapter_specs = get_adapter_specs(model)  # each adapter's rank and alpha, for merging and the peft config

    def save(at: int) -> Path:
        state_dict = {k: v.detach().cpu() for k, v in model.state_dict().items()}

        def write(directory: Path) -> None:
            adapter_only = bool(cfg.save_adapter_weights_only) and at < total_steps
            checkpointer.write_checkpoint(directory, state_dict, adapter_specs=adapter_specs, adapter_only=adapter_only)
            save_recipe_state(directory, step=at, epoch=epoch, seed=seed, samples_seen=samples_seen,
                              optimizer=optimizer, lr_scheduler=lr_scheduler)

        return manager.save(at, write)

    def validate() -> dict[str, float]:
        totals = torch.zeros(5, device=device)  # summed loss, then the reward sums
        model.eval()
        with torch.no_grad():
            for i, batch in enumerate(val_loader):
                if cfg.max_val_batches is not None and i >= cfg.max_val_batches:
                    break
                loss_sum, rewards = forward_loss(model, loss_fn, batch, cfg.batch_size, device)
                totals += torch.cat([loss_sum[None], rewards])
        model.train()
        return {"val_loss": float(totals[0] / totals[4].clamp(min=1)),
                **{f"val_{k}": v for k, v in reward_metrics(totals[1:]).items()}}

    # ----- train ------------------------------------------------------------------------------------
    model.train()
    meter = training.TokensPerSecond(pad_id=tokenizer.pad_id)
    pairs_per_step = cfg.batch_size * accum
    last_saved = resume_dir if resume_dir is not None and step == total_steps else None
    start, first_step = time.perf_counter(), step
    while epoch < cfg.epochs:
        batches = epoch_batches(ds, collate, cfg, epoch, samples_seen)
        while samples_seen < steps_per_epoch * pairs_per_step:
            loss_sum, rewards = torch.zeros((), device=device), torch.zeros(4, device=device)
            for _ in range(accum):
                batch = next(batches)
                meter.update(batch["tokens"])
                micro_loss, micro_rewards = forward_loss(model, loss_fn, batch, cfg.batch_size, device)
                (micro_loss / pairs_per_step).backward()  # the step's gradient: the mean over its pairs
                loss_sum, rewards = loss_sum + micro_loss.detach(), rewards + micro_rewards
                samples_seen += cfg.batch_size
            loss = loss_sum / pairs_per_step
            training.check_finite(loss, step + 1)  # stop before a NaN reaches the weights
            grad_norm = training.clip_grad_norm(trainable, cfg.clip_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            lr_scheduler.step()
            step += 1
            run_log.step(loss.item())
            if step % cfg.log_every_n_steps == 0 or step == total_steps:
                run_log.log({"loss": loss.item(), **reward_metrics(rewards), "lr": optimizer.param_groups[0]["lr"],
                             "grad_norm": float(grad_norm), "tokens_per_second": meter.rate(),
                             **training.peak_memory_stats(device)}, step)
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
                              what="model (merged weights and peft adapter)"))
    return final


if __name__ == "__main__":
    try:
        main()
    except (config.ConfigError, training.TrainingDivergedError) as e:
        sys.exit(f"error: {e}")
