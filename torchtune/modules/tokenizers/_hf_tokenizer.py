"""Base tokenizer reading a Hugging Face ``tokenizer.json`` through the ``tokenizers`` package."""

import json
from typing import Any

from tokenizers import Tokenizer


def _token_content(value: Any) -> str | None:
    """A special token in tokenizer_config.json is a string or ``{"content": ...}``."""
    if isinstance(value, dict):
        return value.get("content")
    return value


def read_json(path: str, what: str) -> dict[str, Any]:
    """Load a JSON object, with errors naming the file."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: invalid JSON in {what} at line {e.lineno} column {e.colno}: {e.msg}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: {what} must be a JSON object, got {type(data).__name__}")
    return data


class HuggingFaceBaseTokenizer:
    """Text <-> ids with a ``tokenizer.json``.

    BOS/EOS/PAD come from the explicit arguments, else ``tokenizer_config.json``
    (``bos_token``/``eos_token``/``pad_token``), else ``generation_config.json``
    (``bos_token_id``/``eos_token_id``).

    Args:
        tokenizer_json_path (str): path to ``tokenizer.json``.
        tokenizer_config_json_path (str | None): path to ``tokenizer_config.json``.
        generation_config_path (str | None): path to ``generation_config.json``.
        bos_token (str | None): BOS token string, overriding the config.
        eos_token (str | None): EOS token string, overriding the config.
        pad_token (str | None): PAD token string, overriding the config.

    Raises:
        ValueError: if no EOS token can be found or a named token is not in the vocabulary.
    """

    def __init__(
        self,
        tokenizer_json_path: str,
        *,
        tokenizer_config_json_path: str | None = None,
        generation_config_path: str | None = None,
        bos_token: str | None = None,
        eos_token: str | None = None,
        pad_token: str | None = None,
    ) -> None:
        self._tok = Tokenizer.from_file(str(tokenizer_json_path))
        config = read_json(tokenizer_config_json_path, "tokenizer config") if tokenizer_config_json_path else {}
        gen = read_json(generation_config_path, "generation config") if generation_config_path else {}
        self.config = config
        self.bos_id = self._resolve("bos_token", bos_token or _token_content(config.get("bos_token")), gen)
        self.eos_id = self._resolve("eos_token", eos_token or _token_content(config.get("eos_token")), gen)
        if self.eos_id is None:
            raise ValueError(
                f"{tokenizer_json_path}: no EOS token; pass eos_token= or a tokenizer_config.json with 'eos_token'"
            )
        pad = self._resolve("pad_token", pad_token or _token_content(config.get("pad_token")), {})
        self.pad_id: int = pad if pad is not None else 0
        self.stop_tokens: list[int] = [self.eos_id]
        self.vocab_size: int = self._tok.get_vocab_size(with_added_tokens=True)

    def _resolve(self, key: str, token: str | None, gen: dict[str, Any]) -> int | None:
        if token is not None:
            token_id = self._tok.token_to_id(token)
            if token_id is None:
                raise ValueError(f"{key}={token!r} is not in the tokenizer's vocabulary")
            return token_id
        value = gen.get(f"{key}_id")
        return value[0] if isinstance(value, list) else value

    def token_to_id(self, token: str) -> int | None:
        """Return the id of a token string, or None."""
        return self._tok.token_to_id(token)

    def encode(self, text: str, add_bos: bool = True, add_eos: bool = True) -> list[int]:
        """Encode text (added/special tokens written in ``text`` are recognised, as in HF).

        BOS is only added when the tokenizer has one (Qwen has none).
        """
        ids = self._tok.encode(text, add_special_tokens=False).ids
        if add_bos and self.bos_id is not None:
            ids = [self.bos_id] + ids
        if add_eos:
            ids = ids + [self.eos_id]
        return ids

    def encode_with_offsets(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        """Encode text and return each token's ``(start, end)`` character span."""
        enc = self._tok.encode(text, add_special_tokens=False)
        return enc.ids, enc.offsets

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        """Decode ids to text."""
        return self._tok.decode(list(ids), skip_special_tokens=skip_special_tokens)
