"""tiktoken base tokenizer reading a BPE rank file (Llama 3 format)."""

import base64
from typing import Mapping

import tiktoken


def load_bpe_ranks(path: str) -> dict[bytes, int]:
    """Read a tiktoken rank file: one ``<base64 token> <rank>`` per line.

    Raises:
        ValueError: naming the file and line of a malformed entry.
    """
    ranks: dict[bytes, int] = {}
    with open(path, "rb") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            parts = line.split()
            try:
                if len(parts) != 2:
                    raise ValueError("expected '<base64 token> <rank>'")
                ranks[base64.b64decode(parts[0], validate=True)] = int(parts[1])
            except ValueError as e:
                raise ValueError(f"{path} line {lineno}: malformed BPE rank entry {line[:60]!r}: {e}") from None
    return ranks


class TikTokenBaseTokenizer:
    """Text <-> ids with tiktoken on a BPE rank file plus special tokens.

    Args:
        path (str): the rank file (e.g. Llama 3's ``tokenizer.model``).
        name (str): a name for the encoding.
        pattern (str): the pre-tokenization regex.
        bos_id (int): id of the beginning-of-text token.
        eos_id (int): id of the end-of-text token.
        special_tokens (Mapping[str, int]): special-token string -> id.
    """

    def __init__(
        self, path: str, name: str, pattern: str, bos_id: int, eos_id: int, special_tokens: Mapping[str, int]
    ) -> None:
        self.special_tokens = dict(special_tokens)
        self._enc = tiktoken.Encoding(
            name=name, pat_str=pattern, mergeable_ranks=load_bpe_ranks(path), special_tokens=self.special_tokens
        )
        self.bos_id = bos_id
        self.eos_id = eos_id
        self.pad_id = 0
        self.stop_tokens = [eos_id]
        self.vocab_size: int = self._enc.n_vocab
        self._special_ids = set(self.special_tokens.values())

    def encode(self, text: str, add_bos: bool = True, add_eos: bool = True) -> list[int]:
        """Encode text; special-token strings inside ``text`` are encoded as plain text."""
        ids = self._enc.encode(text, allowed_special=set(), disallowed_special=())
        return ([self.bos_id] if add_bos else []) + ids + ([self.eos_id] if add_eos else [])

    def encode_with_special_tokens(self, text: str) -> list[int]:
        """Encode text, turning special-token strings into their ids."""
        return self._enc.encode(text, allowed_special="all")

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        """Decode ids; special tokens are dropped when ``skip_special_tokens``."""
        if skip_special_tokens:
            ids = [i for i in ids if i not in self._special_ids]
        return self._enc.decode(list(ids))
