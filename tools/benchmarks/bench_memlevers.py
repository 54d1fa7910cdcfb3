"""Benchmark the full fine-tuning memory levers: peak memory and step time of AdamW, AdamW with the
step in backward (``optimizer_in_bwd``), torchao's 8-bit AdamW, and both.

Each case is its own subprocess so that its peak memory is its own. A model of
``bench_finetune.SIZES`` (default 100M, Llama-shaped) is built from random weights in ``--dtype``
and trained for ``--steps`` steps on random tokens (``--seq-len`` per step, one row) after one
untimed step, as the full fine-tuning recipe does: summed token loss, gradients scaled by
``1 / tokens``, then the optimizer step (or, in backward, :class:`torchtune.training.OptimizerInBackward`
with the same scale). Reported per case: the optimizer state's bytes (counted from its tensors; for
8-bit moments the codes, scales and maps), peak memory (on CUDA ``max_memory_allocated``; on CPU
the process's maximum RSS, with glibc told to map every allocation over 64 KiB separately so
that freed tensors leave the RSS; it includes Python and the libraries, so compare differences) and
that peak minus the memory held after building the model (the training overhead: gradients,
optimizer state, activations). On CPU torchao's step runs eagerly, as in the recipes.

    python tools/benchmarks/bench_memlevers.py                       # 100M, fp32, CPU
    python tools/benchmarks/bench_memlevers.py --size 1B --dtype bf16 --device cuda
    python tools/benchmarks/bench_memlevers.py --write-docs          # also update docs/benchmarks.md
"""

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[2]
try:
    import torchtune  # noqa: F401
except ModuleNotFoundError:  # run from a source checkout
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_finetune import SIZES  # noqa: E402  (the benchmark model shapes, shared)

DOCS = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- bench_memlevers:start -->", "<!-- bench_memlevers:end -->"
CASES = {  # case -> (optimizer, step in backward)
    "adamw": ("adamw", False),
    "adamw+in_bwd": ("adamw", True),
    "adamw8bit": ("adamw8bit", False),
    "adamw8bit+in_bwd": ("adamw8bit", True),
}
_GIB = 1024**3


def peak_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    from torchtune.training import max_rss_bytes

    return max_rss_bytes()


def current_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.memory_allocated(device)
    with open("/proc/self/statm") as f:  # resident pages now
        return int(f.read().split()[1]) * 4096


def state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes of the optimizer's tensors; a quantised state counts its codes, scales and map."""
    total = 0
    for state in optimizer.state.values():
        for t in state.values():
            if not isinstance(t, torch.Tensor):
                continue
            parts = [t.codes, t.scale, t.qmap] if hasattr(t, "codes") else [t]
            total += sum(x.numel() * x.element_size() for x in parts)
    return total


def run_case(case: str, size: str, dtype: str, device: str, seq_len: int, steps: int) -> dict:
    from torchtune.models import model_from_hf_config
    from torchtune.training import OptimizerInBackward

    kind, in_bwd = CASES[case]
    dev = torch.device(device)
    if dev.type == "cpu":
        torch.compiler.set_stance("force_eager")  # as the recipes on CPU: torchao's step compiles for minutes
    torch.manual_seed(0)
    model = model_from_hf_config(SIZES[size]).to(device=dev, dtype=getattr(torch, dtype))
    params = list(model.parameters())
    if kind == "adamw8bit":
        from torchao.optim import AdamW8bit

        optimizer = AdamW8bit(params, lr=1e-5, weight_decay=0.01)
    else:
        optimizer = torch.optim.AdamW(params, lr=1e-5, weight_decay=0.01)
    hooks = OptimizerInBackward(optimizer) if in_bwd else None
    vocab = SIZES[size]["vocab_size"]
    g = torch.Generator().manual_seed(1)
    data = [torch.randint(0, vocab, (1, seq_len + 1), generator=g).to(dev) for _ in range(steps + 1)]
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
    held = current_bytes(dev)  # the weights (and on CPU the process itself)
    times = []
    for i, row in enumerate(data):
        start = time.perf_counter()
        tokens, labels = row[:, :-1], row[:, 1:]  # [1, s]
        loss = F.cross_entropy(model(tokens).float().reshape(-1, vocab), labels.reshape(-1), reduction="sum")
        n = labels.numel()
        if hooks is not None:
            hooks.prepare(grad_scale=1.0 / n)
            loss.backward()
        else:
            loss.backward()
            with torch.no_grad():
                for p in params:
                    p.grad.mul_(1.0 / n)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        if i > 0:  # the first step allocates the state (and warms up)
            times.append(time.perf_counter() - start)
    peak = peak_bytes(dev)
    return {"case": case, "params": sum(p.numel() for p in params), "state_gib": state_bytes(optimizer) / _GIB,
            "peak_gib": peak / _GIB, "overhead_gib": (peak - held) / _GIB,
            "step_s": sorted(times)[len(times) // 2], "threads": torch.get_num_threads()}


def machine(device: str, threads: int) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(0)
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {threads} thread{'s' if threads > 1 else ''}"


def table(rows: list[dict], args: argparse.Namespace) -> str:
    base = next(r for r in rows if r["case"] == "adamw")
    lines = [
        "## Full fine-tuning memory levers (`tools/benchmarks/bench_memlevers.py`)",
        "",
        f"{args.size} model ({base['params'] / 1e6:.0f}M parameters), {args.dtype}, {args.device}, "
        f"{args.seq_len} tokens per step, median of {args.steps} steps; {machine(args.device, base.get('threads', torch.get_num_threads()))}; "
        f"{datetime.date.today().isoformat()}; `python tools/benchmarks/bench_memlevers.py --size {args.size} "
        f"--dtype {args.dtype} --device {args.device} --seq-len {args.seq_len} --steps {args.steps}`",
        "",
        "| optimizer | state GiB | peak GiB | training overhead GiB | vs AdamW | step s |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['case']} | {r['state_gib']:.3f} | {r['peak_gib']:.3f} | {r['overhead_gib']:.3f} | "
                     f"{r['overhead_gib'] / base['overhead_gib']:.2f}x | {r['step_s']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="100M", choices=sorted(SIZES))
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--write-docs", action="store_true", help=f"replace the section of {DOCS.name}")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: run one case, print JSON
    args = parser.parse_args(argv)
    if args.case:
        print(json.dumps(run_case(args.case, args.size, args.dtype, args.device, args.seq_len, args.steps)))
        return 0
    rows = []
    for case in ["adamw", *[c for c in args.cases if c != "adamw"]]:
        cmd = [sys.executable, __file__, "--case", case, "--size", args.size, "--dtype", args.dtype,
               "--device", args.device, "--seq-len", str(args.seq_len), "--steps", str(args.steps)]
        # on CPU, every allocation over 64 KiB is its own mapping, returned on free: the maximum RSS
        # then follows the tensors alive at once instead of what the allocator kept cached
        env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"} if args.device == "cpu" else None
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), file=sys.stderr)
    text = table(rows, args)
    print(text)
    if args.write_docs:
        doc = DOCS.read_text()
        if START not in doc:
            raise SystemExit(f"{DOCS} has no {START} ... {END} section")
        head, rest = doc.split(START, 1)
        DOCS.write_text(head + START + "\n" + text + "\n" + END + rest.split(END, 1)[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
