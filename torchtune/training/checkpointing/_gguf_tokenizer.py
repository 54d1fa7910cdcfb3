"""A model tokenizer built from a GGUF file's vocabulary and chat template."""

import logging
from pathlib import Path
from typing import Any, Mapping, Sequence

from torchtune.training.checkpointing._gguf_vocab import space_prefix, tokenizer_from_gguf_metadata

logger = logging.getLogger(__name__)


def _role_content_masked(message: Any) -> tuple[str, str, bool]:
    """(role, text, masked) of a ``torchtune.data.Message`` or a ``{"role", "content"}`` dict
    (a dict without ``masked`` masks every role but the assistant)."""
    if isinstance(message, Mapping):
        return message["role"], message["content"], bool(message.get("masked", message["role"] != "assistant"))
    content = getattr(message, "text_content", None)
    if content is None:
        content = message.content
        if not isinstance(content, str):
            content = "".join(item["content"] for item in content if item.get("type") == "text")
    return message.role, content, bool(getattr(message, "masked", False))


class GGUFTokenizer:
    """Tokenizer and chat formatting of a GGUF model.

    Text is encoded with the vocabulary stored in the file (see
    :func:`tokenizer_from_gguf_metadata`); conversations are rendered with the file's Jinja chat
    template (``tokenizer.chat_template``) in a sandbox, so :meth:`tokenize_messages` produces
    exactly the tokens of the template's text.

    Args:
        metadata (dict[str, Any]): GGUF key -> value (the ``tokenizer.*`` keys are used).
        max_seq_len (int | None): truncate :meth:`tokenize_messages` output to this many tokens.
            Default None (no truncation).

    Raises:
        ValueError: when the vocabulary cannot be rebuilt (see ``tokenizer_from_gguf_metadata``).
    """

    def __init__(self, metadata: dict[str, Any], max_seq_len: int | None = None) -> None:
        self._tokenizer = tokenizer_from_gguf_metadata(metadata)
        self._prefix = " " if space_prefix(metadata) else ""
        self._tokens: list[str] = list(metadata["tokenizer.ggml.tokens"])
        get = metadata.get
        self.bos_id: int | None = get("tokenizer.ggml.bos_token_id")
        self.eos_id: int | None = get("tokenizer.ggml.eos_token_id")
        self.pad_id: int = get("tokenizer.ggml.padding_token_id", self.eos_id if self.eos_id is not None else 0)
        self.add_bos: bool = bool(get("tokenizer.ggml.add_bos_token", metadata["tokenizer.ggml.model"] == "llama"))
        self.add_eos: bool = bool(get("tokenizer.ggml.add_eos_token", False))
        stops = [self.eos_id, get("tokenizer.ggml.eot_token_id"), get("tokenizer.ggml.eom_token_id")]
        self.stop_tokens: list[int] = sorted({int(t) for t in stops if t is not None})
        self.chat_template: str | None = get("tokenizer.chat_template")
        self.max_seq_len = max_seq_len

    @classmethod
    def from_file(cls, path: str | Path, max_seq_len: int | None = None) -> "GGUFTokenizer":
        """Read the tokenizer of a ``.gguf`` file (tensors are not loaded)."""
        from torchtune.training.checkpointing._gguf_io import open_gguf, read_metadata

        return cls(read_metadata(open_gguf(path)), max_seq_len=max_seq_len)

    @property
    def vocab_size(self) -> int:
        """Number of tokens in the vocabulary."""
        return len(self._tokens)

    def _token_text(self, token_id: int | None) -> str:
        return self._tokens[token_id] if token_id is not None else ""

    def encode(self, text: str, add_bos: bool = True, add_eos: bool = True) -> list[int]:
        """Token ids of ``text``; BOS/EOS are added only where requested and defined.

        Args:
            text (str): the text; special tokens written in it are matched whole.
            add_bos (bool): prepend ``bos_id``. Default True.
            add_eos (bool): append ``eos_id``. Default True.

        Returns:
            list[int]: token ids.
        """
        ids, _ = self._encode_with_offsets(text)
        if add_bos and self.bos_id is not None:
            ids = [self.bos_id] + ids
        if add_eos and self.eos_id is not None:
            ids = ids + [self.eos_id]
        return ids

    def _encode_with_offsets(self, text: str) -> tuple[list[int], list[int]]:
        """Token ids of ``text`` and the character offset in ``text`` where each starts."""
        if not text:
            return [], []
        encoding = self._tokenizer.encode(self._prefix + text, add_special_tokens=False)
        shift = len(self._prefix)
        return list(encoding.ids), [max(start - shift, 0) for start, _ in encoding.offsets]

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        """Text of ``ids``, leaving out control tokens when ``skip_special_tokens``."""
        return self._tokenizer.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def render(self, messages: Sequence[Any], add_generation_prompt: bool = False) -> str:
        """The chat template's text for ``messages``.

        Raises:
            ValueError: when the file has no chat template.
        """
        if self.chat_template is None:
            raise ValueError("this GGUF file has no tokenizer.chat_template to format messages with")
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        def raise_exception(message: str) -> None:
            raise ValueError(f"chat template error: {message}")

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.globals["raise_exception"] = raise_exception
        dicts = [dict(zip(("role", "content"), _role_content_masked(m)[:2])) for m in messages]
        return env.from_string(self.chat_template).render(
            messages=dicts,
            add_generation_prompt=add_generation_prompt,
            bos_token=self._token_text(self.bos_id),
            eos_token=self._token_text(self.eos_id),
        )

    def _segments(self, messages: Sequence[Any], add_generation_prompt: bool) -> tuple[str, list[tuple[int, int, bool]]]:
        """Render the conversation and the character span each message owns.

        Returns:
            tuple: the full text and, per message, (start, end, masked). An assistant message
            with ``masked=False`` owns only its content and what follows it; the header before
            the content is masked.
        """
        spans, previous = [], ""
        for i, message in enumerate(messages):
            role, content, masked = _role_content_masked(message)
            last = i == len(messages) - 1
            text = self.render(messages[: i + 1], add_generation_prompt=add_generation_prompt and last)
            if not text.startswith(previous):
                raise ValueError(
                    "the chat template renders a conversation's prefix differently from the "
                    f"conversation itself (at message {i}), so turns cannot be masked separately"
                )
            start = len(previous)
            if role == "assistant" and not masked and content:
                content_at = text.find(content, start)
                if content_at > start:
                    spans.append((start, content_at, True))
                    start = content_at
            spans.append((start, len(text), masked))
            previous = text
        return previous, spans

    def tokenize_messages(
        self, messages: Sequence[Any], add_end_tokens: bool = True
    ) -> tuple[list[int], list[bool]]:
        """Tokens of the chat template's text and the loss mask.

        Args:
            messages (Sequence[Message | dict]): the conversation; each message's ``masked``
                flag decides whether its tokens are excluded from the loss.
            add_end_tokens (bool): close the conversation with ``eos_id`` (when the template
                did not already end on it). When False and the last message is not from the
                assistant, the template's generation prompt is added instead. Default True.

        Returns:
            tuple[list[int], list[bool]]: token ids and ``mask`` (True = excluded from the loss).

        Raises:
            ValueError: when there is no chat template, or the template is not prefix-stable.
        """
        last_role = _role_content_masked(messages[-1])[0] if messages else None
        gen_prompt = not add_end_tokens and last_role != "assistant"
        text, spans = self._segments(messages, gen_prompt)
        tokens, starts = self._encode_with_offsets(text)
        mask = [next((m for s, e, m in spans if s <= start < e), True) for start in starts]
        last_start = spans[-1][0] if spans else 0
        tail = {t for t, start in zip(tokens, starts) if start >= last_start}
        if self.add_bos and self.bos_id is not None and (not tokens or tokens[0] != self.bos_id):
            tokens, mask = [self.bos_id] + tokens, [True] + mask
        if add_end_tokens and self.eos_id is not None and not tail & set(self.stop_tokens):
            tokens, mask = tokens + [self.eos_id], mask + [mask[-1] if mask else True]
        if self.max_seq_len is not None:
            tokens, mask = tokens[: self.max_seq_len], mask[: self.max_seq_len]
        return tokens, mask

    def __call__(self, sample: dict[str, Any], inference: bool = False) -> dict[str, Any]:
        """Add ``tokens`` and ``mask`` for ``sample["messages"]`` (left in place)."""
        tokens, mask = self.tokenize_messages(sample["messages"], add_end_tokens=not inference)
        sample["tokens"], sample["mask"] = tokens, mask
        return sample
