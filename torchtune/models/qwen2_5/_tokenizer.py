"""Qwen 2.5 tokenizer: ``tokenizer.json`` with the ChatML format."""

from typing import Sequence

from torchtune.data import Message, PromptTemplate
from torchtune.modules.tokenizers import HuggingFaceBaseTokenizer, TurnFormatTokenizer

QWEN2_5_DEFAULT_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."


class Qwen2_5Tokenizer(TurnFormatTokenizer):
    """Qwen 2.5 ChatML format::

        <|im_start|>system\\n{system}<|im_end|>\\n<|im_start|>user\\n{user}<|im_end|>\\n...

    As in the published template, a conversation without a system message gets the default
    Qwen system prompt (masked), and consecutive tool results are wrapped in one user turn
    ``<tool_response>`` block each.

    Args:
        path (str): ``tokenizer.json``.
        max_seq_len (int | None): truncate to this many tokens. Default None.
        prompt_template (PromptTemplate | None): applied before formatting. Default None.
        default_system_prompt (str | None): the prompt added when there is none; None adds
            nothing. Default the Qwen 2.5 prompt.
    """

    def __init__(
        self,
        path: str,
        max_seq_len: int | None = None,
        prompt_template: PromptTemplate | None = None,
        default_system_prompt: str | None = QWEN2_5_DEFAULT_SYSTEM,
    ) -> None:
        super().__init__(
            HuggingFaceBaseTokenizer(path, eos_token="<|im_end|>", pad_token="<|endoftext|>"),
            max_seq_len=max_seq_len,
            prompt_template=prompt_template,
        )
        self.default_system_prompt = default_system_prompt
        self.im_start, self.im_end = self.special("<|im_start|>"), self.special("<|im_end|>")
        self.endoftext = self.special("<|endoftext|>")
        self.stop_tokens = [self.im_end, self.endoftext]

    def _prepare(self, messages: Sequence[Message]) -> list[Message]:
        messages = list(messages)
        if messages[0].role != "system" and self.default_system_prompt is not None:
            messages.insert(0, Message(role="system", content=self.default_system_prompt, masked=True))
        return messages

    def _content(self, i: int, m: Message, messages: Sequence[Message]) -> str:
        return m.content

    def _turn(self, i: int, m: Message, messages: Sequence[Message], close: bool) -> list[str | int]:
        if m.role in ("tool", "ipython"):
            first = i == 0 or messages[i - 1].role not in ("tool", "ipython")
            last = i == len(messages) - 1 or messages[i + 1].role not in ("tool", "ipython")
            parts: list[str | int] = [self.im_start, "user"] if first else []
            parts.append(f"\n<tool_response>\n{m.content}\n</tool_response>")
            return parts + ([self.im_end, "\n"] if last and close else [])
        parts = [self.im_start, f"{m.role}\n{self._content(i, m, messages)}"]
        return parts + ([self.im_end, "\n"] if close else [])

    def _generation_prompt(self) -> list[str | int]:
        return [self.im_start, "assistant\n"]


def qwen2_5_tokenizer(
    path: str, max_seq_len: int | None = None, prompt_template: PromptTemplate | None = None
) -> Qwen2_5Tokenizer:
    """Build the Qwen 2.5 tokenizer from its ``tokenizer.json``."""
    return Qwen2_5Tokenizer(path, max_seq_len=max_seq_len, prompt_template=prompt_template)
