"""Rebuild a ``tokenizers.Tokenizer`` from the vocabulary stored in GGUF metadata.

Two GGUF tokenizer models are supported:

- ``tokenizer.ggml.model == "gpt2"``: byte-level BPE from ``tokens`` and ``merges``; the
  text is first split with the regular expressions llama.cpp uses for ``tokenizer.ggml.pre``.
- ``tokenizer.ggml.model == "llama"``: SentencePiece-style BPE from ``tokens`` and ``scores``
  with byte fallback; a merge's rank is the score of the piece it produces (higher first).
  With ``add_space_prefix`` (the default) the dummy-prefix space goes before the text and after
  every control token, as llama.cpp and transformers' GGUF tokenizer do: ``"<s><|user|>\nhi"``
  is ``<s>``, ``<|user|>``, then ``"\u2581\nhi"``. A user-defined token does not start a new
  prefix (SentencePiece's ``user_defined_symbols``). See :func:`space_prefix`.

Token types (``tokenizer.ggml.token_type``) follow llama.cpp: 1 normal, 2 unknown, 3 control,
4 user-defined, 5 unused, 6 byte. Control tokens become special added tokens, user-defined
tokens plain added tokens, so that both are matched whole in text.
"""

import json
import logging
from pathlib import Path
from typing import Any

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers

logger = logging.getLogger(__name__)

NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6

# Well-known pre-tokenizer split expressions, keyed by llama.cpp's tokenizer.ggml.pre names.
_GPT2_SPLIT = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# pre name -> ordered list of split expressions applied one after another
PRE_TOKENIZER_SPLITS: dict[str, list[str]] = {
    **{name: [_GPT2_SPLIT] for name in ("default", "gpt2", "gpt-2", "mpt", "olmo", "jais")},
    **{name: [r"\p{N}", _GPT2_SPLIT] for name in
       ("smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva")},
    **{name: [_LLAMA3_SPLIT] for name in ("llama-bpe", "llama3", "llama-v3", "falcon3", "dbrx", "smaug-bpe")},
    **{name: [_QWEN2_SPLIT] for name in ("qwen2", "deepseek-r1-qwen")},
}
# llama.cpp looks up whole pre-split words in the vocabulary before merging for these
_IGNORE_MERGES = frozenset({"llama-bpe", "llama3", "llama-v3", "falcon3"})


def _byte_level_pre_tokenizer(pre: str) -> pre_tokenizers.PreTokenizer:
    if pre not in PRE_TOKENIZER_SPLITS:
        raise ValueError(
            f"tokenizer.ggml.pre='{pre}' is not supported; supported: "
            f"{', '.join(sorted(PRE_TOKENIZER_SPLITS))}"
        )
    splits = [pre_tokenizers.Split(Regex(p), behavior="isolated") for p in PRE_TOKENIZER_SPLITS[pre]]
    return pre_tokenizers.Sequence([*splits, pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])


def _bpe_tokenizer(tokens: list[str], metadata: dict[str, Any]) -> Tokenizer:
    """Byte-level BPE (``tokenizer.ggml.model == "gpt2"``)."""
    if "tokenizer.ggml.merges" not in metadata:
        raise ValueError("GGUF tokenizer model 'gpt2' needs tokenizer.ggml.merges, which is missing")
    merges = [tuple(m.split(" ", 1)) for m in metadata["tokenizer.ggml.merges"]]
    pre = metadata.get("tokenizer.ggml.pre", "default")
    vocab = {tok: i for i, tok in enumerate(tokens)}
    tokenizer = Tokenizer(models.BPE(vocab, merges, ignore_merges=pre in _IGNORE_MERGES))
    tokenizer.pre_tokenizer = _byte_level_pre_tokenizer(pre)
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def _spm_merges(tokens: list[str], scores: list[float], types: list[int]) -> list[tuple[str, str]]:
    """Merges implied by a SentencePiece BPE vocabulary: every split of a piece into two
    pieces of the vocabulary, ranked by the merged piece's score (higher first)."""
    mergeable = {t: i for i, t in enumerate(tokens) if types[i] in (NORMAL, USER_DEFINED)}
    ranked = []
    for piece, pid in mergeable.items():
        for cut in range(1, len(piece)):
            left, right = piece[:cut], piece[cut:]
            if left in mergeable and right in mergeable:
                ranked.append((-scores[pid], pid, mergeable[left], mergeable[right], left, right))
    ranked.sort()
    return [(left, right) for *_, left, right in ranked]


def space_prefix(metadata: dict[str, Any]) -> bool:
    """Whether each stretch of text that starts the input or follows a control token must be
    encoded with a leading space (SentencePiece's dummy prefix)."""
    return metadata.get("tokenizer.ggml.model") == "llama" and bool(
        metadata.get("tokenizer.ggml.add_space_prefix", True)
    )


def _spm_tokenizer(tokens: list[str], metadata: dict[str, Any], types: list[int]) -> Tokenizer:
    """SentencePiece-style BPE with byte fallback (``tokenizer.ggml.model == "llama"``)."""
    if "tokenizer.ggml.scores" not in metadata:
        raise ValueError("GGUF tokenizer model 'llama' needs tokenizer.ggml.scores, which is missing")
    scores = [float(s) for s in metadata["tokenizer.ggml.scores"]]
    unk_id = metadata.get("tokenizer.ggml.unknown_token_id")
    vocab = {tok: i for i, tok in enumerate(tokens)}
    bpe = models.BPE(
        vocab,
        _spm_merges(tokens, scores, types),
        unk_token=tokens[unk_id] if unk_id is not None else None,
        byte_fallback=True,
        fuse_unk=True,
    )
    tokenizer = Tokenizer(bpe)
    # Spaces become U+2581. The dummy prefix (add_space_prefix) starts the text and follows every
    # control token but not a user-defined one, so the caller adds it (see space_prefix); a
    # Prepend normalizer would also add it after user-defined tokens.
    tokenizer.normalizer = normalizers.Replace(" ", "\u2581")
    strip_prefix = [decoders.Strip(" ", 1, 0)] if space_prefix(metadata) else []
    tokenizer.decoder = decoders.Sequence(
        [decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(), *strip_prefix]
    )
    return tokenizer


def tokenizer_from_gguf_metadata(metadata: dict[str, Any]) -> Tokenizer:
    """Build the ``tokenizers.Tokenizer`` that a GGUF file's vocabulary describes.

    Args:
        metadata (dict[str, Any]): GGUF key -> value; needs ``tokenizer.ggml.model`` and
            ``tokenizer.ggml.tokens`` plus ``merges`` (gpt2) or ``scores`` (llama).

    Returns:
        tokenizers.Tokenizer: encodes text to the file's token ids (no BOS/EOS added). When
        :func:`space_prefix` is True, encode each stretch between control tokens as
        ``" " + stretch`` (``GGUFTokenizer`` does) to get the file's tokenization.

    Raises:
        ValueError: for a missing vocabulary, ``token_type`` or ``scores`` arrays whose length is
            not the number of tokens, an unsupported tokenizer model or pre-tokenizer.
    """
    kind = metadata.get("tokenizer.ggml.model")
    tokens = metadata.get("tokenizer.ggml.tokens")
    if kind is None or tokens is None:
        raise ValueError("GGUF metadata has no tokenizer (tokenizer.ggml.model / tokenizer.ggml.tokens)")
    types = [int(t) for t in metadata.get("tokenizer.ggml.token_type", [NORMAL] * len(tokens))]
    for key, values in (("token_type", types), ("scores", metadata.get("tokenizer.ggml.scores", tokens))):
        if len(values) != len(tokens):
            raise ValueError(
                f"GGUF vocabulary is inconsistent: tokenizer.ggml.{key} has {len(values)} entries but "
                f"tokenizer.ggml.tokens has {len(tokens)}; convert the model again (llama.cpp's "
                "convert_hf_to_gguf.py writes one entry per token)"
            )
    if kind == "gpt2":
        tokenizer = _bpe_tokenizer(tokens, metadata)
    elif kind == "llama":
        tokenizer = _spm_tokenizer(tokens, metadata, types)
    else:
        raise ValueError(f"GGUF tokenizer model '{kind}' is not supported; supported: gpt2, llama")
    added = [
        AddedToken(tok, special=types[i] == CONTROL, normalized=False)
        for i, tok in enumerate(tokens)
        if types[i] in (CONTROL, USER_DEFINED)
    ]
    tokenizer.add_special_tokens([t for t in added if t.special])
    tokenizer.add_tokens([t for t in added if not t.special])
    return tokenizer


def _detect_pre(pre_tokenizer: dict[str, Any] | None) -> str:
    """The llama.cpp ``tokenizer.ggml.pre`` name of a byte-level ``tokenizer.json`` pre-tokenizer."""
    steps = pre_tokenizer.get("pretokenizers", [pre_tokenizer]) if pre_tokenizer else []
    kinds = [s.get("type") for s in steps]
    if kinds == ["ByteLevel"] and steps[0].get("use_regex", True):
        return "gpt2"
    if kinds == ["Digits", "ByteLevel"] and steps[0].get("individual_digits") and steps[1].get("use_regex", True):
        return "smollm"
    if kinds == ["Split", "ByteLevel"] and not steps[1].get("use_regex", True):
        pattern = steps[0].get("pattern", {}).get("Regex")
        for name in ("llama-bpe", "qwen2"):
            if PRE_TOKENIZER_SPLITS[name] == [pattern]:
                return name
    raise ValueError(f"tokenizer.json pre-tokenizer {kinds} has no known llama.cpp tokenizer.ggml.pre name")


def _special_content(value: Any) -> str | None:
    return value.get("content") if isinstance(value, dict) else value


def _json(source: str | Path | dict[str, Any]) -> dict[str, Any]:
    if isinstance(source, dict):
        return source
    with open(source, encoding="utf-8") as f:
        return json.load(f)


def gguf_tokenizer_metadata_from_hf(
    tokenizer_json: str | Path | dict[str, Any],
    tokenizer_config: str | Path | dict[str, Any] | None = None,
) -> dict[str, Any]:
    """GGUF ``tokenizer.*`` metadata for a byte-level BPE Hugging Face tokenizer.

    Args:
        tokenizer_json (str | Path | dict[str, Any]): ``tokenizer.json`` (path or parsed).
        tokenizer_config (str | Path | dict[str, Any] | None): ``tokenizer_config.json`` (path or
            parsed) with special tokens, ``add_bos_token`` and ``chat_template``. Default None.

    Returns:
        dict[str, Any]: ``tokenizer.ggml.*`` keys (model ``gpt2``) and ``tokenizer.chat_template``.

    Raises:
        ValueError: for a tokenizer that is not byte-level BPE, or a pre-tokenizer without a
            llama.cpp name.
    """
    tokenizer_json = _json(tokenizer_json)
    model = tokenizer_json.get("model", {})
    if model.get("type") != "BPE" or model.get("byte_fallback"):
        raise ValueError(
            f"only byte-level BPE tokenizer.json files can be written to GGUF, got model type "
            f"{model.get('type')!r}{' with byte_fallback' if model.get('byte_fallback') else ''}"
        )
    pre = _detect_pre(tokenizer_json.get("pre_tokenizer"))
    added = {t["id"]: t for t in tokenizer_json.get("added_tokens", [])}
    vocab = {**model["vocab"], **{t["content"]: i for i, t in added.items()}}
    tokens = [f"[PAD{i}]" for i in range(max(vocab.values()) + 1)]
    types = [UNUSED] * len(tokens)
    for tok, i in vocab.items():
        tokens[i] = tok
        types[i] = (CONTROL if added[i]["special"] else USER_DEFINED) if i in added else NORMAL
    metadata: dict[str, Any] = {
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": pre,
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.token_type": types,
        "tokenizer.ggml.merges": [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])],
    }
    config = _json(tokenizer_config) if tokenizer_config is not None else {}
    for key, gguf_key in (("bos_token", "bos"), ("eos_token", "eos"), ("unk_token", "unknown"), ("pad_token", "padding")):
        token = _special_content(config.get(key))
        if token is not None and token in vocab:
            metadata[f"tokenizer.ggml.{gguf_key}_token_id"] = vocab[token]
    metadata["tokenizer.ggml.add_bos_token"] = bool(config.get("add_bos_token", False))
    template = config.get("chat_template")
    if isinstance(template, list):  # [{"name": "default", "template": ...}, ...]
        template = next((t["template"] for t in template if t.get("name") == "default"), None)
    if isinstance(template, str):
        metadata["tokenizer.chat_template"] = template
    return metadata
