"""Llama 2 chat tokenizer: SentencePiece with the ``[INST]`` / ``<<SYS>>`` format."""

from typing import Sequence

from torchtune.data import Message, PromptTemplate, validate_messages
from torchtune.modules.tokenizers import ModelTokenizer, SentencePieceBaseTokenizer


class Llama2Tokenizer(ModelTokenizer):
    """Llama 2 chat format, as in the published ``Llama-2-*-chat-hf`` chat template::

        <s>[INST] <<SYS>>\\n{system}\\n<</SYS>>\\n\\n{user} [/INST] {assistant} </s><s>[INST] ...

    Each user turn (with the system prompt folded into the first one) and each assistant turn
    is encoded on its own; splitting at the space before the assistant text reproduces the
    tokens of the whole string because SentencePiece's dummy prefix stands for that space.

    Args:
        path (str): SentencePiece model file.
        max_seq_len (int | None): truncate to this many tokens. Default None.
        prompt_template (PromptTemplate | None): applied before formatting. Default None.
    """

    def __init__(self, path: str, max_seq_len: int | None = None, prompt_template: PromptTemplate | None = None):
        super().__init__(max_seq_len=max_seq_len, prompt_template=prompt_template)
        self.base = SentencePieceBaseTokenizer(path)
        self._copy_base_ids()
        self.stop_tokens = [self.eos_id]

    def _text(self, text: str) -> list[int]:
        return self.base.encode(text, add_bos=False, add_eos=False)

    def _encode_messages(self, messages: Sequence[Message], add_end_tokens: bool) -> tuple[list[int], list[bool]]:
        validate_messages(messages)
        system = messages[0].content if messages[0].role == "system" else None
        tokens: list[int] = []
        mask: list[bool] = []
        for i, m in enumerate(messages):
            if m.role == "system":
                continue
            if m.role == "user":
                content = m.content
                if system is not None:
                    content, system = f"<<SYS>>\n{system}\n<</SYS>>\n\n{content}", None
                ids = [self.bos_id] + self._text(f"[INST] {content.strip()} [/INST]")
            elif m.role == "assistant":
                last = i == len(messages) - 1
                end = m.eot and (add_end_tokens or not last)
                ids = self._text(f"{m.content.strip()} " if end else m.content.strip())
                ids += [self.eos_id] if end else []
            else:
                raise ValueError(f"Llama 2's chat format has no {m.role!r} role (message {i})")
            tokens += ids
            mask += [m.masked] * len(ids)
        return tokens, mask


def llama2_tokenizer(
    path: str, max_seq_len: int | None = None, prompt_template: PromptTemplate | None = None
) -> Llama2Tokenizer:
    """Build the Llama 2 tokenizer from its SentencePiece ``tokenizer.model``."""
    return Llama2Tokenizer(path, max_seq_len=max_seq_len, prompt_template=prompt_template)
