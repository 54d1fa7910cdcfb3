"""GGUF import benchmark: time and peak memory of reading a GGUF model into torchtune.

Each phase runs in a fresh subprocess so that its peak resident set (``ru_maxrss``) is its own:

- ``state_dict``: ``GGUFCheckpointer(...)`` and ``load_checkpoint()`` (read, dequantise, rename);
- ``model``: the same, then the model built on the meta device and the weights assigned into
  it (``load_state_dict(assign=True)``), RoPE caches recomputed: a model ready to run.

The peak is reported above the process's resident set after imports ("baseline") and as a
multiple of the dequantised weights' size. Example::

    python tools/benchmarks/bench_gguf.py --gguf SmolLM2-135M-Instruct.Q4_1.gguf
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import torch

from torchtune.training.checkpointing import GGUFCheckpointer

PHASES = ("state_dict", "model")


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _run_phase(path: str, phase: str, dtype: torch.dtype) -> dict:
    baseline = _rss_mib()
    start = time.perf_counter()
    ckpt = GGUFCheckpointer(path, output_dir=os.devnull, dtype=dtype)
    state_dict = ckpt.load_checkpoint()
    weights = sum(t.numel() * t.element_size() for t in state_dict.values()) / 2**20
    if phase == "model":
        with torch.device("meta"):
            model = ckpt.build_model()
        model.load_state_dict(state_dict, assign=True, strict=True)
        for module in model.modules():  # non-persistent buffers were built on meta
            if hasattr(module, "rope_init"):
                module.to_empty(device="cpu", recurse=False)
                module.rope_init()
        del state_dict
    seconds = time.perf_counter() - start
    peak = _peak_mib()
    return {"phase": phase, "seconds": seconds, "baseline_mib": baseline, "peak_mib": peak,
            "weights_mib": weights, "ratio": (peak - baseline) / weights}


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gguf", default=os.environ.get("TORCHTUNE_SMOLLM2_GGUF"),
                        help="the .gguf file (default: $TORCHTUNE_SMOLLM2_GGUF)")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)  # one phase, JSON out
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = _parse(argv)
    if not args.gguf:
        print("pass --gguf or set TORCHTUNE_SMOLLM2_GGUF", file=sys.stderr)
        return 2
    dtype = getattr(torch, args.dtype)
    if args.phase:
        print(json.dumps(_run_phase(args.gguf, args.phase, dtype)))
        return 0
    print(f"{os.path.basename(args.gguf)}, {args.dtype}, torch {torch.__version__}, "
          f"{os.cpu_count()} CPUs")
    print("| phase | seconds | baseline RSS | peak RSS | dequantised weights | (peak - baseline) / weights |")
    print("| --- | --- | --- | --- | --- | --- |")
    for phase in PHASES:
        cmd = [sys.executable, __file__, "--gguf", args.gguf, "--dtype", args.dtype, "--phase", phase]
        row = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
        print(f"| {phase} | {row['seconds']:.1f} | {row['baseline_mib']:.0f} MiB | {row['peak_mib']:.0f} MiB "
              f"| {row['weights_mib']:.0f} MiB | {row['ratio']:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
