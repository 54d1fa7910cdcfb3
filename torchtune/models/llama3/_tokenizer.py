"""Llama 3 chat tokenizer: tiktoken ranks plus 256 special tokens (Llama 3, 3.1, 3.2, 3.3)."""

from typing import Mapping, Sequence

from torchtune.data import Message, PromptTemplate, validate_messages
from torchtune.modules.tokenizers import ModelTokenizer, TikTokenBaseTokenizer, encode_parts, load_bpe_ranks

LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
"""Pre-tokenization regex of the Llama 3 tokenizer."""

NUM_SPECIAL_TOKENS = 256

_NAMED = [
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|reserved_special_token_0|>",
    "<|reserved_special_token_1|>",
    "<|finetune_right_pad_id|>",
    "<|reserved_special_token_2|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eom_id|>",
    "<|eot_id|>",
    "<|python_tag|>",
]


def llama3_special_tokens(num_base_tokens: int) -> dict[str, int]:
    """Llama 3.1+ special tokens: 11 named ones, then reserved ones up to 256 in all.

    Args:
        num_base_tokens (int): number of BPE ranks (128000 for the published tokenizer); the
            special tokens take the ids that follow.

    Returns:
        dict[str, int]: token string -> id.
    """
    names = _NAMED + [f"<|reserved_special_token_{i}|>" for i in range(3, 3 + NUM_SPECIAL_TOKENS - len(_NAMED))]
    return {name: num_base_tokens + i for i, name in enumerate(names)}


class Llama3Tokenizer(ModelTokenizer):
    """Llama 3 chat format::

        <|begin_of_text|><|start_header_id|>{role}<|end_header_id|>\\n\\n{content}<|eot_id|>...

    Content is stripped (as the published template does); a message with ``eot=False`` ends
    with ``<|eom_id|>`` instead of ``<|eot_id|>``.

    Args:
        path (str): tiktoken rank file (``original/tokenizer.model``).
        special_tokens (Mapping[str, int] | None): overrides the default special tokens.
        max_seq_len (int | None): truncate to this many tokens. Default None.
        prompt_template (PromptTemplate | None): applied before formatting. Default None.
    """

    def __init__(
        self,
        path: str,
        special_tokens: Mapping[str, int] | None = None,
        max_seq_len: int | None = None,
        prompt_template: PromptTemplate | None = None,
    ):
        super().__init__(max_seq_len=max_seq_len, prompt_template=prompt_template)
        if special_tokens is None:
            special_tokens = llama3_special_tokens(len(load_bpe_ranks(path)))
        self.special_tokens = dict(special_tokens)
        sp = self.special_tokens
        self.base = TikTokenBaseTokenizer(
            path, "llama3", LLAMA3_PATTERN, sp["<|begin_of_text|>"], sp["<|end_of_text|>"], sp
        )
        self._copy_base_ids()
        self.pad_id = sp.get("<|finetune_right_pad_id|>", 0)
        self.start_header_id, self.end_header_id = sp["<|start_header_id|>"], sp["<|end_header_id|>"]
        self.eot_id, self.eom_id = sp["<|eot_id|>"], sp["<|eom_id|>"]
        self.stop_tokens = [self.eos_id, self.eom_id, self.eot_id]

    def _text(self, text: str) -> list[int]:
        return self.base.encode(text, add_bos=False, add_eos=False)

    def _encode_messages(self, messages: Sequence[Message], add_end_tokens: bool) -> tuple[list[int], list[bool]]:
        validate_messages(messages)
        tokens: list[int] = [self.bos_id]
        mask: list[bool] = [True]
        for i, m in enumerate(messages):
            parts: list[str | int] = [self.start_header_id, m.role, self.end_header_id, "\n\n" + m.content.strip()]
            if add_end_tokens or i < len(messages) - 1 or m.role != "assistant":
                parts.append(self.eot_id if m.eot else self.eom_id)
            ids = encode_parts(parts, self._text)
            tokens += ids
            mask += [m.masked] * len(ids)
        if not add_end_tokens and messages[-1].role != "assistant":
            ids = encode_parts([self.start_header_id, "assistant", self.end_header_id, "\n\n"], self._text)
            tokens += ids
            mask += [True] * len(ids)
        return tokens, mask


def llama3_tokenizer(
    path: str,
    special_tokens: Mapping[str, int] | None = None,
    max_seq_len: int | None = None,
    prompt_template: PromptTemplate | None = None,
) -> Llama3Tokenizer:
    """Build the Llama 3 tokenizer (also used by Llama 3.1, 3.2 and 3.3)."""
    return Llama3Tokenizer(path, special_tokens=special_tokens, max_seq_len=max_seq_len, prompt_template=prompt_template)
