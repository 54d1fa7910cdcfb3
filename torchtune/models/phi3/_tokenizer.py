"""The Phi-3 tokenizer over ``tokenizer.json``."""

from typing import Sequence

from torchtune.data import Message, PromptTemplate
from torchtune.modules.tokenizers import HuggingFaceBaseTokenizer, TurnFormatTokenizer


class Phi3Tokenizer(TurnFormatTokenizer):
    """Phi-3 (mini/medium instruct) format::

        <|system|>\\n{system}<|end|>\\n<|user|>\\n{user}<|end|>\\n<|assistant|>\\n{answer}<|end|>\\n<|endoftext|>

    The closing ``<|endoftext|>`` is added when ``add_end_tokens`` (the template adds it when no
    generation prompt is requested).

    Args:
        path (str): ``tokenizer.json``.
        max_seq_len (int | None): truncate to this many tokens. Default None.
        prompt_template (PromptTemplate | None): applied before formatting. Default None.
    """

    def __init__(self, path: str, max_seq_len: int | None = None, prompt_template: PromptTemplate | None = None):
        base = HuggingFaceBaseTokenizer(path, bos_token="<s>", eos_token="<|endoftext|>")
        super().__init__(base, max_seq_len=max_seq_len, prompt_template=prompt_template)
        self.end_id = self.special("<|end|>")
        self.role_ids = {r: self.special(f"<|{r}|>") for r in ("system", "user", "assistant")}
        self.stop_tokens = [self.eos_id, self.end_id]

    def _turn(self, i: int, m: Message, messages: Sequence[Message], close: bool) -> list[str | int]:
        if m.role not in self.role_ids:
            raise ValueError(f"Phi-3's chat format has no {m.role!r} role (message {i})")
        return [self.role_ids[m.role], "\n" + m.content] + ([self.end_id, "\n"] if close else [])

    def _generation_prompt(self) -> list[str | int]:
        return [self.role_ids["assistant"], "\n"]

    def _suffix(self) -> list[str | int]:
        return [self.eos_id]


def phi3_tokenizer(
    path: str, max_seq_len: int | None = None, prompt_template: PromptTemplate | None = None
) -> Phi3Tokenizer:
    """Build the Phi-3 tokenizer from its ``tokenizer.json``."""
    return Phi3Tokenizer(path, max_seq_len=max_seq_len, prompt_template=prompt_template)
