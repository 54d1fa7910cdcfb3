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
    python tools/benchmarks/bench_finetune.py --reference-python /tmp/tt061/bin/python  # vs torchtune 0.6.1

With ``--reference-python`` the same cases (or ``--reference-cases``) also run in another
interpreter with torchtune 0.6.1 installed (its ``llama3_2`` / ``lora_llama3_2`` builders and
chunked loss) on the very same saved batches, for comparison; it is never a dependency.
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
}
IMPL_NAMES = {"ours": "this torchtune", "0.6.1": "torchtune 0.6.1"}
LORA = {"lora_attn_modules": ["q_proj", "k_proj", "v_proj", "output_proj"], "apply_lora_to_mlp": True,
        "lora_rank": 16, "lora_alpha": 32}


def matmul_peak_gflops(n: int = 2048, repeats: int = 16) -> float:
    """Best observed dense fp32 matmul rate (GFLOP/s) for ``[n, n] @ [n, n]``."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def make_batches(path: Path, batch_size: int, count: int) -> int:
    """Tokenize the shipped instructions as the recipes do, save ``count`` padded batches to
    ``path`` (plain tensors) and return the padding id."""
    from torch.utils.data import DataLoader

    from torchtune.data import padded_collate_sft
    from torchtune.datasets import alpaca_dataset
    from torchtune.modules.tokenizers import HFModelTokenizer

    tokenizer = HFModelTokenizer(str(ASSETS / "tokenizer.json"), str(ASSETS / "tokenizer_config.json"), max_seq_len=256)
    ds = alpaca_dataset(tokenizer, source="json", data_files=str(ASSETS / "instructions.jsonl"))
    loader = DataLoader(ds, batch_size=batch_size, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(0),
                        collate_fn=lambda b: padded_collate_sft(b, padding_idx=tokenizer.pad_id))
    batches = [batch for _, batch in zip(range(count), loader)]
    torch.save({"pad_id": tokenizer.pad_id, "batches": batches}, path)
    return tokenizer.pad_id


def build(impl: str, size: str, method: str) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The model (adapters trainable for LoRA) and its chunked loss, from our library or from
    torchtune 0.6.1 (``impl="0.6.1"``, run with that version's interpreter)."""
    cfg = SIZES[size]
    if impl == "ours":
        from torchtune.models import model_from_hf_config
        from torchtune.modules import ChunkedCrossEntropyLoss

        model, loss_fn = model_from_hf_config(cfg, **(LORA if method == "lora" else {})), ChunkedCrossEntropyLoss()
    else:
        from torchtune.models.llama3_2 import llama3_2, lora_llama3_2
        from torchtune.modules.loss import CEWithChunkedOutputLoss

        sizes = dict(vocab_size=cfg["vocab_size"], num_layers=cfg["num_hidden_layers"],
                     num_heads=cfg["num_attention_heads"], num_kv_heads=cfg["num_key_value_heads"],
                     embed_dim=cfg["hidden_size"], max_seq_len=cfg["max_position_embeddings"],
                     intermediate_dim=cfg["intermediate_size"], rope_base=10000, tie_word_embeddings=False)
        if method == "lora":
            model = lora_llama3_2(LORA["lora_attn_modules"], LORA["apply_lora_to_mlp"], **sizes,
                                  lora_rank=LORA["lora_rank"], lora_alpha=LORA["lora_alpha"])
        else:
            model = llama3_2(**sizes)
        loss_fn = CEWithChunkedOutputLoss(num_output_chunks=4)
    from torchtune.modules.peft import get_adapter_params, set_trainable_params  # same names in both

    if method == "lora":
        set_trainable_params(model, get_adapter_params(model))
    model.set_num_output_chunks(4)
    return model, loss_fn


def run_case(impl: str, size: str, method: str, batches_path: Path, warmup: int) -> dict:
    """Time training steps over the saved batches (the first ``warmup`` untimed) in this process."""
    import resource

    torch.manual_seed(0)
    data = torch.load(batches_path, weights_only=True)
    model, loss_fn = build(impl, size, method)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-4)
    cfg = SIZES[size]
    layers, d = cfg["num_hidden_layers"], cfg["hidden_size"]
    n_matmul = sum(p.numel() for n, p in model.named_parameters() if p.dim() == 2 and "tok_embeddings" not in n)
    real_tokens, flops, elapsed = 0, 0.0, 0.0
    for i, batch in enumerate(data["batches"]):
        start = time.perf_counter()
        labels = batch["labels"]
        loss = loss_fn(model(batch["tokens"]), labels)
        n = int((labels != -100).sum())
        (loss * n).backward()
        for param in trainable:  # mean over the batch's tokens
            param.grad.div_(max(n, 1))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if i >= warmup:
            elapsed += time.perf_counter() - start
            real = int((batch["tokens"] != data["pad_id"]).sum())
            seq = real / batch["tokens"].shape[0]  # mean real length of the batch's samples
            forward = 2 * n_matmul + 4 * layers * seq * d
            real_tokens += real
            flops += real * forward * (2 if method == "lora" else 3)
    steps = len(data["batches"]) - warmup
    return {"impl": impl, "size": size, "method": method, "params": sum(p.numel() for p in model.parameters()),
            "trainable": sum(p.numel() for p in trainable), "batch_size": int(data["batches"][0]["tokens"].shape[0]),
            "steps": steps, "tokens_per_second": real_tokens / elapsed, "gflops": flops / elapsed / 1e9,
            "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1024**3,
            "seconds_per_step": elapsed / steps}


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
        f"| {IMPL_NAMES[r['impl']]} | {r['size']} | {r['method']} | {r['params'] / 1e6:.1f}M | {r['trainable'] / 1e6:.2f}M | {r['batch_size']} "
        f"| {r['tokens_per_second']:.0f} | {r['gflops']:.1f} | {100 * r['gflops'] / peak:.1f}% | {r['peak_rss_gib']:.2f} |"
        for r in results
    )
    section = f"""{START}
## Fine-tuning on CPU, fp32 (`tools/benchmarks/bench_finetune.py`)

{header}

Llama-shaped models with random weights; data: the shipped tiny instruction set (variable
lengths, right-padded per batch). Tokens/s counts real (non-padding) tokens. MFU = model FLOPs/s
(3x forward for full, 2x for LoRA; forward = 2 x matmul parameters + attention products) over
the measured dense fp32 matmul peak of **{peak:.1f} GFLOP/s** (best of a measurement before and
after the cases). Peak memory is the process's max RSS.

| library | model | method | params | trainable | batch | tokens/s | GFLOP/s | MFU | peak RSS (GiB) |
|---|---|---|---|---|---|---|---|---|---|
{rows}

"torchtune 0.6.1" rows run the same saved batches, sizes and loss chunking through torchtune
0.6.1's `llama3_2` / `lora_llama3_2` builders and `CEWithChunkedOutputLoss`, installed from PyPI
in a scratch venv (never a dependency). The tiny rows time 5 steps of about 0.1 s each, so they
are mostly noise; the 100M and 1B rows are the meaningful ones. 1B full fine-tuning was not run:
fp32 weights, gradients and AdamW state alone need ~18 GiB on this 24 GiB machine, which other
jobs share (numbers vary from run to run). Reproduce (scratch venv: `python -m venv /tmp/tt061`,
then `/tmp/tt061/bin/pip install torch==2.13.0 torchtune==0.6.1 torchao==0.11.0 torchdata==0.11.0`):

```
python tools/benchmarks/bench_finetune.py --cases tiny:lora tiny:full 100M:lora 100M:full 1B:lora \\
    --reference-python /tmp/tt061/bin/python --reference-cases tiny:lora tiny:full 100M:lora 100M:full \\
    --steps 5 --write-docs
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
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (peak and cases alike)")
    parser.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--reference-python", help="interpreter of a torchtune 0.6.1 venv to compare with")
    parser.add_argument("--reference-cases", nargs="+", metavar="SIZE:METHOD",
                        help="cases also run with --reference-python (default: all cases)")
    parser.add_argument("--one", nargs=4, metavar=("IMPL", "SIZE", "METHOD", "BATCHES"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.one:
        impl, size, method, batches = args.one
        print(json.dumps(run_case(impl, size, method, Path(batches), args.warmup)))
        return 0
    peak = matmul_peak_gflops()  # measured again at the end; the best of both counts
    cases = [tuple(c.split(":")) for c in args.cases] if args.cases else [
        (size, method) for size in args.sizes for method in args.methods]
    reference = [tuple(c.split(":")) for c in args.reference_cases] if args.reference_cases else cases
    runs = [("ours", sys.executable, c) for c in cases]
    if args.reference_python:
        runs += [("0.6.1", args.reference_python, c) for c in reference]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        batches = Path(tmp) / "batches.pt"
        make_batches(batches, args.batch_size, args.warmup + args.steps)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # each interpreter its own torchtune
        for impl, python, (size, method) in runs:
            cmd = [python, __file__, "--one", impl, size, method, str(batches), "--warmup", str(args.warmup),
                   "--threads", str(args.threads)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout
            result = json.loads(out.strip().splitlines()[-1])
            print(f"{impl:>5} {size:>5} {method:>4}: {result['tokens_per_second']:8.0f} tokens/s  "
                  f"{result['gflops']:6.1f} GFLOP/s  peak RSS {result['peak_rss_gib']:.2f} GiB")
            results.append(result)
    peak = max(peak, matmul_peak_gflops())
    print(f"dense fp32 matmul peak (best of start and end): {peak:.1f} GFLOP/s")
    for r in results:
        print(f"{r['impl']:>5} {r['size']:>5} {r['method']:>4}: MFU {100 * r['gflops'] / peak:5.1f}%")
    if args.write_docs:
        header = f"Machine: {machine()}; torch {torch.__version__}; {datetime.date.today().isoformat()}."
        write_docs(results, peak, header)
        print(f"updated {DOCS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
