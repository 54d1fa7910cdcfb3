"""Benchmark LoRA DPO steps on CPU in fp32: tokens/s and peak memory, against torchtune 0.6.1.

Each run (model size x implementation) is its own subprocess so that its peak resident memory is
its own. The shipped tiny preference pairs (``recipes/assets/tiny/preferences.jsonl``) are
tokenized once; every implementation then trains on the very same pairs from the very same
initial weights: ``--warmup`` untimed steps, then ``--steps`` timed ones, each a batch of
``--batch-size`` pairs. A step is what each library's ``lora_dpo_single_device`` recipe does:
the reference forward (adapters off, no gradients), the policy forward, the sigmoid DPO loss
(beta 0.1), backward, AdamW.

- ``ours``: the recipe's path: chosen and rejected sequences end to end in one row
  (``padding_free_collate_dpo``, attention per sequence), ``output_index`` on the answer
  positions with ``output="hidden"`` and :func:`torchtune.modules.sequence_log_probs` (the
  output projection runs on the answer tokens only).
- ``0.6.1``: torchtune 0.6.1's recipe step: its ``padded_collate_dpo`` (2b right-padded rows),
  full logits of every position, ``rlhf.get_batch_log_probs``, ``rlhf.loss.DPOLoss``; run with
  ``--reference-python``, the interpreter of a scratch venv (never a dependency).

Tokens/s counts the real (non-padding) tokens of the chosen and rejected sequences of the timed
steps, median over ``--repeats`` interleaved runs. Each run also reports its per-step losses:
from equal weights on equal pairs both implementations compute the same DPO loss, so they must
agree (a check that the faster path computes the same thing).

    python tools/benchmarks/bench_dpo.py --reference-python /tmp/tt061/bin/python --repeats 3 --write-docs
"""

import argparse
import datetime
import json
import os
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_finetune import LORA, SIZES, machine  # noqa: E402  (the same model shapes and LoRA setup)

ASSETS = ROOT / "recipes" / "assets" / "tiny"
DOCS = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- bench_dpo:start -->", "<!-- bench_dpo:end -->"
BETA, LR = 0.1, 1e-4


def make_pairs(path: Path, batch_size: int, warmup: int, steps: int) -> None:
    """Tokenize the shipped preference pairs as the recipes do and save ``warmup + steps``
    batches of them as plain lists, with labels both shifted (ours) and unshifted (0.6.1's
    convention: ``labels[t]`` is token ``t`` or ignored)."""
    from torchtune.datasets import preference_dataset
    from torchtune.modules.tokenizers import HFModelTokenizer

    tokenizer = HFModelTokenizer(str(ASSETS / "tokenizer.json"), str(ASSETS / "tokenizer_config.json"), max_seq_len=256)
    ds = preference_dataset(tokenizer, source="json", data_files=str(ASSETS / "preferences.jsonl"))
    order = torch.randperm(len(ds), generator=torch.Generator().manual_seed(0)).tolist()
    batches = []
    for b in range(warmup + steps):
        batch = []
        for i in order[b * batch_size : (b + 1) * batch_size]:
            sample = {k: v.tolist() for k, v in ds[i].items()}
            for key in ("chosen", "rejected"):
                sample[f"{key}_unshifted_labels"] = [-100] + sample[f"{key}_labels"][:-1]
            batch.append(sample)
        batches.append(batch)
    timed = batches[warmup:]
    real = sum(len(s[f"{k}_input_ids"]) for batch in timed for s in batch for k in ("chosen", "rejected"))
    torch.save({"pad_id": tokenizer.pad_id, "batches": batches, "warmup": warmup, "timed_real": real}, path)


def build(impl: str, size: str) -> torch.nn.Module:
    """The LoRA model (adapters trainable) of our library or of torchtune 0.6.1."""
    cfg = SIZES[size]
    if impl == "ours":
        from torchtune.models import model_from_hf_config

        model = model_from_hf_config(cfg, **LORA)
    else:
        from torchtune.models.llama3_2 import lora_llama3_2

        model = lora_llama3_2(LORA["lora_attn_modules"], LORA["apply_lora_to_mlp"], vocab_size=cfg["vocab_size"],
                              num_layers=cfg["num_hidden_layers"], num_heads=cfg["num_attention_heads"],
                              num_kv_heads=cfg["num_key_value_heads"], embed_dim=cfg["hidden_size"],
                              max_seq_len=cfg["max_position_embeddings"], intermediate_dim=cfg["intermediate_size"],
                              rope_base=10000, tie_word_embeddings=False, lora_rank=LORA["lora_rank"],
                              lora_alpha=LORA["lora_alpha"])
    from torchtune.modules.peft import get_adapter_params, set_trainable_params  # same names in both

    set_trainable_params(model, get_adapter_params(model))
    return model


def ours_step(model, batch: list[dict]):
    """One DPO loss of our recipe's path (``lora_dpo_single_device.forward_loss``)."""
    from torchtune.data import padding_free_collate_dpo
    from torchtune.modules import DPOLoss, SequenceLogProbs, sequence_log_probs
    from torchtune.modules.peft import disable_adapter

    collated = padding_free_collate_dpo(batch)
    labels = collated["labels"]  # [1, T]
    keep = torch.nonzero(labels[0] != -100).squeeze(1)  # [n]

    def log_probs() -> SequenceLogProbs:
        hidden = model(collated["tokens"], mask=collated["mask"], input_pos=collated["input_pos"], output_index=keep,
                       output="hidden")  # [1, n, d]
        sums, counts = sequence_log_probs(hidden, labels[:, keep], collated["sequence_ids"][:, keep], 2 * len(batch),
                                          project=model.project)
        return SequenceLogProbs.from_sequences(sums, counts)

    with torch.no_grad(), disable_adapter(model):
        reference = log_probs()
    return DPOLoss(beta=BETA)(log_probs(), reference).losses.mean()


def reference_step(model, batch: list[dict], pad_id: int):
    """One DPO loss of torchtune 0.6.1's ``lora_dpo_single_device`` step."""
    from torchtune import rlhf
    from torchtune.data import padded_collate_dpo
    from torchtune.modules.peft import disable_adapter
    from torchtune.rlhf.loss import DPOLoss

    samples = [{"chosen_input_ids": s["chosen_input_ids"], "chosen_labels": s["chosen_unshifted_labels"],
                "rejected_input_ids": s["rejected_input_ids"], "rejected_labels": s["rejected_unshifted_labels"]}
               for s in batch]
    input_ids, labels = padded_collate_dpo(samples, padding_idx=pad_id)  # [2b, s]
    b = input_ids.shape[0] // 2

    def log_probs():
        logits = model(input_ids)  # [2b, s, v]
        lp = rlhf.get_batch_log_probs(logits, labels)
        _ = logits[:b].detach().mean(), logits[b:].detach().mean()  # logged by the recipe
        return lp[:b], lp[b:]

    policy_chosen, policy_rejected = log_probs()
    with torch.no_grad(), disable_adapter(model):
        ref_chosen, ref_rejected = log_probs()
    loss, _, _ = DPOLoss(beta=BETA)(policy_chosen, policy_rejected, ref_chosen, ref_rejected)
    return loss.mean()


def peak_rss_gib() -> float:
    """This process's peak resident memory (``VmHWM``). Not ``getrusage``: on Linux its
    ``ru_maxrss`` carries the parent's peak across fork and exec, so a small case would report
    the benchmark driver's memory."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / 1024**3
    import resource  # not Linux: the best available

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1024**3


def run_case(impl: str, size: str, data_path: Path, weights_path: Path) -> dict:
    """Time DPO steps over the saved batches (after the untimed warmup ones)."""
    data = torch.load(data_path, weights_only=True)
    model = build(impl, size)
    missing, unexpected = model.load_state_dict(torch.load(weights_path, weights_only=True), strict=False)
    if missing or unexpected:
        raise RuntimeError(f"{impl}: the shared initial weights do not fit: missing {missing}, unexpected {unexpected}")
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=LR)
    model.train()
    losses, start = [], None
    for i, batch in enumerate(data["batches"]):
        if i == data["warmup"]:
            start = time.perf_counter()
        loss = ours_step(model, batch) if impl == "ours" else reference_step(model, batch, data["pad_id"])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss))
    elapsed = time.perf_counter() - start
    steps = len(data["batches"]) - data["warmup"]
    return {"impl": impl, "size": size, "params": sum(p.numel() for p in model.parameters()),
            "trainable": sum(p.numel() for p in trainable), "steps": steps, "pairs_per_step": len(data["batches"][0]),
            "tokens_per_second": data["timed_real"] / elapsed, "seconds_per_step": elapsed / steps,
            "peak_rss_gib": peak_rss_gib(), "losses": losses}


def save_initial_weights(size: str, path: Path) -> None:
    """Seeded random weights of the LoRA model (our parameter names are 0.6.1's), adapters as
    initialised (``lora_b`` zero, so the policy starts equal to the reference)."""
    torch.manual_seed(0)
    torch.save(build("ours", size).state_dict(), path)


def write_docs(results: list[dict], header: str, command: str) -> None:
    """Replace this benchmark's section of docs/benchmarks.md (other sections are kept)."""
    rows = "\n".join(
        f"| {'this torchtune' if r['impl'] == 'ours' else 'torchtune 0.6.1'} | {r['size']} | {r['params'] / 1e6:.1f}M "
        f"| {r['trainable'] / 1e6:.2f}M | {r['steps']} x {r['pairs_per_step']} pairs | {r['tokens_per_second']:.0f} "
        f"| {', '.join(f'{t:.0f}' for t in r['tokens_per_second_all'])} | {r['seconds_per_step']:.2f} "
        f"| {r['peak_rss_gib']:.2f} | {', '.join(f'{x:.4f}' for x in r['losses'])} |"
        for r in results
    )
    ref = {r["size"]: r for r in results if r["impl"] == "0.6.1"}
    lines = []
    for r in results:
        other = ref.get(r["size"])
        if r["impl"] != "ours" or other is None:
            continue
        ratio = r["tokens_per_second"] / other["tokens_per_second"]
        same = max(abs(a - b) for a, b in zip(r["losses"], other["losses"]))
        lines.append(f"- {r['size']}: **{ratio:.2f}x** torchtune 0.6.1's tokens/s (target 1.3x: "
                     f"{'met' if ratio >= 1.3 else 'not met'}), peak RSS {r['peak_rss_gib']:.2f} vs "
                     f"{other['peak_rss_gib']:.2f} GiB ({'no more' if r['peak_rss_gib'] <= other['peak_rss_gib'] else 'more'}); "
                     f"losses of every step agree to {same:.1e}")
    section = f"""{START}
## LoRA DPO on CPU, fp32 (`tools/benchmarks/bench_dpo.py`)

{header}

Llama-shaped models with random weights (the shapes of the fine-tuning benchmark above; LoRA
rank 16 on q/k/v/output and the MLP), the same seeded initial weights for both libraries. Data:
the shipped tiny preference pairs (a ~60-token Alpaca prompt, answers of a few tokens). Each step
is one batch of pairs through each library's `lora_dpo_single_device` step: the reference
forward with the adapters off (no gradients), the policy forward, sigmoid DPO (beta 0.1),
backward, AdamW. **this torchtune**: chosen and rejected sequences end to end in one row
(`padding_free_collate_dpo`), the model's last layer and the output projection only at the
answer positions (`output_index`, `output="hidden"`, `sequence_log_probs`). **torchtune
0.6.1**: its `padded_collate_dpo` (right-padded rows), full logits at every position,
`get_batch_log_probs`; installed from PyPI in a scratch venv (never a dependency). Tokens/s counts
the real tokens of the timed steps' chosen and rejected sequences (median of the runs listed,
interleaved); peak memory is the process's peak RSS (`VmHWM`, highest of the runs). The last column is
each step's DPO loss (warmup step first): equal weights and pairs give equal losses.

| library | model | params | trainable | timed steps | tokens/s (median) | runs | s/step | peak RSS (GiB) | losses |
|---|---|---|---|---|---|---|---|---|---|
{rows}

Against the target (1.3x torchtune 0.6.1's tokens/s at no more memory):

{chr(10).join(lines)}

Reproduce (scratch venv: `python -m venv /tmp/tt061`, then
`/tmp/tt061/bin/pip install torch==2.13.0 torchtune==0.6.1 torchao==0.11.0 torchdata==0.11.0`):

```
{command}
```
{END}"""
    text = DOCS.read_text(encoding="utf-8")
    if START in text and END in text:
        text = text[: text.index(START)] + section + text[text.index(END) + len(END) :]
    else:
        marker = "## Data: tokenising and packing"
        text = text.replace(marker, section + "\n\n" + marker, 1) if marker in text else text.rstrip("\n") + "\n\n" + section + "\n"
    DOCS.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["tiny", "100M"], choices=sorted(SIZES))
    parser.add_argument("--batch-size", type=int, default=8, help="pairs per step")
    parser.add_argument("--steps", type=int, default=3, help="timed steps")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps before")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each case; the median tokens/s is reported")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--reference-python", help="interpreter of a torchtune 0.6.1 venv to compare with")
    parser.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--json", type=Path, help="also save the results (and the command) to this file")
    parser.add_argument("--from-json", type=Path, help="run nothing: report the results an earlier --json run saved")
    parser.add_argument("--one", nargs=4, metavar=("IMPL", "SIZE", "DATA", "WEIGHTS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.one:
        impl, size, data, weights = args.one
        print(json.dumps(run_case(impl, size, Path(data), Path(weights))))
        return 0
    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        return report(saved["results"], saved["command"], args.write_docs)
    runs = [("ours", sys.executable, size) for size in args.sizes]
    if args.reference_python:
        runs += [("0.6.1", args.reference_python, size) for size in args.sizes]
    samples: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "pairs.pt"
        make_pairs(data, args.batch_size, args.warmup, args.steps)
        for size in args.sizes:
            save_initial_weights(size, Path(tmp) / f"{size}.pt")
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # each interpreter its own torchtune
        for _ in range(args.repeats):  # interleaved, so that load changes hit every case alike
            for impl, python, size in runs:
                cmd = [python, __file__, "--one", impl, size, str(data), str(Path(tmp) / f"{size}.pt"),
                       "--threads", str(args.threads)]
                out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout
                result = json.loads(out.strip().splitlines()[-1])
                print(f"{impl:>6} {size:>5}: {result['tokens_per_second']:8.1f} tokens/s  peak RSS "
                      f"{result['peak_rss_gib']:.2f} GiB  losses {[round(x, 4) for x in result['losses']]}", flush=True)
                samples.setdefault((impl, size), []).append(result)
    results = []
    for runs_of_case in samples.values():
        ranked = sorted(runs_of_case, key=lambda r: r["tokens_per_second"])
        median = dict(ranked[len(ranked) // 2])
        median["tokens_per_second_all"] = [r["tokens_per_second"] for r in runs_of_case]
        median["peak_rss_gib"] = max(r["peak_rss_gib"] for r in runs_of_case)
        results.append(median)
    command = (f"python tools/benchmarks/bench_dpo.py --sizes {' '.join(args.sizes)} --batch-size {args.batch_size} "
               f"--steps {args.steps} --warmup {args.warmup} --repeats {args.repeats} "
               "--reference-python /tmp/tt061/bin/python --write-docs")
    if args.json:
        args.json.write_text(json.dumps({"results": results, "command": command}, indent=1))
    return report(results, command, args.write_docs)


def report(results: list[dict], command: str, docs: bool) -> int:
    """Print the medians (and write the docs section when ``docs``)."""
    for r in results:
        print(f"{r['impl']:>6} {r['size']:>5}: median {r['tokens_per_second']:.1f} tokens/s, peak RSS "
              f"{r['peak_rss_gib']:.2f} GiB")
    if docs:
        write_docs(results, f"Machine: {machine()}; torch {torch.__version__}; {datetime.date.today().isoformat()}.",
                   command)
        print(f"updated {DOCS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
