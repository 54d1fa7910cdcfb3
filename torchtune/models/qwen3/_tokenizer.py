"""Qwen 3 tokenizer: ChatML with ``<think>`` reasoning blocks."""

from typing import Sequence

from torchtune.data import Message, PromptTemplate
from torchtune.models.qwen2_5._tokenizer import Qwen2_5Tokenizer


def _is_tool_response(text: str) -> bool:
    return text.startswith("<tool_response>") and text.endswith("</tool_response>")


def split_reasoning(content: str) -> tuple[str, str]:
    """Split ``"<think>\\nR\\n</think>\\n\\nC"`` into ``(R, C)``; ``("", content)`` without one."""
    if "</think>" not in content:
        return "", content
    reasoning = content.split("</think>")[0].rstrip("\n").split("<think>")[-1].lstrip("\n")
    return reasoning, content.split("</think>")[-1].lstrip("\n")


class Qwen3Tokenizer(Qwen2_5Tokenizer):
    """Qwen 3 ChatML format, following the published template's reasoning rules.

    No default system prompt. An assistant turn before the last user query keeps only its
    answer (its ``<think>`` block is dropped); an assistant turn after it keeps its reasoning,
    and the final one always gets a ``<think>\\n...\\n</think>\\n\\n`` block (empty if none).

    Args:
        path (str): ``tokenizer.json``.
        max_seq_len (int | None): truncate to this many tokens. Default None.
        prompt_template (PromptTemplate | None): applied before formatting. Default None.
    """

    def __init__(self, path: str, max_seq_len: int | None = None, prompt_template: PromptTemplate | None = None):
        super().__init__(path, max_seq_len=max_seq_len, prompt_template=prompt_template, default_system_prompt=None)

    def _content(self, i: int, m: Message, messages: Sequence[Message]) -> str:
        if m.role != "assistant":
            return m.content
        last_query = max(
            (j for j, x in enumerate(messages) if x.role == "user" and not _is_tool_response(x.content)),
            default=len(messages) - 1,
        )
        reasoning, answer = split_reasoning(m.content)
        if i > last_query and (i == len(messages) - 1 or reasoning):
            return f"<think>\n{reasoning.strip(chr(10))}\n</think>\n\n{answer.lstrip(chr(10))}"
        return answer


def qwen3_tokenizer(
    path: str, max_seq_len: int | None = None, prompt_template: PromptTemplate | None = None
) -> Qwen3Tokenizer:
    """Build the Qwen 3 tokenizer from its ``tokenizer.json``."""
    return Qwen3Tokenizer(path, max_seq_len=max_seq_len, prompt_template=prompt_template)
