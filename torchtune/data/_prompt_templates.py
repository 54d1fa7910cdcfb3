"""Prompt templates: text wrapped around message content before tokenization."""

from typing import Mapping, Sequence

from torchtune.data._messages import Message


class PromptTemplate:
    """Wrap each message's content in a per-role prefix and suffix.

    Example: ``PromptTemplate({"user": ("Question: ", "\\nAnswer: ")})``.

    Args:
        template (Mapping[str, tuple[str, str]]): role -> (prefix, suffix). Roles not listed
            are left unchanged.

    Raises:
        ValueError: if an entry is not a (prefix, suffix) pair of strings.
    """

    def __init__(self, template: Mapping[str, tuple[str, str]]) -> None:
        for role, pair in template.items():
            if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and all(isinstance(p, str) for p in pair)):
                raise ValueError(f"template[{role!r}]={pair!r} must be a (prefix, suffix) pair of strings")
        self.template = {role: tuple(pair) for role, pair in template.items()}

    def __call__(self, messages: Sequence[Message]) -> list[Message]:
        """Return new messages with the content wrapped; ``masked``/``eot`` are kept."""
        out = []
        for m in messages:
            prefix, suffix = self.template.get(m.role, ("", ""))
            out.append(Message(role=m.role, content=f"{prefix}{m.content}{suffix}", masked=m.masked, eot=m.eot))
        return out


class AlpacaInstructTemplate:
    """The Alpaca instruction prompt (with and without an input field)."""

    WITH_INPUT = (
        "Below is an instruction that describes a task, paired with an input that provides "
        "further context. Write a response that appropriately completes the request.\n\n"
        "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
    )
    WITHOUT_INPUT = (
        "Below is an instruction that describes a task. Write a response that appropriately "
        "completes the request.\n\n### Instruction:\n{instruction}\n\n### Response:\n"
    )

    @classmethod
    def format(cls, instruction: str, input: str = "") -> str:
        """Render the prompt; the input section is left out when ``input`` is empty."""
        if input:
            return cls.WITH_INPUT.format(instruction=instruction, input=input)
        return cls.WITHOUT_INPUT.format(instruction=instruction)


SUMMARIZE_TEMPLATE = PromptTemplate({"user": ("Summarize this dialogue:\n", "\n---\nSummary:\n")})
"""Template used by ``samsum_dataset``: dialogue in, summary out."""
