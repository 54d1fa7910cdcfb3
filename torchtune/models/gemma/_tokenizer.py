"""Gemma (and Gemma 2) chat tokenizer: SentencePiece with ``<start_of_turn>`` turns."""

from typing import Sequence

from torchtune.data import Message, PromptTemplate, validate_messages
from torchtune.modules.tokenizers import ModelTokenizer, SentencePieceBaseTokenizer, encode_parts


class GemmaTokenizer(ModelTokenizer):
    """Gemma instruction format (``gemma-7b-it`` / ``gemma-2-*-it`` chat template)::

        <bos><start_of_turn>user\\n{user}<end_of_turn>\\n<start_of_turn>model\\n{assistant}<end_of_turn>\\n

    Gemma has no system role: a system message is prepended to the first user turn, separated
    by a blank line. Content is stripped, as the published template does.

    Args:
        path (str): SentencePiece model file (it must hold ``<start_of_turn>`` and
            ``<end_of_turn>`` pieces).
        max_seq_len (int | None): truncate to this many tokens. Default None.
        prompt_template (PromptTemplate | None): applied before formatting. Default None.

    Raises:
        ValueError: if the model lacks the turn pieces.
    """

    def __init__(self, path: str, max_seq_len: int | None = None, prompt_template: PromptTemplate | None = None):
        super().__init__(max_seq_len=max_seq_len, prompt_template=prompt_template)
        self.base = SentencePieceBaseTokenizer(path)
        self._copy_base_ids()
        unk = self.base.token_to_id("<unk>")
        self.start_of_turn_id = self.base.token_to_id("<start_of_turn>")
        self.end_of_turn_id = self.base.token_to_id("<end_of_turn>")
        if unk in (self.start_of_turn_id, self.end_of_turn_id):
            raise ValueError(f"{path} has no '<start_of_turn>'/'<end_of_turn>' pieces; is it a Gemma tokenizer?")
        self.stop_tokens = [self.eos_id, self.end_of_turn_id]

    def _text(self, text: str) -> list[int]:
        return self.base.encode(text, add_bos=False, add_eos=False)

    def _encode_messages(self, messages: Sequence[Message], add_end_tokens: bool) -> tuple[list[int], list[bool]]:
        validate_messages(messages)
        system = messages[0].content if messages[0].role == "system" else None
        tokens: list[int] = [self.bos_id]
        mask: list[bool] = [True]
        for i, m in enumerate(messages):
            if m.role == "system":
                continue
            if m.role not in ("user", "assistant"):
                raise ValueError(f"Gemma's chat format has no {m.role!r} role (message {i})")
            content = m.content
            if m.role == "user" and system is not None:
                content, system = f"{system}\n\n{content}", None
            role = "model" if m.role == "assistant" else "user"
            parts: list[str | int] = [self.start_of_turn_id, f"{role}\n{content.strip()}"]
            if m.eot and (add_end_tokens or i < len(messages) - 1 or m.role != "assistant"):
                parts += [self.end_of_turn_id, "\n"]
            ids = encode_parts(parts, self._text)
            tokens += ids
            mask += [m.masked] * len(ids)
        if not add_end_tokens and messages[-1].role != "assistant":
            ids = encode_parts([self.start_of_turn_id, "model\n"], self._text)
            tokens += ids
            mask += [True] * len(ids)
        return tokens, mask


def gemma_tokenizer(
    path: str, max_seq_len: int | None = None, prompt_template: PromptTemplate | None = None
) -> GemmaTokenizer:
    """Build the Gemma / Gemma 2 tokenizer from its SentencePiece ``tokenizer.model``."""
    return GemmaTokenizer(path, max_seq_len=max_seq_len, prompt_template=prompt_template)
