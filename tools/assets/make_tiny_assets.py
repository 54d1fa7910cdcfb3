"""Make the tiny model, tokenizer and instruction data shipped in ``recipes/assets/tiny``.

Everything is generated here, deterministically (fixed seeds, sorted JSON), so running the
script twice gives byte-identical files::

    python tools/assets/make_tiny_assets.py            # writes recipes/assets/tiny/
    python tools/assets/make_tiny_assets.py --out DIR  # somewhere else

Outputs:
    instructions.jsonl      training records ``{"instruction", "input", "output"}`` (Alpaca style)
    instructions_val.jsonl  held-out records of the same tasks
    preferences.jsonl       preference pairs ``{"prompt", "chosen", "rejected"}`` of the same tasks
    preferences_val.jsonl   held-out pairs
    prompts.jsonl           prompts with numeric reference answers ``{"prompt", "answer"}`` (GRPO)
    tokenizer.json          a byte-level BPE trained on the records with the ``tokenizers`` library
    tokenizer_config.json   ChatML chat template and special tokens
    config.json             a 4-layer Llama-architecture model in Hugging Face format
    generation_config.json  EOS / PAD ids
    model.safetensors       seeded random weights (bf16, Hugging Face parameter names)
    README.md               what these files are and their licence
"""

import argparse
import json
import random
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

try:
    from torchtune.data import AlpacaInstructTemplate
except ModuleNotFoundError:  # run from a source checkout: python tools/assets/make_tiny_assets.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from torchtune.data import AlpacaInstructTemplate

DEFAULT_OUT = Path(__file__).resolve().parents[2] / "recipes" / "assets" / "tiny"
NUM_TRAIN, NUM_VAL = 400, 40
NUM_PREF_TRAIN = 200  # pairs made from the first training records; the held-out pairs use every val record
NUM_PROMPTS = 200  # GRPO prompts, from the tasks whose answer is a number
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
MODEL = {
    "vocab_size": 2048,
    "hidden_size": 128,
    "intermediate_size": 384,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 512,
}
WORDS = (
    "apple river stone cloud tiger garden window candle silver forest paper music orange "
    "bridge planet yellow rabbit summer winter basket pencil mirror rocket castle violin "
    "ocean thunder meadow lantern pepper jacket island dragon marble feather cotton honey "
    "camera butter copper wizard puzzle saddle turtle spider falcon walnut cherry lemon "
    "button ladder pillow hammer bottle carpet circle desert engine finger"
).split()


def _task(rng: random.Random) -> dict[str, str]:
    """One random instruction record from a handful of simple tasks."""
    kind = rng.randrange(7)
    if kind == 0:
        a, b = rng.randint(0, 99), rng.randint(0, 99)
        return {"instruction": "Add the two numbers.", "input": f"{a} + {b}", "output": str(a + b)}
    if kind == 1:
        word = rng.choice(WORDS)
        return {"instruction": "Reverse the letters of the word.", "input": word, "output": word[::-1]}
    if kind == 2:
        words = rng.sample(WORDS, rng.randint(1, 3))
        text = " ".join(words)
        return {"instruction": "Write the text in capital letters.", "input": text, "output": text.upper()}
    if kind == 3:
        words = [rng.choice(WORDS) for _ in range(rng.randint(2, 8))]
        return {"instruction": "How many words are in the text?", "input": " ".join(words), "output": str(len(words))}
    if kind == 4:
        nums = [rng.randint(0, 50) for _ in range(rng.randint(3, 6))]
        return {
            "instruction": "Sort the numbers from smallest to largest.",
            "input": ", ".join(map(str, nums)),
            "output": ", ".join(map(str, sorted(nums))),
        }
    if kind == 5:
        n = rng.randint(0, 98)
        return {"instruction": f"What number comes after {n}?", "input": "", "output": str(n + 1)}
    word = rng.choice(WORDS)
    return {"instruction": "What is the first letter of the word?", "input": word, "output": word[0]}


def make_records(seed: int, count: int) -> list[dict[str, str]]:
    """``count`` instruction records drawn with ``random.Random(seed)``."""
    rng = random.Random(seed)
    return [_task(rng) for _ in range(count)]


def _wrong_answer(record: dict[str, str], rng: random.Random) -> str:
    """A plausible but wrong answer to a record: a near-miss number, or the input left as it was."""
    out, given = record["output"], record["input"]
    if out.lstrip("-").isdigit() and "," not in out:
        return str(int(out) + rng.choice([-2, -1, 1, 2, 10]))
    if record["instruction"].startswith("What is the first letter"):
        return given[-1] if given[-1] != out else given[1]
    if given and given != out:
        return given  # not reversed / not capitalised / not sorted
    return out[::-1] + out[::-1] if out[::-1] != out else out + out


def make_preferences(records: list[dict[str, str]], seed: int) -> list[dict[str, str]]:
    """Preference pairs ``{"prompt", "chosen", "rejected"}``: the Alpaca prompt of each record,
    its right answer as chosen and a wrong one (drawn with ``random.Random(seed)``) as rejected."""
    rng = random.Random(seed)
    return [
        {"prompt": AlpacaInstructTemplate.format(r["instruction"], r["input"]), "chosen": r["output"],
         "rejected": _wrong_answer(r, rng)}
        for r in records
    ]


def make_prompts(seed: int, count: int) -> list[dict[str, str]]:
    """``count`` prompts ``{"prompt", "answer"}`` of the tasks whose answer is a number (adding,
    counting words, the next number), drawn with ``random.Random(seed)``: a verifiable toy task."""
    rng = random.Random(seed)
    prompts: list[dict[str, str]] = []
    while len(prompts) < count:
        r = _task(rng)
        if r["output"].isdigit():
            text = f"{r['instruction']}\n{r['input']}" if r["input"] else r["instruction"]
            prompts.append({"prompt": f"{text}\nAnswer with a number.", "answer": r["output"]})
    return prompts


def _chatml(record: dict[str, str]) -> str:
    """A record as the recipes see it: the Alpaca prompt (``alpaca_dataset``) in ChatML."""
    user = AlpacaInstructTemplate.format(record["instruction"], record["input"])
    return f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n{record['output']}<|im_end|>\n"


def make_tokenizer(texts: list[str], vocab_size: int) -> Tokenizer:
    """Train a byte-level BPE (special tokens first, ids 0..2) on ``texts``."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def make_weights(seed: int) -> dict[str, torch.Tensor]:
    """Random Llama weights with Hugging Face names: normal(0, 0.02) matrices, unit norms."""
    gen = torch.Generator().manual_seed(seed)
    d, f, v = MODEL["hidden_size"], MODEL["intermediate_size"], MODEL["vocab_size"]
    h_d = d // MODEL["num_attention_heads"]
    kv = MODEL["num_key_value_heads"] * h_d

    def normal(*shape: int) -> torch.Tensor:
        return (torch.randn(*shape, generator=gen) * 0.02).to(torch.bfloat16)

    weights = {"model.embed_tokens.weight": normal(v, d)}
    for i in range(MODEL["num_hidden_layers"]):
        p = f"model.layers.{i}."
        weights[p + "input_layernorm.weight"] = torch.ones(d, dtype=torch.bfloat16)
        weights[p + "self_attn.q_proj.weight"] = normal(d, d)
        weights[p + "self_attn.k_proj.weight"] = normal(kv, d)
        weights[p + "self_attn.v_proj.weight"] = normal(kv, d)
        weights[p + "self_attn.o_proj.weight"] = normal(d, d)
        weights[p + "post_attention_layernorm.weight"] = torch.ones(d, dtype=torch.bfloat16)
        weights[p + "mlp.gate_proj.weight"] = normal(f, d)
        weights[p + "mlp.up_proj.weight"] = normal(f, d)
        weights[p + "mlp.down_proj.weight"] = normal(d, f)
    weights["model.norm.weight"] = torch.ones(d, dtype=torch.bfloat16)
    weights["lm_head.weight"] = normal(v, d)
    return weights


def _write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _write_jsonl(path: Path, records: list[dict[str, str]]) -> None:
    lines = [json.dumps(r, sort_keys=True) for r in records]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


README = """# Tiny assets

Generated by `tools/assets/make_tiny_assets.py` (deterministic; rerun it to reproduce these
files byte for byte). Same licence as the torchtune project; no third-party data or weights.

- `instructions.jsonl` ({num_train} records) and `instructions_val.jsonl` ({num_val} records):
  Alpaca-style `{{"instruction", "input", "output"}}` records of simple generated tasks
  (addition, reversing a word, capital letters, counting words, sorting numbers, next
  number, first letter), so that a tiny model's loss visibly falls within a minute.
- `preferences.jsonl` ({num_pref} pairs) and `preferences_val.jsonl` ({num_val} pairs):
  `{{"prompt", "chosen", "rejected"}}` pairs of the same tasks (the Alpaca prompt, the right
  answer and a near-miss wrong one) for the DPO recipes.
- `prompts.jsonl` ({num_prompts} rows): `{{"prompt", "answer"}}` prompts of the tasks whose answer
  is a number (addition, counting words, next number) for the GRPO recipes.
- `tokenizer.json`: a byte-level BPE ({tok_vocab} tokens) trained on those records (in the
  Alpaca prompt that `alpaca_dataset` uses);
  `tokenizer_config.json` holds a ChatML chat template (`<|im_start|>`, `<|im_end|>`).
- `config.json`, `model.safetensors`, `generation_config.json`: a Hugging Face format
  Llama-architecture model ({layers} layers, dim {dim}, {heads} heads, {kv_heads} KV heads,
  vocab {vocab}, {params:,} parameters) with seeded random bf16 weights. It knows nothing
  until fine-tuned; it exists so that every recipe runs anywhere in seconds.
- `teacher/`: a bigger model with the same vocabulary, fine-tuned on the instructions, the
  teacher of the distillation recipes (made by `tools/assets/make_tiny_teacher.py`, see its README).
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    args = parser.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    train, val = make_records(0, NUM_TRAIN), make_records(1, NUM_VAL)
    _write_jsonl(out / "instructions.jsonl", train)
    _write_jsonl(out / "instructions_val.jsonl", val)
    _write_jsonl(out / "preferences.jsonl", make_preferences(train[:NUM_PREF_TRAIN], 2))
    _write_jsonl(out / "preferences_val.jsonl", make_preferences(val, 3))
    _write_jsonl(out / "prompts.jsonl", make_prompts(4, NUM_PROMPTS))

    tok = make_tokenizer([_chatml(r) for r in train], MODEL["vocab_size"])
    tok.save(str(out / "tokenizer.json"))
    ids = {t: tok.token_to_id(t) for t in SPECIAL_TOKENS}
    _write_json(out / "tokenizer_config.json", {
        "added_tokens_decoder": {
            str(i): {"content": t, "lstrip": False, "normalized": False, "rstrip": False,
                     "single_word": False, "special": True}
            for t, i in ids.items()
        },
        "bos_token": None,
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>",
        "model_max_length": MODEL["max_position_embeddings"],
        "pad_token": "<|endoftext|>",
        "tokenizer_class": "PreTrainedTokenizerFast",
    })
    _write_json(out / "generation_config.json", {
        "eos_token_id": ids["<|im_end|>"], "pad_token_id": ids["<|endoftext|>"],
    })
    _write_json(out / "config.json", {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        **MODEL,
        "hidden_act": "silu",
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
        "attention_bias": False,
        "mlp_bias": False,
        "bos_token_id": None,
        "eos_token_id": ids["<|im_end|>"],
        "pad_token_id": ids["<|endoftext|>"],
        "torch_dtype": "bfloat16",
    })
    weights = make_weights(0)
    save_file(weights, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "README.md").write_text(README.format(
        num_train=NUM_TRAIN, num_val=NUM_VAL, num_pref=NUM_PREF_TRAIN, num_prompts=NUM_PROMPTS, tok_vocab=tok.get_vocab_size(),
        layers=MODEL["num_hidden_layers"], dim=MODEL["hidden_size"],
        heads=MODEL["num_attention_heads"], kv_heads=MODEL["num_key_value_heads"],
        vocab=MODEL["vocab_size"], params=sum(w.numel() for w in weights.values()),
    ), encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
