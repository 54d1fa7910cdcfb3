"""Builders of tiny tokenizer files for tests (written into a test's tmp_path).

Every builder is deterministic and takes well under a second on one core.
"""

import base64
import collections
import json
import os

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Hello world! How are you today? I am fine, thank you.",
    "Tokenizers split text into pieces; pieces map to ids.",
    "Fine-tuning large language models needs data, patience and tests.",
    "Ünïcödé wörds: café, naïve, façade, Straße, größer.",
    "日本語のテキストと中文文本 mixed with English words.",
    "Emoji too: 🙂 🚀 and symbols like € £ ¥ © ®.",
    "Numbers 0123456789 and code: def f(x): return x * 2",
    "Summarize this dialogue: Alice asks Bob about the weather.",
    "What is the capital of France? Paris is the capital of France.",
    "Write a poem about the sea. The sea is wide and deep and blue.",
    "   leading spaces, trailing spaces   and\ttabs\nand new lines\n",
    "[INST] What is this? [/INST] It is a test. <<SYS>> system prompt <</SYS>>",
    "user: hello there. model: hi! assistant: how can I help? system: be brief.",
]

MIXED_TEXTS = CORPUS + [
    "unseen wörds ünd ∂ifferent çharacters ✓ — “quotes”",
    "",
    " ",
    "a",
    "\n\n\nnewlines\n",
]


def train_sentencepiece(tmp_path, name="sp", vocab_size=520, add_dummy_prefix=True, user_defined_symbols=()):
    """Train a tiny BPE SentencePiece model with byte fallback (Llama/Gemma style).

    Returns:
        str: path of the ``.model`` file.
    """
    import sentencepiece as spm

    corpus = os.path.join(tmp_path, f"{name}_corpus.txt")
    with open(corpus, "w", encoding="utf-8") as f:
        for _ in range(3):
            f.write("\n".join(line.replace("\n", " ") for line in CORPUS) + "\n")
    prefix = os.path.join(tmp_path, name)
    spm.SentencePieceTrainer.train(
        input=corpus,
        model_prefix=prefix,
        vocab_size=vocab_size,
        model_type="bpe",
        byte_fallback=True,
        character_coverage=1.0,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        add_dummy_prefix=add_dummy_prefix,
        split_digits=True,
        user_defined_symbols=list(user_defined_symbols),
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        num_threads=1,
        minloglevel=2,
    )
    return prefix + ".model"


LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def train_byte_bpe_ranks(texts, num_merges=200):
    """Learn byte-level BPE ranks with the plain pair-merging procedure tiktoken assumes.

    Returns:
        dict[bytes, int]: token bytes -> rank (the 256 single bytes first).
    """
    import regex

    words = collections.Counter(
        tuple(bytes([b]) for b in w.encode("utf-8")) for t in texts for w in regex.findall(LLAMA3_PATTERN, t)
    )
    ranks = {bytes([b]): b for b in range(256)}
    for _ in range(num_merges):
        pairs = collections.Counter()
        for word, n in words.items():
            for a, b in zip(word, word[1:]):
                pairs[(a, b)] += n
        if not pairs:
            break
        (a, b), _ = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))
        ranks[a + b] = len(ranks)
        merged = collections.Counter()
        for word, n in words.items():
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and word[i] == a and word[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged[tuple(out)] += n
        words = merged
    return ranks


def write_tiktoken_file(tmp_path, ranks, name="tiktoken.model"):
    """Write ranks in tiktoken's ``<base64> <rank>`` format; returns the path."""
    path = os.path.join(tmp_path, name)
    with open(path, "w") as f:
        for token, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
            f.write(f"{base64.b64encode(token).decode()} {rank}\n")
    return path


def train_byte_level_tokenizer_json(tmp_path, special_tokens=(), vocab_size=400, name="tokenizer.json"):
    """Train a tiny byte-level BPE ``tokenizer.json`` (GPT-2/Qwen style) with added special tokens.

    Returns:
        str: path of the ``tokenizer.json``.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=list(special_tokens),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS * 3, trainer=trainer)
    path = os.path.join(tmp_path, name)
    tok.save(path)
    return path


def write_tokenizer_config(tmp_path, chat_template=None, name="tokenizer_config.json", **tokens):
    """Write a ``tokenizer_config.json`` with the given special tokens and chat template."""
    path = os.path.join(tmp_path, name)
    config = dict(tokens)
    if chat_template is not None:
        config["chat_template"] = chat_template
    with open(path, "w", encoding="utf-8") as f:
        json.dump(config, f, ensure_ascii=False)
    return path


def read_chat_template(name):
    """Read ``tests/assets/chat_templates/<name>.jinja``."""
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "chat_templates", f"{name}.jinja"), encoding="utf-8") as f:
        return f.read()


# Special-token spellings in chat templates: <|...|>, DeepSeek's <｜...｜>, <tag>, [TAG].
CHAT_SPECIAL_TOKEN_RE = (
    r"<\|[^|<>'\"\s]{1,40}\|>|<｜[^｜'\"]{1,40}｜>|<[A-Za-z_/][A-Za-z0-9_/]{1,30}>|\[/?[A-Z_]{3,20}\]"
)


def read_corpus_chat_templates():
    """Read ``tests/assets/chat_templates/corpus/*.jinja`` (real templates; see its README).

    Returns:
        dict[str, str]: file name without ``.jinja`` -> template source.
    """
    folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), "chat_templates", "corpus")
    names = sorted(f for f in os.listdir(folder) if f.endswith(".jinja"))
    out = {}
    for name in names:
        with open(os.path.join(folder, name), encoding="utf-8") as f:
            out[name[: -len(".jinja")]] = f.read()
    return out


def chat_special_tokens(sources):
    """The special-token strings the given chat templates write (sorted, deduplicated)."""
    import re

    pattern = re.compile(CHAT_SPECIAL_TOKEN_RE)
    return sorted({m for source in sources for m in pattern.findall(source)})
