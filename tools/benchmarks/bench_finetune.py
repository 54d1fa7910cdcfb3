"""Benchmark LoRA and full fine-tuning steps on CPU in fp32 and bf16: tokens/s, MFU and peak memory.

Each run (model size x LoRA/full x implementation) is its own subprocess so that its peak
resident memory is its own. The shipped tiny instruction data (variable-length samples) is
tokenized once and saved both as right-padded batches and, for ``--impls ours-packed``, as the
same samples packed; every implementation then trains on the same records: ``--warmup``
untimed batches, then the samples of ``--steps`` batches, timed. Throughput counts real
(non-padding) tokens; each case runs ``--repeats`` times (interleaved) and the median counts.
Model FLOPs utilisation (MFU) is model FLOPs per second over the machine's dense matmul peak in
the row's dtype, measured here (the best of several large square matmuls, same thread count).
Each case runs in every ``--dtypes`` entry: bf16 keeps the weights (and for full fine-tuning
the optimizer state) in bf16 as the recipes do with ``dtype: bf16``; LoRA adapters stay fp32
master weights (``set_adapter_dtype``). torchtune 0.6.1 runs everything in the row's dtype. The
CPU's model name and its bf16-related ISA flags are recorded beside the table.

Model FLOPs of the records: per real token ``2 * N_matmul + 4 * n_layers * s * d`` (weights
with the output projection, plus attention products at the padded batch's mean sample length
``s``), times 3 for full fine-tuning and 2 for LoRA; the same for every implementation, so work
an implementation skips (padding, logits of unlabelled positions) counts as useful.

    python tools/benchmarks/bench_finetune.py                 # tiny and 100M, LoRA and full
    python tools/benchmarks/bench_finetune.py --cases 100M:lora 100M:full --impls ours ours-packed ours-baseline
    python tools/benchmarks/bench_finetune.py --reference-python /tmp/tt061/bin/python --repeats 3  # vs 0.6.1
    python tools/benchmarks/bench_finetune.py --cases 1B:lora --impls ours ours-qlora --dtypes fp32  # QLoRA row

With ``--reference-python`` the same cases (or ``--reference-cases``) also run in another
interpreter with torchtune 0.6.1 installed (its ``llama3_2`` / ``lora_llama3_2`` builders,
``CEWithChunkedOutputLoss`` on 4 logit chunks, default AdamW, padded batches) on the very same
saved records, for comparison; it is never a dependency.
"""

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
try:
    import torchtune  # noqa: F401
except ModuleNotFoundError:  # run from a source checkout
    sys.path.insert(0, str(ROOT))

ASSETS = ROOT / "recipes" / "assets" / "tiny"
DOCS = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- bench_finetune:start -->", "<!-- bench_finetune:end -->"
LLAMA = {"model_type": "llama", "hidden_act": "silu", "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
         "tie_word_embeddings": False, "max_position_embeddings": 512}
SIZES = {
    "tiny": json.loads((ASSETS / "config.json").read_text()),
    "100M": {**LLAMA, "vocab_size": 16000, "hidden_size": 768, "intermediate_size": 2048,
             "num_hidden_layers": 12, "num_attention_heads": 12, "num_key_value_heads": 4},
    "1B": {**LLAMA, "vocab_size": 32000, "hidden_size": 2048, "intermediate_size": 5632,
           "num_hidden_layers": 22, "num_attention_heads": 32, "num_key_value_heads": 4},
    # Llama-3.2-1B's shape (its config.json): 128k vocabulary, tied embeddings, 8 key/value heads
    "llama3.2-1B": {**LLAMA, "vocab_size": 128256, "hidden_size": 2048, "intermediate_size": 8192,
                    "num_hidden_layers": 16, "num_attention_heads": 32, "num_key_value_heads": 8,
                    "head_dim": 64, "rope_theta": 500000.0, "tie_word_embeddings": True,
                    "max_position_embeddings": 2048},
}
LORA = {"lora_attn_modules": ["q_proj", "k_proj", "v_proj", "output_proj"], "apply_lora_to_mlp": True,
        "lora_rank": 16, "lora_alpha": 32}


DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def matmul_peak_gflops(dtype: str = "fp32", n: int = 2048, repeats: int = 16, device: str = "cpu") -> float:
    """Best observed dense matmul rate (GFLOP/s) for ``[n, n] @ [n, n]`` in ``dtype`` on
    ``device`` (on CUDA ``n`` is at least 8192 and each product is timed with CUDA events)."""
    if device == "cuda":
        n = max(n, 8192)
    a, b = (torch.randn(n, n, dtype=DTYPES[dtype], device=device) for _ in range(2))
    a @ b  # warm up
    best = float("inf")
    for _ in range(repeats):
        if device == "cuda":
            start_event, end_event = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start_event.record()
            a @ b
            end_event.record()
            end_event.synchronize()
            best = min(best, start_event.elapsed_time(end_event) / 1e3)
        else:
            start = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def make_batches(path: Path, batch_size: int, warmup: int, steps: int, pack_len: int, pack_rows: int,
                 pad_to_multiple_of: int = 1) -> None:
    """Tokenize the shipped instructions as the recipes do and save, as plain tensors, the same
    records three ways: ``warmup + steps`` right-padded batches of ``batch_size`` samples, the
    same batches padding-free (each batch's samples end to end in one row), and those very
    samples packed (``PackedDataset``, rows of ``pack_len``, ``pack_rows`` rows a batch; the
    warmup samples and the timed samples packed apart; padding-free rows rounded up to
    ``pad_to_multiple_of`` tokens, for ``--compile``). Also saved: the timed records' real
    token count and sum of (real tokens x mean sample length) per padded batch, for the FLOPs."""
    from torch.utils.data import DataLoader

    from torchtune.data import PackedDataset, padded_collate_packed, padded_collate_sft, padding_free_collate_sft
    from torchtune.datasets import alpaca_dataset
    from torchtune.modules.tokenizers import HFModelTokenizer

    tokenizer = HFModelTokenizer(str(ASSETS / "tokenizer.json"), str(ASSETS / "tokenizer_config.json"), max_seq_len=256)
    ds = alpaca_dataset(tokenizer, source="json", data_files=str(ASSETS / "instructions.jsonl"))
    order = torch.randperm(len(ds), generator=torch.Generator().manual_seed(0)).tolist()
    samples = [ds[i] for i in order[: batch_size * (warmup + steps)]]
    groups = {"warmup": samples[: batch_size * warmup], "timed": samples[batch_size * warmup :]}
    data: dict = {"pad_id": tokenizer.pad_id}
    for name, group in groups.items():
        padded = [padded_collate_sft(group[i : i + batch_size], padding_idx=tokenizer.pad_id)
                  for i in range(0, len(group), batch_size)]
        packs = PackedDataset(group, max_seq_len=pack_len, padding_idx=tokenizer.pad_id)
        packed = [padded_collate_packed([packs[j] for j in range(i, min(i + pack_rows, len(packs)))])
                  for i in range(0, len(packs), pack_rows)]
        free = [padding_free_collate_sft(group[i : i + batch_size], pad_to_multiple_of=pad_to_multiple_of,
                                         padding_idx=tokenizer.pad_id) for i in range(0, len(group), batch_size)]
        for batch in packed + free:  # saved as plain lists (weights_only loading); rebuilt in run_case
            batch["seq_lens"] = [list(row) for row in batch.pop("mask").seq_lens]
        data[name] = {"padded": padded, "packed": packed, "free": free}
    lens = [[len(x["tokens"]) for x in groups["timed"][i : i + batch_size]]
            for i in range(0, len(groups["timed"]), batch_size)]
    data["timed_real"] = sum(sum(b) for b in lens)
    data["timed_real_x_len"] = sum(sum(b) ** 2 / len(b) for b in lens)  # sum over batches of real * mean length
    torch.save(data, path)


def build(impl: str, size: str, method: str, dtype: str = "fp32") -> tuple[torch.nn.Module, torch.nn.Module]:
    """The model (adapters trainable for LoRA) and its loss, from our library or from
    torchtune 0.6.1 (``impl="0.6.1"``, run with that version's interpreter). ``ours-baseline``
    is our model with full logits in 4 chunks and :class:`ChunkedCrossEntropyLoss` (the path
    before the loss projected only labelled positions); the other ``ours*`` use
    :class:`LinearCrossEntropyLoss`. ``ours-qlora`` is ``ours`` with ``quantize_base=True``:
    every adapted linear weight NF4 (torchao), the embedding and the output projection as the
    row's dtype; ``ours-qlora-ac`` adds activation checkpointing per decoder layer."""
    cfg = SIZES[size]
    if impl.startswith("ours"):
        from torchtune.models import model_from_hf_config
        from torchtune.modules import ChunkedCrossEntropyLoss, LinearCrossEntropyLoss, bind_loss
        from torchtune.modules.peft import get_adapter_params, set_adapter_dtype, set_trainable_params

        lora = {**LORA, "quantize_base": impl.startswith("ours-qlora")} if method == "lora" else {}
        model = model_from_hf_config(cfg, **lora).to(DTYPES[dtype])  # NF4 weights stay NF4 under .to
        if method == "lora":
            set_adapter_dtype(model, torch.float32)  # as the recipes: fp32 master weights for adapters
            set_trainable_params(model, get_adapter_params(model))
        from torchtune.training import release_freed_memory

        release_freed_memory()  # as the LoRA recipes do once the model is loaded
        if impl == "ours-qlora-ac":  # activation checkpointing per decoder layer, as the recipes' key does
            from torchtune.modules import TransformerSelfAttentionLayer
            from torchtune.training import apply_activation_checkpointing

            apply_activation_checkpointing(model, auto_wrap_policy={TransformerSelfAttentionLayer})
        if impl == "ours-baseline":
            model.set_num_output_chunks(4)
            return model, ChunkedCrossEntropyLoss()
        loss_fn = LinearCrossEntropyLoss(num_output_chunks=4)
        bind_loss(loss_fn, model)  # the model is called with output="hidden" (forward_backward)
        return model, loss_fn
    else:
        from torchtune.models.llama3_2 import llama3_2, lora_llama3_2
        from torchtune.modules.loss import CEWithChunkedOutputLoss

        sizes = dict(vocab_size=cfg["vocab_size"], num_layers=cfg["num_hidden_layers"],
                     num_heads=cfg["num_attention_heads"], num_kv_heads=cfg["num_key_value_heads"],
                     embed_dim=cfg["hidden_size"], max_seq_len=cfg["max_position_embeddings"],
                     intermediate_dim=cfg["intermediate_size"], rope_base=int(cfg["rope_theta"]),
                     tie_word_embeddings=cfg["tie_word_embeddings"])
        qlora = impl.startswith("0.6.1-qlora")  # its QLoRA: quantize_base=True on the same LoRA builder
        if method == "lora":
            model = lora_llama3_2(LORA["lora_attn_modules"], LORA["apply_lora_to_mlp"], **sizes,
                                  lora_rank=LORA["lora_rank"], lora_alpha=LORA["lora_alpha"], quantize_base=qlora)
        else:
            model = llama3_2(**sizes)
        loss_fn = CEWithChunkedOutputLoss(num_output_chunks=4)
        if not qlora:  # (built in the default fp32; .to would not keep 0.6.1's NF4 weights as they are)
            model = model.to(DTYPES[dtype])
        if impl == "0.6.1-qlora-ac":  # its activation checkpointing per decoder layer (its recipes' key)
            from torchtune.modules import TransformerSelfAttentionLayer
            from torchtune.training import set_activation_checkpointing

            set_activation_checkpointing(model, auto_wrap_policy={TransformerSelfAttentionLayer})
    from torchtune.modules.peft import get_adapter_params, set_trainable_params  # same names in both

    if method == "lora":
        set_trainable_params(model, get_adapter_params(model))
    model.set_num_output_chunks(4)
    return model, loss_fn


IMPLS = {  # impl -> (batches, fused AdamW, output_index: the model computes only labelled positions)
    "ours": ("free", True, True), "ours-padded": ("padded", True, True), "ours-packed": ("packed", True, True),
    "ours-baseline": ("padded", False, False), "0.6.1": ("padded", False, False), "0.6.1-qlora": ("padded", False, False),
    "0.6.1-qlora-ac": ("padded", False, False),
    "ours-qlora": ("free", True, True), "ours-qlora-ac": ("free", True, True),
}


def forward_backward(model, loss_fn, batch: dict, output_index: bool) -> int:
    """Summed token loss of a batch, backward; returns the token count. With ``output_index``
    only the labelled positions leave the model, as in the recipes."""
    tokens, labels = batch["tokens"], batch["labels"]
    kwargs = {"mask": batch["mask"], "input_pos": batch["input_pos"]} if "mask" in batch else {}
    if getattr(loss_fn, "model_output", "logits") == "hidden":  # ours with LinearCrossEntropyLoss
        kwargs["output"] = "hidden"
    if output_index:
        labels = labels.reshape(1, -1)  # [1, b * s]
        keep = torch.nonzero(labels[0] != -100).squeeze(1)  # [n]
        loss = loss_fn(model(tokens, **kwargs, output_index=keep), labels[:, keep])
    else:
        loss = loss_fn(model(tokens, **kwargs), labels)
    n = int((labels != -100).sum())
    (loss * n).backward()
    return n


def train_step(model, loss_fn, optimizer, trainable: list, batch: dict, output_index: bool) -> None:
    """One optimizer step on a batch: summed token loss, gradients divided by the token count."""
    n = forward_backward(model, loss_fn, batch, output_index)
    for param in trainable:  # mean over the batch's tokens
        param.grad.div_(max(n, 1))
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def run_case(impl: str, size: str, method: str, batches_path: Path, dtype: str = "fp32", device: str = "cpu",
             compile_layers: bool = False) -> dict:
    """Time training steps over the saved timed batches (after the untimed warmup ones), on
    ``device``; ``compile_layers`` compiles each decoder layer (``torch.compile``) first."""
    import resource

    torch.manual_seed(0)
    data = torch.load(batches_path, weights_only=True)
    kind, fused, output_index = IMPLS[impl]
    for group in ("warmup", "timed"):
        data[group][kind] = [{k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in b.items()}
                             for b in data[group][kind]]
    if kind in ("free", "packed"):
        from torchtune.modules import BlockCausalMask

        for batch in data["warmup"][kind] + data["timed"][kind]:
            batch["mask"] = BlockCausalMask(batch.pop("seq_lens"))
    cuda = device == "cuda"
    with torch.device(device):
        model, loss_fn = build(impl, size, method, dtype)
    compile_layers = compile_layers and impl.startswith("ours")  # 0.6.1 runs its default: compile off
    if compile_layers:
        from torchtune.training import compile_model

        compile_model(model, torch.device(device))  # per layer; the document mask is built outside
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-4, fused=True) if fused else torch.optim.AdamW(trainable, lr=1e-4)
    cfg = SIZES[size]
    layers, d = cfg["num_hidden_layers"], cfg["hidden_size"]
    n_matmul = sum(p.numel() for n, p in model.named_parameters() if p.dim() == 2 and "tok_embeddings" not in n)
    for batch in data["warmup"][kind]:
        train_step(model, loss_fn, optimizer, trainable, batch, output_index)
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    for batch in data["timed"][kind]:
        train_step(model, loss_fn, optimizer, trainable, batch, output_index)
    if cuda:
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1024**3  # before the counting pass
    gpu = ({"peak_gpu_alloc_gib": torch.cuda.max_memory_allocated() / 1024**3,
            "peak_gpu_reserved_gib": torch.cuda.max_memory_reserved() / 1024**3} if cuda else {})
    # the FLOPs this implementation really executes on the timed records (forward and backward,
    # counted by torch's FlopCounterMode in an extra untimed pass without optimizer steps)
    from torch.utils.flop_counter import FlopCounterMode

    executed = float("nan")  # not counted on CUDA (flex attention and compiled layers escape the counter)
    if not cuda:
        with FlopCounterMode(display=False) as counter:
            for batch in data["timed"][kind]:
                forward_backward(model, loss_fn, batch, output_index)
                optimizer.zero_grad(set_to_none=True)
        executed = counter.get_total_flops()
    # model FLOPs of the records (same for every impl): weights for every real token (output
    # projection included) plus attention products at each padded batch's mean sample length
    forward = 2 * n_matmul * data["timed_real"] + 4 * layers * d * data["timed_real_x_len"]
    flops = forward * (2 if method == "lora" else 3)
    steps = len(data["timed"][kind])
    warmup_batches = len(data["warmup"]["padded"])
    return {"impl": impl, "size": size, "method": method, "dtype": dtype, "device": device, "compiled": compile_layers,
            **gpu, "params": sum(p.numel() for p in model.parameters()),
            "trainable": sum(p.numel() for p in trainable), "batches": kind,
            "batch_shape": list(data["timed"][kind][0]["tokens"].shape),
            "steps": steps, "tokens_per_second": data["timed_real"] / elapsed, "gflops": flops / elapsed / 1e9,
            "executed_gflops": executed / elapsed / 1e9,
            "peak_rss_gib": peak_rss,
            "seconds_per_step": elapsed / steps, "warmup_batches": warmup_batches,
            "timed_batches": len(data["timed"]["padded"]), "batch_size": int(data["timed"]["padded"][0]["tokens"].shape[0])}


def cpu_flags() -> str:
    """The CPU's matrix-relevant ISA flags (from /proc/cpuinfo) and torch's CPU capability."""
    wanted = ["avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"]
    try:
        flags = next(line.split(":", 1)[1].split() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("flags"))
    except (OSError, StopIteration):
        flags = []
    have = [f for f in wanted if f in flags]
    return f"ISA flags: {', '.join(have) or 'none of ' + ', '.join(wanted)}; torch CPU capability {torch.backends.cpu.get_cpu_capability()}"


def machine() -> str:
    """The CPU model name from lscpu (or the platform string)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        name = next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        name = platform.processor() or platform.machine()
    return f"{name} (torch threads: {torch.get_num_threads()})"


IMPL_NAMES = {"ours": "this torchtune", "ours-padded": "this torchtune, padded", "ours-packed": "this torchtune, packed",
              "ours-baseline": "this torchtune, before (full logits, for-loop AdamW)", "0.6.1": "torchtune 0.6.1",
              "0.6.1-qlora": "torchtune 0.6.1 QLoRA", "0.6.1-qlora-ac": "torchtune 0.6.1 QLoRA, activation checkpointing"}


def targets(results: list[dict], peaks: dict[str, float]) -> str:
    """Markdown bullets: each of our rows against torchtune 0.6.1 in the same dtype (tokens/s
    ratio, peak memory) and its MFU, next to the targets (1.5x at no more memory; 80% MFU for the
    100M model), and our bf16 rows against our fp32 rows (target 3x on CPUs with AMX)."""
    ref = {(r["size"], r["method"], r.get("dtype", "fp32")): r for r in results if r["impl"] == "0.6.1"}
    ours32 = {(r["impl"], r["size"], r["method"]): r for r in results if r.get("dtype", "fp32") == "fp32"}
    lines = []
    for r in results:
        dtype = r.get("dtype", "fp32")
        fp32 = ours32.get((r["impl"], r["size"], r["method"]))
        if r["impl"] != "0.6.1" and dtype == "bf16" and fp32 is not None:
            lines.append(f"- {r['size']} {r['method']}, {IMPL_NAMES[r['impl']]}: bf16 **{r['tokens_per_second'] / fp32['tokens_per_second']:.2f}x** "
                         f"fp32's tokens/s (target 3x on AMX CPUs), peak RSS {r['peak_rss_gib']:.2f} vs {fp32['peak_rss_gib']:.2f} GiB")
        other = ref.get((r["size"], r["method"], dtype))
        if r["impl"] == "0.6.1" or other is None:
            continue
        ratio = r["tokens_per_second"] / other["tokens_per_second"]
        mfu = 100 * r["gflops"] / peaks[dtype]
        lines.append(
            f"- {r['size']} {r['method']} {dtype}, {IMPL_NAMES[r['impl']]}: **{ratio:.2f}x** torchtune 0.6.1's tokens/s "
            f"(target 1.5x: {'met' if ratio >= 1.5 else 'not met'}), peak RSS {r['peak_rss_gib']:.2f} vs "
            f"{other['peak_rss_gib']:.2f} GiB ({'no more' if r['peak_rss_gib'] <= other['peak_rss_gib'] else 'more'}), "
            f"MFU {mfu:.0f}%" + (f" (target 80%: {'met' if mfu >= 80 else 'not met'})" if r["size"] == "100M" else "")
        )
    return "\n".join(lines)


def _rate(tokens_per_second: float) -> str:
    """Tokens/s with 3 significant digits at least (12.5, 274, 11623)."""
    return f"{tokens_per_second:.1f}" if tokens_per_second < 100 else f"{tokens_per_second:.0f}"


def write_docs(results: list[dict], peaks: dict[str, float], header: str, commands: list[str]) -> None:
    """Replace this benchmark's section of docs/benchmarks.md (other sections are kept)."""
    def peak(r: dict) -> float:
        return peaks[r.get("dtype", "fp32")]

    rows = "\n".join(
        f"| {IMPL_NAMES[r['impl']]} | {r['size']} | {r['method']} | {r.get('dtype', 'fp32')} | {r['params'] / 1e6:.1f}M | {r['trainable'] / 1e6:.2f}M "
        f"| {r['steps']} x {r['batch_shape']} | {_rate(r['tokens_per_second'])} | {', '.join(_rate(t) for t in r['tokens_per_second_all'])} "
        f"| {r['gflops']:.1f} | {100 * r['gflops'] / peak(r):.1f}% | {r['executed_gflops']:.1f} "
        f"| {100 * r['executed_gflops'] / peak(r):.1f}% | {r['peak_rss_gib']:.2f} |"
        for r in results
    )
    peak_text = ", ".join(f"{d} **{p:.1f} GFLOP/s**" for d, p in peaks.items())
    reproduce = "\n".join(f"{c} --json <file>" for c in commands)
    if len(commands) > 1:
        reproduce += "\npython tools/benchmarks/bench_finetune.py --from-json <files> --write-docs"
    else:
        reproduce = reproduce.replace(" --json <file>", " --write-docs")
    section = f"""{START}
## Fine-tuning on CPU, fp32 and bf16 (`tools/benchmarks/bench_finetune.py`)

{header}

Llama-shaped models with random weights. Data: the shipped tiny instruction set (variable
lengths; most positions are prompt tokens whose label is ignored). Every library trains on the
very same records: untimed warmup batch(es), then the timed records: the samples of the
"timed steps" padded batches (`[b, s]` is the first of them; b = samples per step). Each side
runs its own default path:

- **this torchtune**: the recipes' default path: padding-free batches (`padding_free_collate_sft`:
  each batch's samples end to end in one row, attention per sample through `BlockCausalMask`),
  `output_index` (the last layer and the output projection run only at the positions that carry
  a label), `LinearCrossEntropyLoss` (4 chunks of at least 256 rows) and
  `torch.optim.AdamW(fused=True)`.
- **this torchtune, padded**: the same on right-padded batches (`padded_collate_sft`).
- **this torchtune, packed**: the same with the samples packed by `PackedDataset` into rows of
  256 tokens, 2 rows a batch (`padded_collate_packed`).
- **torchtune 0.6.1**: right-padded batches (`padded_collate_sft`, its default), `llama3_2` /
  `lora_llama3_2` builders, logits in 4 chunks with `CEWithChunkedOutputLoss`, default
  `torch.optim.AdamW`; installed from PyPI in a scratch venv (never a dependency).

Tokens/s counts real (non-padding) tokens of the timed records (the same count for every row),
median of the runs listed (interleaved with the other rows of the same command). MFU = model FLOPs/s over the measured
dense matmul peak of the row's dtype ({peak_text}; best of a measurement before and after). bf16
rows keep weights (and full fine-tuning's optimizer state) in bf16; LoRA adapters are fp32 master
weights in ours, bf16 in torchtune 0.6.1. Model
FLOPs are the same for every row: per real token 2 x matmul parameters (output projection
included) + attention products at the padded batch's mean sample length, times 3 (full) or
2 (LoRA). Our rows skip part of that work (padding, and the last layer and output projection at
unlabelled positions), so their MFU is "useful work per second" and can exceed 100%. HFU is
what the hardware really did: the FLOPs each implementation executes on the timed records
(forward and backward, counted by `torch.utils.flop_counter.FlopCounterMode` in an extra
untimed pass) per timed second, over the same peak. Peak memory is the process's max RSS (highest of the runs).

| library | model | method | dtype | params | trainable | timed steps x [b, s] | tokens/s (median) | runs | model GFLOP/s | MFU | executed GFLOP/s | HFU | peak RSS (GiB) |
|---|---|---|---|---|---|---|---|---|---|---|---|---|---|
{rows}

Against the targets (medians above):

{targets(results, peaks)}

Where the time goes: see "Fine-tuning: where the time goes" below.

Reproduce (scratch venv: `python -m venv /tmp/tt061`, then
`/tmp/tt061/bin/pip install torch==2.13.0 torchtune==0.6.1 torchao==0.11.0 torchdata==0.11.0`):

```
{reproduce}
```
{END}"""
    text = DOCS.read_text(encoding="utf-8") if DOCS.exists() else "# Benchmarks\n\nMeasured numbers; each section names the script that produced it.\n"
    if START in text and END in text:
        text = text[: text.index(START)] + section + text[text.index(END) + len(END) :]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    DOCS.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["tiny", "100M"], choices=sorted(SIZES))
    parser.add_argument("--methods", nargs="+", default=["lora", "full"], choices=["lora", "full"])
    parser.add_argument("--cases", nargs="+", metavar="SIZE:METHOD",
                        help="explicit cases, e.g. 1B:lora (instead of --sizes x --methods)")
    parser.add_argument("--impls", nargs="+", default=["ours"], choices=[i for i in IMPLS if not i.startswith("0.6.1")],
                        help="our variants: ours = padding-free batches, output_index, LinearCrossEntropyLoss, "
                        "fused AdamW (the recipes' path); ours-padded / ours-packed = the same on padded / "
                        "packed batches; ours-baseline = padded, full logits, default AdamW; ours-qlora = "
                        "ours with NF4 base weights (LoRA cases only); ours-qlora-ac = that with activation "
                        "checkpointing per decoder layer")
    parser.add_argument("--batch-size", type=int, default=8, help="samples per padded batch")
    parser.add_argument("--pack-len", type=int, default=256, help="tokens per packed row")
    parser.add_argument("--pack-rows", type=int, default=2, help="packed rows per batch")
    parser.add_argument("--steps", type=int, default=10, help="timed padded batches (their samples are the timed records)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed padded batches before")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each case; the median tokens/s is reported")
    parser.add_argument("--dtypes", nargs="+", default=["fp32", "bf16"], choices=sorted(DTYPES),
                        help="dtypes every case runs in (both libraries)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (peak and cases alike)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                        help="cuda: models, batches and the matmul peak on the GPU; peak memory from "
                        "torch.cuda.max_memory_allocated/reserved (see tools/benchmarks/gpu_check.sh)")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile each decoder layer of our model (torchtune 0.6.1 keeps its default, eager)")
    parser.add_argument("--pad-to-multiple-of", type=int, default=1,
                        help="round padding-free rows up to this many tokens (use 128 with --compile)")
    parser.add_argument("--peak-n", type=int, default=2048,
                        help="matrix size of the matmul peak measurement (at least 8192 on CUDA)")
    parser.add_argument("--table", action="store_true",
                        help="print one table (tokens/s, MFU, peak memory) of the rows, e.g. with --from-json")
    parser.add_argument("--reference-pythonpath",
                        help="PYTHONPATH for the torchtune 0.6.1 runs (a pip --target folder), e.g. with "
                        "--reference-python set to this very interpreter")
    parser.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--json", type=Path, help="also save the results (and the peak) to this file")
    parser.add_argument("--from-json", type=Path, nargs="+",
                        help="run nothing: merge the results saved by earlier --json runs (e.g. 1B apart) and "
                        "print them / write the docs; the highest measured peak counts")
    parser.add_argument("--reference-python", help="interpreter of a torchtune 0.6.1 venv to compare with")
    parser.add_argument("--reference-impls", nargs="+", default=["0.6.1"], choices=["0.6.1", "0.6.1-qlora", "0.6.1-qlora-ac"],
                        help="what --reference-python runs: 0.6.1 = its LoRA/full; 0.6.1-qlora = its QLoRA "
                        "(quantize_base=True, LoRA cases, fp32 only); 0.6.1-qlora-ac = that with its activation checkpointing "
                        "per decoder layer")
    parser.add_argument("--reference-cases", nargs="+", metavar="SIZE:METHOD",
                        help="cases also run with --reference-python (default: all cases)")
    parser.add_argument("--one", nargs=5, metavar=("IMPL", "SIZE", "METHOD", "BATCHES", "DTYPE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but torch sees no CUDA GPU here")
    if args.one:
        impl, size, method, batches, dtype = args.one
        print(json.dumps(run_case(impl, size, method, Path(batches), dtype, args.device, args.compile)))
        return 0
    if args.from_json:
        saved = [json.loads(path.read_text()) for path in args.from_json]
        peaks = {}
        for s in saved:  # older files hold one fp32 "peak"
            for d, p in s.get("peaks", {"fp32": s.get("peak", 0.0)}).items():
                peaks[d] = max(peaks.get(d, 0.0), p)
        return report([r for s in saved for r in s["results"]], peaks, args, [c for s in saved for c in s["commands"]])
    peaks = {d: matmul_peak_gflops(d, n=args.peak_n, device=args.device) for d in args.dtypes}  # again at the end
    cases = [tuple(c.split(":")) for c in args.cases] if args.cases else [
        (size, method) for size in args.sizes for method in args.methods]
    reference = [tuple(c.split(":")) for c in args.reference_cases] if args.reference_cases else cases
    runs = [(impl, sys.executable, c, d) for d in args.dtypes for c in cases for impl in args.impls]
    if args.reference_python:
        runs += [(impl, args.reference_python, c, d) for impl in args.reference_impls for d in args.dtypes
                 for c in reference]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        batches = Path(tmp) / "batches.pt"
        make_batches(batches, args.batch_size, args.warmup, args.steps, args.pack_len, args.pack_rows,
                     args.pad_to_multiple_of)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # each interpreter its own torchtune
        ref_env = dict(env, PYTHONPATH=args.reference_pythonpath) if args.reference_pythonpath else env
        flags = ["--threads", str(args.threads), "--device", args.device] + (["--compile"] if args.compile else [])
        samples: dict = {}
        for _ in range(args.repeats):  # interleaved, so that load changes hit every case alike
            for impl, python, (size, method), dtype in runs:
                cmd = [python, __file__, "--one", impl, size, method, str(batches), dtype, *flags]
                proc = subprocess.run(cmd, capture_output=True, text=True,
                                      env=ref_env if impl.startswith("0.6.1") else env)
                if proc.returncode and impl.startswith("0.6.1"):  # the comparison is optional: our rows still count
                    print(f"torchtune 0.6.1 {size} {method} {dtype} failed, row left out:\n{proc.stderr[-2000:]}",
                          flush=True)
                    continue
                if proc.returncode:
                    raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-4000:]}")
                out = proc.stdout
                result = json.loads(out.strip().splitlines()[-1])
                print(f"{impl:>13} {size:>5} {method:>4} {dtype}: {result['tokens_per_second']:8.0f} tokens/s  "
                      f"{result['gflops']:6.1f} GFLOP/s  peak RSS {result['peak_rss_gib']:.2f} GiB", flush=True)
                samples.setdefault((impl, size, method, dtype), []).append(result)
    for runs_of_case in samples.values():
        ranked = sorted(runs_of_case, key=lambda r: r["tokens_per_second"])
        median = dict(ranked[len(ranked) // 2])
        median["tokens_per_second_all"] = [round(r["tokens_per_second"], 1) for r in runs_of_case]
        median["peak_rss_gib"] = max(r["peak_rss_gib"] for r in runs_of_case)
        results.append(median)
    peaks = {d: max(p, matmul_peak_gflops(d, n=args.peak_n, device=args.device)) for d, p in peaks.items()}
    command = (f"python tools/benchmarks/bench_finetune.py --cases {' '.join(f'{s}:{m}' for s, m in cases)} "
               f"--dtypes {' '.join(args.dtypes)} --impls {' '.join(args.impls)} --reference-python /tmp/tt061/bin/python --reference-cases "
               f"{' '.join(f'{s}:{m}' for s, m in reference)} --steps {args.steps} --warmup {args.warmup} "
               f"--repeats {args.repeats}")
    if args.device == "cuda":
        command += f" --device cuda --pad-to-multiple-of {args.pad_to_multiple_of}" + (" --compile" if args.compile else "")
    where = torch.cuda.get_device_name() if args.device == "cuda" else f"{machine()}; {cpu_flags()}"
    if args.json:
        args.json.write_text(json.dumps({"peaks": peaks, "results": results, "commands": [command],
                                         "machine": where}, indent=1))
    return report(results, peaks, args, [command])


def gpu_table(results: list[dict], peaks: dict[str, float]) -> str:
    """One markdown table of the rows: real tokens/s, MFU over the measured matmul peak of the
    row's dtype, peak GPU memory (allocated / reserved; peak RSS on CPU)."""
    lines = ["| library | model | method | dtype | compiled | tokens/s (real) | MFU | peak memory (GiB) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        memory = (f"{r['peak_gpu_alloc_gib']:.2f} alloc / {r['peak_gpu_reserved_gib']:.2f} reserved"
                  if "peak_gpu_alloc_gib" in r else f"{r['peak_rss_gib']:.2f} RSS")
        lines.append(f"| {IMPL_NAMES[r['impl']]} | {r['size']} | {r['method']} | {r.get('dtype', 'fp32')} | "
                     f"{'yes' if r.get('compiled') else 'no'} | {_rate(r['tokens_per_second'])} | "
                     f"{100 * r['gflops'] / peaks[r.get('dtype', 'fp32')]:.1f}% | {memory} |")
    peak_text = ", ".join(f"{d} {p / 1e3:.1f} TFLOP/s" for d, p in peaks.items())
    return "\n".join(lines) + f"\n\nmeasured dense matmul peak: {peak_text}"


def report(results: list[dict], peaks: dict[str, float], args: argparse.Namespace, commands: list[str]) -> int:
    """Print the results (and write the docs with ``--write-docs``)."""
    for dtype, peak in peaks.items():
        print(f"dense {dtype} matmul peak (best of start and end): {peak:.1f} GFLOP/s")
    if args.table or any(r.get("device") == "cuda" for r in results):
        print(gpu_table(results, peaks))
    for r in results:
        peak = peaks[r.get("dtype", "fp32")]
        print(f"{r['impl']:>13} {r['size']:>5} {r['method']:>4} {r.get('dtype', 'fp32')}: median {r['tokens_per_second']:.0f} tokens/s "
              f"(runs {r['tokens_per_second_all']}), MFU {100 * r['gflops'] / peak:5.1f}%, "
              f"HFU {100 * r['executed_gflops'] / peak:5.1f}%, "
              f"peak RSS {r['peak_rss_gib']:.2f} GiB")
    if args.write_docs:
        header = f"Machine: {machine()}; {cpu_flags()}; torch {torch.__version__}; {datetime.date.today().isoformat()}."
        write_docs(results, peaks, header, commands)
        print(f"updated {DOCS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
