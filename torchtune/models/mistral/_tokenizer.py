"""Mistral instruct tokenizer: SentencePiece with the ``[INST]`` format (v1 tokenizer)."""

from typing import Sequence

from torchtune.data import Message, PromptTemplate, validate_messages
from torchtune.modules.tokenizers import ModelTokenizer, SentencePieceBaseTokenizer


class MistralTokenizer(ModelTokenizer):
    """Mistral-7B-Instruct-v0.2 / Mixtral chat format::

        <s>[INST] {user} [/INST]{assistant}</s>[INST] {user} [/INST]{assistant}</s>

    The format has no system role; a system message is prepended to the first user turn,
    separated by a blank line. Assistant text is encoded as a continuation (no dummy-prefix
    space), as it follows ``[/INST]`` directly.

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

    def _encode_messages(self, messages: Sequence[Message], add_end_tokens: bool) -> tuple[list[int], list[bool]]:
        validate_messages(messages)
        system = messages[0].content if messages[0].role == "system" else None
        tokens: list[int] = [self.bos_id]
        mask: list[bool] = [True]
        for i, m in enumerate(messages):
            if m.role == "system":
                continue
            if m.role == "user":
                content = m.content
                if system is not None:
                    content, system = f"{system}\n\n{content}", None
                ids = self.base.encode(f"[INST] {content} [/INST]", add_bos=False, add_eos=False)
            elif m.role == "assistant":
                ids = self.base.encode(m.content, add_bos=False, add_eos=False, trim_leading_whitespace=True)
                if m.eot and (add_end_tokens or i < len(messages) - 1 or m.role != "assistant"):
                    ids.append(self.eos_id)
            else:
                raise ValueError(f"Mistral's chat format has no {m.role!r} role (message {i})")
            tokens += ids
            mask += [m.masked] * len(ids)
        return tokens, mask


def mistral_tokenizer(
    path: str, max_seq_len: int | None = None, prompt_template: PromptTemplate | None = None
) -> MistralTokenizer:
    """Build the Mistral tokenizer from its SentencePiece ``tokenizer.model``."""
    return MistralTokenizer(path, max_seq_len=max_seq_len, prompt_template=prompt_template)
