"""Shared pieces of model tokenizers: special-token splitting, truncation, the base class."""

import re
from typing import Any, Callable, Mapping, Sequence

from torchtune.data import Message, PromptTemplate


def split_special_tokens(text: str, special_tokens: Mapping[str, int]) -> list[str | int]:
    """Split text on special-token strings (longest match first).

    Args:
        text (str): text that may contain special-token strings such as ``"<|eot_id|>"``.
        special_tokens (Mapping[str, int]): special-token string -> id.

    Returns:
        list[str | int]: plain-text chunks (non-empty str) and special-token ids, in order.
    """
    if not special_tokens:
        return [text] if text else []
    names = sorted(special_tokens, key=len, reverse=True)
    pattern = re.compile("(" + "|".join(re.escape(n) for n in names) + ")")
    out: list[str | int] = []
    for i, piece in enumerate(pattern.split(text)):
        if i % 2 == 1:
            out.append(special_tokens[piece])
        elif piece:
            out.append(piece)
    return out


def encode_with_special_tokens(
    text: str, special_tokens: Mapping[str, int], encode_text: Callable[[str], list[int]]
) -> list[int]:
    """Encode text whose special-token strings become their ids and the rest goes to ``encode_text``."""
    ids: list[int] = []
    for piece in split_special_tokens(text, special_tokens):
        if isinstance(piece, int):
            ids.append(piece)
        else:
            ids.extend(encode_text(piece))
    return ids


def encode_parts(parts: Sequence[str | int], encode_text: Callable[[str], list[int]]) -> list[int]:
    """Encode a message laid out as text pieces and special-token ids.

    Adjacent text pieces are joined before encoding, so a piece boundary never changes how
    text between two special tokens is tokenized.

    Args:
        parts (Sequence[str | int]): text pieces and special-token ids in order.
        encode_text (Callable[[str], list[int]]): plain-text encoder (no BOS/EOS).

    Returns:
        list[int]: token ids.
    """
    ids: list[int] = []
    pending = ""
    for part in parts:
        if isinstance(part, str):
            pending += part
            continue
        if pending:
            ids.extend(encode_text(pending))
            pending = ""
        ids.append(part)
    if pending:
        ids.extend(encode_text(pending))
    return ids


def truncate(
    tokens: list[int], mask: list[bool], max_seq_len: int, eos_id: int | None = None
) -> tuple[list[int], list[bool]]:
    """Keep the first ``max_seq_len`` tokens; with ``eos_id`` the last kept token becomes EOS.

    Args:
        tokens (list[int]): token ids.
        mask (list[bool]): loss mask, same length.
        max_seq_len (int): the most tokens to keep.
        eos_id (int | None): if given and tokens were dropped, the final token is set to it.

    Returns:
        tuple[list[int], list[bool]]: the truncated tokens and mask.
    """
    if len(tokens) <= max_seq_len:
        return tokens, mask
    tokens, mask = tokens[:max_seq_len], mask[:max_seq_len]
    if eos_id is not None:
        tokens[-1] = eos_id
    return tokens, mask


class ModelTokenizer:
    """Base class of chat model tokenizers.

    Subclasses implement ``_encode_messages(messages, add_end_tokens)`` returning untruncated
    ``(tokens, mask)``; this class adds the prompt template, truncation and ``__call__``.

    Args:
        max_seq_len (int | None): truncate to this many tokens. Default None (no limit).
        prompt_template (PromptTemplate | None): applied to the messages before formatting.
    """

    def encode(self, text: str, add_bos: bool = True, add_eos: bool = True) -> list[int]:
        """Encode plain text with the underlying base tokenizer ``self.base``."""
        return self.base.encode(text, add_bos=add_bos, add_eos=add_eos)

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        """Decode ids with the underlying base tokenizer ``self.base``."""
        return self.base.decode(ids, skip_special_tokens=skip_special_tokens)

    def _copy_base_ids(self) -> None:
        """Expose the base tokenizer's ids (``bos_id``, ``eos_id``, ``pad_id``, ``vocab_size``)."""
        for name in ("bos_id", "eos_id", "pad_id", "vocab_size"):
            setattr(self, name, getattr(self.base, name))

    eos_id: int
    truncate_with_eos: bool = True

    def __init__(self, max_seq_len: int | None = None, prompt_template: PromptTemplate | None = None) -> None:
        if max_seq_len is not None and max_seq_len <= 0:
            raise ValueError(f"max_seq_len={max_seq_len} must be positive or None")
        self.max_seq_len = max_seq_len
        self.prompt_template = prompt_template

    def _encode_messages(self, messages: Sequence[Message], add_end_tokens: bool) -> tuple[list[int], list[bool]]:
        raise NotImplementedError(f"{type(self).__name__} must implement _encode_messages")

    def _untruncated(self, messages: Sequence[Message], add_end_tokens: bool) -> tuple[list[int], list[bool]]:
        if self.prompt_template is not None:
            messages = self.prompt_template(messages)
        tokens, mask = self._encode_messages(messages, add_end_tokens)
        assert len(tokens) == len(mask), "internal error: tokens and mask lengths differ"
        return tokens, mask

    def tokenize_messages(
        self, messages: Sequence[Message], add_end_tokens: bool = True
    ) -> tuple[list[int], list[bool]]:
        """Tokenize a conversation in the model's chat format.

        Args:
            messages (Sequence[Message]): the conversation.
            add_end_tokens (bool): close the last turn (end-of-turn/EOS tokens). With False and
                a last message from the user, the assistant header is appended instead, ready
                for generation. Default True.

        Returns:
            tuple[list[int], list[bool]]: tokens and mask; ``mask[i]`` is True when token i is
            excluded from the loss (it belongs to a masked message).
        """
        tokens, mask = self._untruncated(messages, add_end_tokens)
        if self.max_seq_len is not None:
            eos = self.eos_id if add_end_tokens and self.truncate_with_eos else None
            tokens, mask = truncate(tokens, mask, self.max_seq_len, eos)
        return tokens, mask

    def __call__(self, sample: dict[str, Any], inference: bool = False) -> dict[str, Any]:
        """Read ``sample["messages"]``; add ``tokens``, ``mask`` and ``truncated`` (bool)."""
        messages = sample.pop("messages")
        tokens, mask = self._untruncated(messages, add_end_tokens=not inference)
        truncated = self.max_seq_len is not None and len(tokens) > self.max_seq_len
        if truncated:
            eos = self.eos_id if not inference and self.truncate_with_eos else None
            tokens, mask = truncate(tokens, mask, self.max_seq_len, eos)
        sample.update(tokens=tokens, mask=mask, truncated=truncated)
        return sample
