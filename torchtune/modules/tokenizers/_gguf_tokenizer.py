"""A model tokenizer built from a GGUF file's vocabulary and chat template."""

import json
import logging
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

from torchtune.data import Message, PromptTemplate
from torchtune.gguf import space_prefix, tokenizer_from_gguf_metadata
from torchtune.modules.tokenizers._chat_template import ChatTemplate
from torchtune.modules.tokenizers._utils import ModelTokenizer

logger = logging.getLogger(__name__)


def _as_message(message: Message | Mapping[str, Any]) -> Message:
    """A ``Message``; a plain ``{"role", "content"}`` dict without ``masked`` masks every role but
    the assistant."""
    if isinstance(message, Mapping):
        return Message(message["role"], message["content"], masked=bool(message.get("masked", message["role"] != "assistant")))
    return message


class GGUFTokenizer(ModelTokenizer):
    """Tokenizer and chat formatting of a GGUF model.

    Text is encoded with the vocabulary stored in the file (see
    :func:`tokenizer_from_gguf_metadata`). Conversations are rendered with the file's Jinja chat
    template (``tokenizer.chat_template``) in jinja2's sandbox and tokenized in one pass, so
    :meth:`tokenize_messages` gives exactly the tokens of the template's text. Loss masks are
    derived as :class:`ChatTemplate` does (an assistant message trains on its content and
    closing, never on its header; ``{% generation %}`` blocks where the template has them).
    ``chat_template`` is the template's source, ``template`` its :class:`ChatTemplate` (None
    when the file has none).

    Args:
        metadata (dict[str, Any]): GGUF key -> value (the ``tokenizer.*`` keys are used).
        max_seq_len (int | None): truncate tokenized conversations to this many tokens.
            Default None (no truncation).
        prompt_template (PromptTemplate | None): applied to the messages first. Default None.

    Raises:
        ValueError: when the vocabulary cannot be rebuilt (see ``tokenizer_from_gguf_metadata``).
    """

    def __init__(
        self,
        metadata: dict[str, Any],
        max_seq_len: int | None = None,
        prompt_template: PromptTemplate | None = None,
    ) -> None:
        super().__init__(max_seq_len=max_seq_len, prompt_template=prompt_template)
        self._tokenizer = tokenizer_from_gguf_metadata(metadata)
        self._tokens: list[str] = list(metadata["tokenizer.ggml.tokens"])
        self._space_prefix = space_prefix(metadata)
        # control tokens (the special added tokens), longest first, as tokenizers matches them
        added = self._tokenizer.get_added_tokens_decoder().values()
        controls = sorted({t.content for t in added if t.special}, key=len, reverse=True)
        self._controls = re.compile("|".join(map(re.escape, controls))) if controls else None
        self._vocab_model: str = metadata["tokenizer.ggml.model"]
        get = metadata.get
        self.bos_id: int | None = get("tokenizer.ggml.bos_token_id")
        self.eos_id: int | None = get("tokenizer.ggml.eos_token_id")
        self.pad_id: int = get("tokenizer.ggml.padding_token_id", self.eos_id if self.eos_id is not None else 0)
        self.add_bos: bool = bool(get("tokenizer.ggml.add_bos_token", metadata["tokenizer.ggml.model"] == "llama"))
        stops = [self.eos_id, get("tokenizer.ggml.eot_token_id"), get("tokenizer.ggml.eom_token_id")]
        self.stop_tokens: list[int] = sorted({int(t) for t in stops if t is not None})
        self.chat_template: str | None = get("tokenizer.chat_template")
        variables = {
            "bos_token": self._tokens[self.bos_id] if self.bos_id is not None else "",
            "eos_token": self._tokens[self.eos_id] if self.eos_id is not None else "",
            "tools": None,
            "documents": None,
        }
        self.template = ChatTemplate(self.chat_template, variables) if self.chat_template else None

    @classmethod
    def from_file(cls, path: str | Path, **kwargs: Any) -> "GGUFTokenizer":
        """Read the tokenizer of a ``.gguf`` file (tensors are not loaded); ``kwargs`` as ``__init__``."""
        from torchtune.gguf import open_gguf, read_metadata

        return cls(read_metadata(open_gguf(path)), **kwargs)

    def save_hf_files(self, directory: str | Path) -> bool:
        """Write ``tokenizer.json`` and ``tokenizer_config.json`` (chat template, special tokens)
        so that transformers' ``AutoTokenizer`` loads this vocabulary from ``directory``.

        Only byte-level BPE vocabularies (``tokenizer.ggml.model == "gpt2"``) convert; the
        SentencePiece-style ones need llama.cpp's own space handling.

        Args:
            directory (str | Path): an existing directory.

        Returns:
            bool: True when the files were written, False for a vocabulary that does not convert.
        """
        if self._vocab_model != "gpt2":
            return False
        directory = Path(directory)
        self._tokenizer.save(str(directory / "tokenizer.json"))
        special = {name: self._tokens[i] for name, i in
                   (("bos_token", self.bos_id), ("eos_token", self.eos_id), ("pad_token", self.pad_id))
                   if i is not None}
        config = {"tokenizer_class": "PreTrainedTokenizerFast", "add_bos_token": self.add_bos,
                  "chat_template": self.chat_template, **special}
        (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
        return True

    @property
    def vocab_size(self) -> int:
        """Number of tokens in the vocabulary."""
        return len(self._tokens)

    def _encode_with_offsets(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        """Token ids of ``text`` and the ``(start, end)`` character span of each in ``text``."""
        if not self._space_prefix:
            encoding = self._tokenizer.encode(text, add_special_tokens=False)
            return list(encoding.ids), list(encoding.offsets)
        # the dummy-prefix space starts the text and follows every control token
        ids: list[int] = []
        spans: list[tuple[int, int]] = []
        pieces = [(m.start(), m.end()) for m in self._controls.finditer(text)] if self._controls else []
        at = 0
        for start, end in [*pieces, (len(text), len(text))]:
            if start > at:
                encoding = self._tokenizer.encode(" " + text[at:start], add_special_tokens=False)
                ids.extend(encoding.ids)
                spans.extend((at + max(s - 1, 0), at + max(e - 1, 0)) for s, e in encoding.offsets)
            if end > start:
                ids.append(self._tokenizer.token_to_id(text[start:end]))
                spans.append((start, end))
            at = end
        return ids, spans

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

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        """Text of ``ids``, leaving out control tokens when ``skip_special_tokens``."""
        return self._tokenizer.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def render(self, messages: Sequence[Message | Mapping[str, Any]], add_generation_prompt: bool = False) -> str:
        """The chat template's text for ``messages``.

        Raises:
            ValueError: when the file has no chat template.
        """
        if self.template is None:
            raise ValueError("this GGUF file has no tokenizer.chat_template to format messages with")
        dicts = [{"role": m.role, "content": m.content} for m in map(_as_message, messages)]
        return self.template.render(dicts, add_generation_prompt)

    def _encode_messages(
        self, messages: Sequence[Message | Mapping[str, Any]], add_end_tokens: bool
    ) -> tuple[list[int], list[bool]]:
        """Tokens of the template's text and the loss mask (True = excluded from the loss).

        Masks follow :class:`ChatTemplate` (an assistant message trains on its content and
        closing, not on its header). With ``add_end_tokens`` the conversation is closed with
        ``eos_id`` unless its last non-blank token is a stop token; without it, a conversation
        not ending on an assistant message gets the template's generation prompt.

        Raises:
            ValueError: when there is no chat template, or its messages cannot be located.
        """
        if self.template is None:
            raise ValueError("this GGUF file has no tokenizer.chat_template to format messages with")
        messages = [_as_message(m) for m in messages]
        generation_prompt = not add_end_tokens and bool(messages) and messages[-1].role != "assistant"
        seen: list[tuple[str, list[tuple[int, int]]]] = []  # the rendered text and its token spans

        def encode(text: str) -> tuple[list[int], list[tuple[int, int]]]:
            ids, offsets = self._encode_with_offsets(text)
            seen.append((text, offsets))
            return ids, offsets

        tokens, mask = self.template.render_with_mask(messages, generation_prompt, encode)
        text, spans = seen[-1]
        last = next((t for t, (s, e) in zip(reversed(tokens), reversed(spans)) if text[s:e].strip()), None)
        if self.add_bos and self.bos_id is not None and (not tokens or tokens[0] != self.bos_id):
            tokens, mask = [self.bos_id] + tokens, [True] + mask
        if add_end_tokens and self.eos_id is not None and last not in self.stop_tokens:
            tokens, mask = tokens + [self.eos_id], mask + [mask[-1] if mask else True]
        return tokens, mask
