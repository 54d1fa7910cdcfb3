"""Mixture-of-experts forward+backward: this torchtune against transformers, in the same run.

Two targets, each with equal weights on every side:

- ``layer``: one MoE feed-forward (:class:`torchtune.modules.MoE` vs transformers'
  ``Qwen3MoeSparseMoeBlock``) on ``batch x seq`` tokens;
- ``model``: a Qwen3-MoE-shaped model built from one ``Qwen3MoeConfig`` (ours through
  ``model_from_hf_config``; transformers with its default SDPA attention), loss = mean
  cross-entropy over every position.

transformers runs twice: with ``experts_implementation="eager"`` (its per-expert loop with
``index_add_``) and with its default in 5.x, ``"grouped_mm"`` (sorted tokens and
``torch._grouped_mm``, the same grouping as ours). Reports the median over ``--repeats`` of the
time of ``--steps`` forward+backward passes, as tokens/s, and our speed-up over each. Usage::

    PYTHONPATH=. python tools/benchmarks/bench_moe.py [--experts 8 --top-k 2 --device cpu --threads 1]
"""

import argparse
import json
import statistics
import time

import torch
from torch import nn


def _config(args: argparse.Namespace):
    from transformers import Qwen3MoeConfig

    return Qwen3MoeConfig(
        vocab_size=args.vocab, hidden_size=args.dim, intermediate_size=4 * args.dim,
        moe_intermediate_size=args.expert_dim, num_hidden_layers=args.layers, num_attention_heads=8,
        num_key_value_heads=2, head_dim=args.dim // 8, num_experts=args.experts, num_experts_per_tok=args.top_k,
        norm_topk_prob=True, max_position_embeddings=max(2048, args.seq), tie_word_embeddings=False,
    )


def _with_experts(module: nn.Module, implementation: str) -> nn.Module:
    """A deep copy of a transformers module whose experts run ``implementation``."""
    import copy

    clone = copy.deepcopy(module)
    for m in clone.modules():
        if hasattr(m, "config") and hasattr(m.config, "_experts_implementation"):
            m.config._experts_implementation = implementation
    return clone


def _sides(args: argparse.Namespace) -> dict[str, dict[str, nn.Module]]:
    from transformers import Qwen3MoeForCausalLM
    from transformers.models.qwen3_moe.modeling_qwen3_moe import Qwen3MoeSparseMoeBlock

    from torchtune.models import hf_to_tune, model_from_hf_config
    from torchtune.modules import GroupedExperts, MoE, TopKRouter

    torch.manual_seed(0)
    config = _config(args)
    hf_block = Qwen3MoeSparseMoeBlock(config)
    ours_block = MoE(router=TopKRouter(dim=args.dim, num_experts=args.experts, top_k=args.top_k),
                     experts=GroupedExperts(dim=args.dim, hidden_dim=args.expert_dim, num_experts=args.experts))
    with torch.no_grad():
        for p in hf_block.parameters():
            p.normal_(0, 0.05)
        ours_block.router.gate.weight.copy_(hf_block.gate.weight)
        ours_block.experts.gate_up_proj.copy_(hf_block.experts.gate_up_proj)
        ours_block.experts.down_proj.copy_(hf_block.experts.down_proj)
    hf_model = Qwen3MoeForCausalLM(config)
    with torch.no_grad():
        for p in hf_model.parameters():
            p.normal_(0, 0.05)
    cfg = json.loads(config.to_json_string())
    ours_model = model_from_hf_config(cfg)
    ours_model.load_state_dict(hf_to_tune(hf_model.state_dict(), cfg))
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
    out = {}
    for target, (ours, hf) in {"layer": (ours_block, hf_block), "model": (ours_model, hf_model)}.items():
        sides = {"torchtune": ours, "hf_eager": _with_experts(hf, "eager"), "hf_grouped_mm": _with_experts(hf, "grouped_mm")}
        out[target] = {k: m.to(args.device, dtype).train() for k, m in sides.items()}
    return out


def _step(target: str, side: str, module: nn.Module, inputs: torch.Tensor, labels: torch.Tensor) -> None:
    if target == "layer":
        x = inputs.detach().requires_grad_()
        module(x).float().square().mean().backward()
        return
    logits = module(inputs) if side == "torchtune" else module(input_ids=inputs).logits
    nn.functional.cross_entropy(logits.flatten(0, 1).float(), labels.flatten()).backward()


def _time(target, side, module, inputs, labels, steps, device) -> float:
    _step(target, side, module, inputs, labels)  # warmup
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        module.zero_grad(set_to_none=True)
        _step(target, side, module, inputs, labels)
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--experts", type=int, default=8)
    parser.add_argument("--top-k", type=int, default=2)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--expert-dim", type=int, default=512)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=4096)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--targets", nargs="+", default=["layer", "model"], choices=["layer", "model"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, args.vocab, (args.batch, args.seq), generator=g).to(args.device)
    labels = torch.randint(0, args.vocab, (args.batch, args.seq), generator=g).to(args.device)
    hidden = torch.randn(args.batch, args.seq, args.dim, generator=g).to(args.device)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
    n_tokens = args.batch * args.seq * args.steps
    print(f"torch {torch.__version__}, device {args.device}, {args.dtype}, threads {torch.get_num_threads()}; "
          f"E={args.experts} k={args.top_k} d={args.dim} h={args.expert_dim} layers={args.layers} "
          f"batch {args.batch} x {args.seq}")
    print("| target | torchtune tokens/s | transformers eager (loop) | transformers grouped_mm | "
          "speed-up vs loop | vs grouped_mm |")
    print("| --- | --- | --- | --- | --- | --- |")
    for target, sides in _sides(args).items():
        if target not in args.targets:
            continue
        inputs = hidden.to(dtype) if target == "layer" else tokens
        times = {name: [] for name in sides}
        for _ in range(args.repeats):  # interleaved, so drift in machine load hits every side
            for name, module in sides.items():
                times[name].append(_time(target, name, module, inputs, labels, args.steps, args.device))
        tps = {name: n_tokens / statistics.median(t) for name, t in times.items()}
        ours = tps["torchtune"]
        print(f"| {target} | {ours:,.0f} | {tps['hf_eager']:,.0f} | {tps['hf_grouped_mm']:,.0f} | "
              f"{ours / tps['hf_eager']:.2f}x | {ours / tps['hf_grouped_mm']:.2f}x |")


if __name__ == "__main__":
    main()
