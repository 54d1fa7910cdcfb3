"""Benchmark LoRA and full fine-tuning steps on CPU in fp32: tokens/s, MFU and peak memory.

Each case (model size x LoRA/full) runs in its own subprocess so that its peak resident memory
is its own. A case builds a Llama-shaped model with random weights, tokenizes the shipped tiny
instruction data (variable-length samples, right-padded per batch, as the recipes do), and
times ``--steps`` optimizer steps after ``--warmup`` untimed ones. Throughput counts real
(non-padding) tokens. Model FLOPs utilisation (MFU) is the model's useful FLOPs per second
divided by the machine's dense fp32 matmul peak, which this script measures first (the best of
several large square matmuls with the same thread count).

Model FLOPs per real token: forward ``2 * N_matmul + 4 * n_layers * s * d`` (weights, plus the
attention score and value products at the batch's mean sequence length ``s``); a full
fine-tuning step costs 3x forward, a LoRA step 2x (no gradients for the frozen weights).

    python tools/benchmarks/bench_finetune.py                 # tiny and 100M, LoRA and full
    python tools/benchmarks/bench_finetune.py --sizes tiny --write-docs
    python tools/benchmarks/bench_finetune.py --cases tiny:lora 100M:full 1B:lora
"""

import argparse
import datetime
import json
import platform
import subprocess
import sys
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
}
LORA = {"lora_attn_modules": ["q_proj", "k_proj", "v_proj", "output_proj"], "apply_lora_to_mlp": True,
        "lora_rank": 16, "lora_alpha": 32}


def matmul_peak_gflops(n: int = 2048, repeats: int = 8) -> float:
    """Best observed dense fp32 matmul rate (GFLOP/s) for ``[n, n] @ [n, n]``."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def run_case(size: str, method: str, batch_size: int, steps: int, warmup: int) -> dict:
    """Time ``steps`` training steps of one case in this process; return its measurements."""
    from torch.utils.data import DataLoader

    from torchtune.data import padded_collate_sft
    from torchtune.datasets import alpaca_dataset
    from torchtune.models import model_from_hf_config
    from torchtune.modules import ChunkedCrossEntropyLoss
    from torchtune.modules.peft import get_adapter_params, set_trainable_params
    from torchtune.modules.tokenizers import HFModelTokenizer
    from torchtune.training import max_rss_bytes, scale_grads

    torch.manual_seed(0)
    cfg = SIZES[size]
    model = model_from_hf_config(cfg, **(LORA if method == "lora" else {}))
    if method == "lora":
        set_trainable_params(model, get_adapter_params(model))
    model.set_num_output_chunks(4)
    trainable = [p for p in model.parameters() if p.requires_grad]
    tokenizer = HFModelTokenizer(str(ASSETS / "tokenizer.json"), str(ASSETS / "tokenizer_config.json"), max_seq_len=256)
    ds = alpaca_dataset(tokenizer, source="json", data_files=str(ASSETS / "instructions.jsonl"))
    loader = DataLoader(ds, batch_size=batch_size, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(0),
                        collate_fn=lambda b: padded_collate_sft(b, padding_idx=tokenizer.pad_id))
    loss_fn = ChunkedCrossEntropyLoss()
    optimizer = torch.optim.AdamW(trainable, lr=1e-4)
    layers, d = cfg["num_hidden_layers"], cfg["hidden_size"]
    n_matmul = sum(p.numel() for n, p in model.named_parameters() if p.dim() == 2 and "tok_embeddings" not in n)
    real_tokens, flops, elapsed, batches = 0, 0.0, 0.0, iter(loader)
    for i in range(warmup + steps):
        batch = next(batches)
        start = time.perf_counter()
        labels = batch["labels"]
        loss = loss_fn(model(batch["tokens"]), labels)
        n = int((labels != -100).sum())
        (loss * n).backward()
        scale_grads(model, 1.0 / max(n, 1))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if i >= warmup:
            elapsed += time.perf_counter() - start
            real = int((batch["tokens"] != tokenizer.pad_id).sum())
            seq = real / batch["tokens"].shape[0]  # mean real length of the batch's samples
            forward = 2 * n_matmul + 4 * layers * seq * d
            real_tokens += real
            flops += real * forward * (2 if method == "lora" else 3)
    return {"size": size, "method": method, "params": sum(p.numel() for p in model.parameters()),
            "trainable": sum(p.numel() for p in trainable), "batch_size": batch_size, "steps": steps,
            "tokens_per_second": real_tokens / elapsed, "gflops": flops / elapsed / 1e9,
            "peak_rss_gib": max_rss_bytes() / 1024**3, "seconds_per_step": elapsed / steps}


def machine() -> str:
    """The CPU model name from lscpu (or the platform string)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        name = next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        name = platform.processor() or platform.machine()
    return f"{name} (torch threads: {torch.get_num_threads()})"


def write_docs(results: list[dict], peak: float, header: str) -> None:
    """Replace this benchmark's section of docs/benchmarks.md (other sections are kept)."""
    rows = "\n".join(
        f"| {r['size']} | {r['method']} | {r['params'] / 1e6:.1f}M | {r['trainable'] / 1e6:.2f}M | {r['batch_size']} "
        f"| {r['tokens_per_second']:.0f} | {r['gflops']:.1f} | {100 * r['gflops'] / peak:.1f}% | {r['peak_rss_gib']:.2f} |"
        for r in results
    )
    section = f"""{START}
## Fine-tuning on CPU, fp32 (`tools/benchmarks/bench_finetune.py`)

{header}

Llama-shaped models with random weights; data: the shipped tiny instruction set (variable
lengths, right-padded per batch). Tokens/s counts real (non-padding) tokens. MFU = model FLOPs/s
(3x forward for full, 2x for LoRA; forward = 2 x matmul parameters + attention products) over
the measured dense fp32 matmul peak of **{peak:.1f} GFLOP/s**. Peak memory is the process's max RSS.

| model | method | params | trainable | batch | tokens/s | GFLOP/s | MFU | peak RSS (GiB) |
|---|---|---|---|---|---|---|---|---|
{rows}

Reproduce: `python tools/benchmarks/bench_finetune.py --write-docs`. The machine is shared with
other jobs, so numbers vary from run to run.
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
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (peak and cases alike)")
    parser.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--one", nargs=2, metavar=("SIZE", "METHOD"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.one:
        print(json.dumps(run_case(*args.one, args.batch_size, args.steps, args.warmup)))
        return 0
    peak = matmul_peak_gflops()
    print(f"dense fp32 matmul peak: {peak:.1f} GFLOP/s")
    results = []
    cases = [tuple(c.split(":")) for c in args.cases] if args.cases else [
        (size, method) for size in args.sizes for method in args.methods]
    for size, method in cases:
        cmd = [sys.executable, __file__, "--one", size, method, "--batch-size", str(args.batch_size),
               "--steps", str(args.steps), "--warmup", str(args.warmup), "--threads", str(args.threads)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        result = json.loads(out.strip().splitlines()[-1])
        print(f"{size:>5} {method:>4}: {result['tokens_per_second']:8.0f} tokens/s  "
              f"MFU {100 * result['gflops'] / peak:5.1f}%  peak RSS {result['peak_rss_gib']:.2f} GiB")
        results.append(result)
    if args.write_docs:
        header = f"Machine: {machine()}; torch {torch.__version__}; {datetime.date.today().isoformat()}."
        write_docs(results, peak, header)
        print(f"updated {DOCS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
