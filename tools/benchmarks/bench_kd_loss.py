"""Distillation loss step (both projections, the loss, backward): chunked against full logits.

``chunked`` is :func:`torchtune.modules.distillation_loss` on final hidden states with the
student's and teacher's projections, as the single-device recipe runs it (each chunk recomputed
in backward). ``full`` first materialises both models' ``[n, v]`` logits and computes
``F.cross_entropy`` + ``F.kl_div`` on them; ``chunked_kept`` is ``chunked`` with ``recompute=False``.
Each variant runs in its own process, which reports
the median time of ``--repeats`` steps and its peak resident memory above what the inputs took
(``ru_maxrss``). Sizes default to SmolLM2-135M's (d=576, v=49152) with a teacher of d=960
(SmolLM2-360M). Usage::

    PYTHONPATH=. python tools/benchmarks/bench_kd_loss.py [--rows 1024 --repeats 3 --threads 1]
"""

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _run(args: argparse.Namespace) -> dict:
    from torchtune.modules import distillation_loss

    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    w_s = (torch.randn(args.vocab, args.dim, generator=gen) * 0.02).requires_grad_(True)
    w_t = torch.randn(args.vocab, args.teacher_dim, generator=gen) * 0.02
    hidden = torch.randn(1, args.rows, args.dim, generator=gen).requires_grad_(True)
    teacher_hidden = torch.randn(1, args.rows, args.teacher_dim, generator=gen)
    labels = torch.randint(0, args.vocab, (1, args.rows), generator=gen)

    def chunked(recompute: bool = True) -> torch.Tensor:
        return distillation_loss(hidden, teacher_hidden, labels, student_project=lambda h: h @ w_s.T,
                                 teacher_project=lambda h: h @ w_t.T, num_chunks=args.chunks, recompute=recompute).loss

    def full() -> torch.Tensor:
        s = (hidden @ w_s.T)[0].float()  # [n, v]
        with torch.no_grad():
            t = (teacher_hidden @ w_t.T)[0].float()  # [n, v]
        kd = F.kl_div(F.log_softmax(s, -1), F.log_softmax(t, -1), log_target=True, reduction="batchmean")
        return 0.5 * F.cross_entropy(s, labels[0]) + 0.5 * kd

    step = {"chunked": chunked, "chunked_kept": lambda: chunked(False), "full": full}[args.variant]
    before = _peak_mib()
    times, losses = [], []
    for _ in range(args.repeats):
        w_s.grad = hidden.grad = None
        start = time.perf_counter()
        loss = step()
        loss.backward()
        times.append(time.perf_counter() - start)
        losses.append(float(loss.detach()))
    return {"variant": args.variant, "seconds": statistics.median(times), "peak_mib_above_inputs": _peak_mib() - before,
            "loss": losses[-1], "logits_mib": args.rows * args.vocab * 4 / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1024, help="labelled positions n")
    parser.add_argument("--dim", type=int, default=576)
    parser.add_argument("--teacher-dim", type=int, default=960)
    parser.add_argument("--vocab", type=int, default=49152)
    parser.add_argument("--chunks", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--variant", choices=["chunked", "chunked_kept", "full"], help="run one variant in this process")
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(_run(args)))
        return
    rows = []
    for variant in ("full", "chunked", "chunked_kept"):
        out = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--variant", variant], check=True,
                             capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    print(f"n={args.rows} d={args.dim} d_t={args.teacher_dim} v={args.vocab}; one [n, v] fp32 logits = "
          f"{rows[0]['logits_mib']:.0f} MiB")
    print("| variant | s / step | peak MiB above inputs | loss |")
    print("| --- | --- | --- | --- |")
    for row in rows:
        print(f"| {row['variant']} | {row['seconds']:.2f} | {row['peak_mib_above_inputs']:.0f} | {row['loss']:.6f} |")


if __name__ == "__main__":
    main()
