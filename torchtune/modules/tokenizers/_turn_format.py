"""Model tokenizers whose turns are laid out around special tokens (Qwen 2.5/3, Phi-3/4)."""

from typing import Sequence

from torchtune.data import Message, PromptTemplate, validate_messages
from torchtune.modules.tokenizers._hf_tokenizer import HuggingFaceBaseTokenizer
from torchtune.modules.tokenizers._utils import ModelTokenizer, encode_parts


class TurnFormatTokenizer(ModelTokenizer):
    """A model tokenizer whose turns are ``header(role) + content + footer`` around special tokens.

    Subclasses define ``_turn(i, message, messages, close)`` returning the message's parts
    (text pieces and special-token ids; ``close`` says whether to end the turn),
    ``_generation_prompt()`` (appended when ``add_end_tokens=False`` and the last message is
    not the assistant's), and optionally ``_prepare(messages)`` and ``_suffix()`` (parts closing
    the conversation, e.g. Phi-3's ``<|endoftext|>``).

    Args:
        base (HuggingFaceBaseTokenizer): the text tokenizer.
        max_seq_len (int | None): truncate to this many tokens. Default None.
        prompt_template (PromptTemplate | None): applied before formatting. Default None.
    """

    def __init__(
        self,
        base: HuggingFaceBaseTokenizer,
        max_seq_len: int | None = None,
        prompt_template: PromptTemplate | None = None,
    ) -> None:
        super().__init__(max_seq_len=max_seq_len, prompt_template=prompt_template)
        self.base = base
        self._copy_base_ids()

    def special(self, token: str) -> int:
        """Id of a special token, with an error naming it when absent."""
        token_id = self.base.token_to_id(token)
        if token_id is None:
            raise ValueError(f"special token {token!r} is not in the tokenizer.json vocabulary")
        return token_id

    def _text(self, text: str) -> list[int]:
        return self.base.encode(text, add_bos=False, add_eos=False)

    def _prepare(self, messages: Sequence[Message]) -> list[Message]:
        return list(messages)

    def _turn(self, i: int, m: Message, messages: Sequence[Message], close: bool) -> list[str | int]:
        raise NotImplementedError

    def _generation_prompt(self) -> list[str | int]:
        raise NotImplementedError

    def _suffix(self) -> list[str | int]:
        return []

    def _encode_messages(self, messages: Sequence[Message], add_end_tokens: bool) -> tuple[list[int], list[bool]]:
        validate_messages(messages)
        messages = self._prepare(messages)
        tokens: list[int] = []
        mask: list[bool] = []
        for i, m in enumerate(messages):
            close = m.eot and (add_end_tokens or i < len(messages) - 1 or m.role != "assistant")
            ids = encode_parts(self._turn(i, m, messages, close), self._text)
            tokens += ids
            mask += [m.masked] * len(ids)
        tail = self._suffix() if add_end_tokens else (
            self._generation_prompt() if messages[-1].role != "assistant" else []
        )
        ids = encode_parts(tail, self._text)
        tokens += ids
        mask += [messages[-1].masked if add_end_tokens else True] * len(ids)
        return tokens, mask
