"""The Phi-4 tokenizer over ``tokenizer.json``."""

from typing import Sequence

from torchtune.data import Message, PromptTemplate
from torchtune.modules.tokenizers import HuggingFaceBaseTokenizer, TurnFormatTokenizer


class Phi4Tokenizer(TurnFormatTokenizer):
    """Phi-4 format: ``<|im_start|>{role}<|im_sep|>{content}<|im_end|>`` with no newlines.

    Args:
        path (str): ``tokenizer.json``.
        max_seq_len (int | None): truncate to this many tokens. Default None.
        prompt_template (PromptTemplate | None): applied before formatting. Default None.
    """

    def __init__(self, path: str, max_seq_len: int | None = None, prompt_template: PromptTemplate | None = None):
        base = HuggingFaceBaseTokenizer(path, eos_token="<|im_end|>")
        super().__init__(base, max_seq_len=max_seq_len, prompt_template=prompt_template)
        self.im_start, self.im_sep, self.im_end = (self.special(t) for t in ("<|im_start|>", "<|im_sep|>", "<|im_end|>"))
        self.stop_tokens = [self.im_end]

    def _turn(self, i: int, m: Message, messages: Sequence[Message], close: bool) -> list[str | int]:
        if m.role not in ("system", "user", "assistant"):
            raise ValueError(f"Phi-4's chat format has no {m.role!r} role (message {i})")
        return [self.im_start, m.role, self.im_sep, m.content] + ([self.im_end] if close else [])

    def _generation_prompt(self) -> list[str | int]:
        return [self.im_start, "assistant", self.im_sep]


def phi4_tokenizer(
    path: str, max_seq_len: int | None = None, prompt_template: PromptTemplate | None = None
) -> Phi4Tokenizer:
    """Build the Phi-4 tokenizer from its ``tokenizer.json``."""
    return Phi4Tokenizer(path, max_seq_len=max_seq_len, prompt_template=prompt_template)
