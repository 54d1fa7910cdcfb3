"""Benchmark: tokenize and pack Alpaca-style samples (samples/s on this machine).

Generates N synthetic Alpaca records deterministically, writes them as JSON lines, trains a
small byte-level BPE tokenizer on them (8k vocab, Qwen 2.5 chat format; optionally the same
ranks through tiktoken in the Llama 3 format), then times

1. ``alpaca_dataset(...)``: read + message transform + chat-format tokenization + labels,
2. ``PackedDataset(...)``: greedy packing into ``max_seq_len`` rows,
3. ``padded_collate_packed`` over the first 256 packs in batches (mask construction included).

Usage::

    python tools/benchmarks/bench_data.py --num-samples 100000 --max-seq-len 2048
"""

import argparse
import base64
import json
import os
import random
import tempfile
import time

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from torchtune.data import PackedDataset, padded_collate_packed
from torchtune.datasets import alpaca_dataset
from torchtune.models.llama3 import llama3_tokenizer
from torchtune.models.qwen2_5 import Qwen2_5Tokenizer

WORDS = (
    "the of and to in is that for it as was with be by on not he this are or his from at which but have an they "
    "you were her she there been one all we their has would when if so no what up out who them some could into "
    "model data train token sequence loss gradient batch learning rate layer attention value key query matrix "
    "café naïve über 東京 数据 🙂 42 3.14 2024 function return print list dict"
).split()


def make_records(n: int, seed: int = 0) -> list[dict[str, str]]:
    """Deterministic Alpaca-style records with varied lengths (about 20-400 words each)."""
    rng = random.Random(seed)

    def text(lo: int, hi: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))

    return [
        {"instruction": text(5, 40), "input": text(0, 60) if rng.random() < 0.4 else "", "output": text(10, 300)}
        for _ in range(n)
    ]


def train_tokenizer(records: list[dict[str, str]], path: str, vocab_size: int = 8000) -> str:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator((r["instruction"] + " " + r["output"] for r in records[:5000]), trainer=trainer)
    tok.save(path)
    return path


def tiktoken_ranks_from(tokenizer_json: str, path: str) -> str:
    """Write the BPE vocabulary (minus special tokens) as a tiktoken rank file, ranks in id order."""
    # ByteLevel maps bytes to printable characters with GPT-2's table; invert it
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    decoder = {chr(c): b for b, c in zip(bs, cs)}
    vocab = json.load(open(tokenizer_json))["model"]["vocab"]
    pieces = sorted((i, t) for t, i in vocab.items())
    with open(path, "w") as f:
        for rank, (_, piece) in enumerate(pieces):
            f.write(f"{base64.b64encode(bytes(decoder[c] for c in piece)).decode()} {rank}\n")
    return path


def bench(name: str, tokenizer, data_path: str, n: int, max_seq_len: int, batch_size: int) -> None:
    t0 = time.perf_counter()
    ds = alpaca_dataset(tokenizer, source="jsonl", data_files=data_path)
    t1 = time.perf_counter()
    packed = PackedDataset(ds, max_seq_len=max_seq_len, padding_idx=tokenizer.pad_id)
    t2 = time.perf_counter()
    num_collated = min(len(packed), 256)
    for i in range(0, num_collated, batch_size):
        padded_collate_packed([packed[j] for j in range(i, min(i + batch_size, num_collated))])
    t3 = time.perf_counter()
    num_tokens = sum(len(ds[i]["tokens"]) for i in range(len(ds)))
    print(f"[{name}] {n} samples, {num_tokens} tokens ({num_tokens / n:.0f}/sample), "
          f"{len(packed)} packs of {max_seq_len}, truncated {ds.num_truncated}")
    print(f"[{name}] tokenize (read+transform+tokenize+labels): {t1 - t0:6.2f} s = {n / (t1 - t0):8.0f} samples/s")
    print(f"[{name}] pack:                                     {t2 - t1:6.2f} s = {n / (t2 - t1):8.0f} samples/s")
    print(f"[{name}] tokenize + pack:                          {t2 - t0:6.2f} s = {n / (t2 - t0):8.0f} samples/s")
    print(f"[{name}] collate (bs={batch_size}, [b, s, s] masks):        "
          f"{(t3 - t2) / num_collated * 1000:6.2f} ms/pack over {num_collated} packs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-samples", type=int, default=100_000)
    parser.add_argument("--max-seq-len", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--tiktoken", action="store_true", help="also run the Llama 3 (tiktoken) format")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        records = make_records(args.num_samples)
        data_path = os.path.join(tmp, "alpaca.jsonl")
        with open(data_path, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        tok_json = train_tokenizer(records, os.path.join(tmp, "tokenizer.json"))
        qwen = Qwen2_5Tokenizer(tok_json, max_seq_len=args.max_seq_len, default_system_prompt=None)
        bench("qwen2.5 / tokenizer.json", qwen, data_path, args.num_samples, args.max_seq_len, args.batch_size)
        if args.tiktoken:
            ranks = tiktoken_ranks_from(tok_json, os.path.join(tmp, "ranks.tiktoken"))
            llama = llama3_tokenizer(ranks, max_seq_len=args.max_seq_len)
            bench("llama3 / tiktoken", llama, data_path, args.num_samples, args.max_seq_len, args.batch_size)


if __name__ == "__main__":
    main()
