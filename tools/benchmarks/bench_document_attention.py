"""Document attention on one padding-free row: per-document SDPA, the dense mask, flex attention.

The row is a padding-free batch of the shipped tiny instructions (``--samples`` samples end to
end, the recipes' default layout); q, k, v have the 100M benchmark model's attention shape
(12 query heads, 4 key/value heads, head dim 64). Times are the median of ``--repeats`` calls
after a warmup, forward only on CPU (torch has no flex-attention backward there), forward and
backward on CUDA (in ``--dtype``, bf16 by default there), on ``--device``:

- ``sdpa``: one ``scaled_dot_product_attention`` per document (causal fast path): the
  ``document_attention="sdpa"`` path.
- ``dense``: one SDPA call with the ``[1, s, s]`` bool mask (``"dense"``).
- ``flex eager`` / ``flex compiled``: ``flex_attention`` with the block mask built from the
  document lengths, uncompiled and through ``torch.compile`` (``"flex"``).
- ``varlen`` (CUDA only): ``varlen_attn``, flash attention over cumulative document lengths
  (``"varlen"``).

    python tools/benchmarks/bench_document_attention.py --samples 8 --threads 1
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.attention.flex_attention import flex_attention

ROOT = Path(__file__).resolve().parents[2]
try:
    import torchtune  # noqa: F401
except ModuleNotFoundError:  # run from a source checkout
    sys.path.insert(0, str(ROOT))

from torchtune.data import padding_free_collate_sft  # noqa: E402
from torchtune.datasets import alpaca_dataset  # noqa: E402
from torchtune.modules._document_attention import (  # noqa: E402
    VarlenDocuments,
    document_block_mask,
    varlen_document_attention,
)
from torchtune.modules.tokenizers import HFModelTokenizer  # noqa: E402

ASSETS = ROOT / "recipes" / "assets" / "tiny"


def row_lengths(samples: int) -> list[int]:
    """Document lengths of one padding-free row of the shipped instructions."""
    tokenizer = HFModelTokenizer(str(ASSETS / "tokenizer.json"), str(ASSETS / "tokenizer_config.json"), max_seq_len=256)
    ds = alpaca_dataset(tokenizer, source="json", data_files=str(ASSETS / "instructions.jsonl"))
    return list(padding_free_collate_sft([ds[i] for i in range(samples)])["mask"].seq_lens[0])


def timed(fn, repeats: int, device: str) -> float:
    """Median milliseconds of ``fn()`` after two warmup calls."""
    for _ in range(2):
        fn()
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--dtype", choices=["fp32", "bf16"], help="default: fp32 on CPU, bf16 on CUDA")
    parser.add_argument("--no-compile", action="store_true", help="leave out compiled flex (a quick rehearsal)")
    args = parser.parse_args(argv)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[args.dtype or ("bf16" if args.device == "cuda" else "fp32")]
    backward = args.device == "cuda"
    torch.set_num_threads(args.threads)
    from torchtune.modules import BlockCausalMask

    lens = row_lengths(args.samples)
    s, device = sum(lens), torch.device(args.device)
    g = torch.Generator(device).manual_seed(0)
    q = torch.randn(1, 12, s, 64, generator=g, device=device, dtype=dtype, requires_grad=backward)
    k, v = (torch.randn(1, 4, s, 64, generator=g, device=device, dtype=dtype, requires_grad=backward)
            for _ in range(2))
    mask = BlockCausalMask([lens])
    dense = mask.dense(device)[:, None]  # [1, 1, s, s]
    block_mask = document_block_mask(mask, device)
    compiled = torch.compile(flex_attention)

    def per_document():
        outs = [F.scaled_dot_product_attention(a, b, c, is_causal=True, enable_gqa=True)
                for a, b, c in zip(q.split(lens, 2), k.split(lens, 2), v.split(lens, 2))]
        return torch.cat(outs, 2)

    cases = {
        "sdpa (per document)": per_document,
        "dense mask": lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=dense, enable_gqa=True),
        "flex eager": lambda: flex_attention(q, k, v, block_mask=block_mask, enable_gqa=True),
        "flex compiled": lambda: compiled(q, k, v, block_mask=block_mask, enable_gqa=True),
    }
    if args.no_compile:
        del cases["flex compiled"]
    if args.device == "cuda":
        docs = VarlenDocuments.of(mask, device)
        cases["varlen"] = lambda: varlen_document_attention(q, k, v, docs, scale=64**-0.5)
        del cases["flex eager"]  # materialises every score: minutes on long rows, and never used on CUDA
    grad = torch.randn_like(q) if backward else None

    def step(fn):
        def run():
            if backward:
                q.grad = k.grad = v.grad = None
                fn().backward(grad)
            else:
                with torch.no_grad():
                    fn()
        return run

    with torch.no_grad():
        reference = per_document().float()
    what = "forward + backward" if backward else "forward"
    print(f"row of {len(lens)} documents, s={s} (lengths {lens}); q [1, 12, {s}, 64], k/v [1, 4, {s}, 64], {dtype}; "
          f"{args.device}, {args.threads} thread(s), torch {torch.__version__}")
    print(f"| path | {what} ms (median) | max abs diff vs per-document SDPA |\n|---|---|---|")
    for name, fn in cases.items():
        with torch.no_grad():
            diff = (fn().float() - reference).abs().max().item()
        print(f"| {name} | {timed(step(fn), args.repeats, args.device):.2f} | {diff:.1e} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
