"""Forward+backward micro-benchmark of one decoder layer and a ~100M-parameter Llama-shaped model.

Runs on CPU by default and reports tokens/s, the bytes of activations saved for backward (exact,
via saved-tensor hooks) and the process's peak resident memory. Example::

    python tools/benchmarks/bench_model.py --batch-size 2 --seq-len 256 --steps 3
"""

import argparse
import resource
import sys
import time
from collections.abc import Callable

import torch

from torchtune.models import build_decoder
from torchtune.modules import chunked_cross_entropy

# Llama-shaped, ~100M parameters with tied embeddings.
MODEL_SIZES = dict(vocab_size=32000, num_layers=12, num_heads=12, num_kv_heads=4, embed_dim=768,
                   intermediate_dim=2048, max_seq_len=2048, rope_base=500000.0, tie_word_embeddings=True)


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=2, help="sequences per step (default 2)")
    parser.add_argument("--seq-len", type=int, default=256, help="tokens per sequence (default 256)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps (default 3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first (default 1)")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    parser.add_argument("--layer-only", action="store_true", help="benchmark one decoder layer only")
    return parser.parse_args(argv)


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _saved_bytes(step: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Run ``step`` and count the bytes autograd saves for backward (deduplicated by storage)."""
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = step()
    return out, sum(seen.values())


def _bench(name: str, step: Callable[[], torch.Tensor], tokens: int, args: argparse.Namespace) -> None:
    for _ in range(args.warmup):
        step().backward()
    saved = 0
    start = time.perf_counter()
    for _ in range(args.steps):
        loss, saved = _saved_bytes(step)
        loss.backward()
    elapsed = (time.perf_counter() - start) / args.steps
    print(f"{name}: {elapsed * 1000:.1f} ms/step, {tokens / elapsed:,.0f} tokens/s, "
          f"saved activations {saved / 2**20:.1f} MiB, peak RSS {_peak_rss_mib():.0f} MiB")


def main(argv: list[str] | None = None) -> None:
    args = _parse(sys.argv[1:] if argv is None else argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dtype = getattr(torch, args.dtype)
    b, s = args.batch_size, args.seq_len
    model = build_decoder(**MODEL_SIZES).to(dtype)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, dtype {args.dtype}, "
          f"batch {b} x seq {s}, model {n_params / 1e6:.1f}M params")

    layer = model.layers[0]
    x = torch.randn(b, s, MODEL_SIZES["embed_dim"], dtype=dtype, requires_grad=True)
    _bench("decoder layer", lambda: layer(x).float().pow(2).mean(), b * s, args)
    if args.layer_only:
        return
    model.set_num_output_chunks(8)
    tokens = torch.randint(0, MODEL_SIZES["vocab_size"], (b, s))
    labels = torch.roll(tokens, -1, dims=1)
    _bench("full model", lambda: chunked_cross_entropy(model(tokens), labels), b * s, args)


if __name__ == "__main__":
    main()
