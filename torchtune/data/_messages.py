"""Chat messages, role validation and loss-masking strategies."""

from dataclasses import dataclass
from typing import Any, Literal, Mapping, Sequence


Role = Literal["system", "user", "assistant", "ipython", "tool"]
ROLES: tuple[str, ...] = ("system", "user", "assistant", "ipython", "tool")
MASKING_STRATEGIES: tuple[str, ...] = ("train_on_all", "train_on_assistant", "train_on_last")


@dataclass
class Message:
    """One turn of a conversation.

    Args:
        role (str): one of ``system | user | assistant | ipython | tool``.
        content (str): the text of the turn.
        masked (bool): True when the turn's tokens are excluded from the loss. Default False.
        eot (bool): True when the turn ends with the end-of-turn token; False for a turn that
            continues (e.g. a tool call awaiting its result). Default True.

    Raises:
        ValueError: if ``role`` is not a known role or ``content`` is not a string.
    """

    role: str
    content: str
    masked: bool = False
    eot: bool = True

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"role={self.role!r} is not a known role; expected one of {list(ROLES)}")
        if not isinstance(self.content, str):
            raise ValueError(
                f"content of a {self.role!r} message must be a str, got {type(self.content).__name__}"
            )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Message":
        """Build a message from ``{"role": ..., "content": ..., "masked"?: ..., "eot"?: ...}``."""
        return cls(
            role=d["role"],
            content=d["content"],
            masked=bool(d.get("masked", False)),
            eot=bool(d.get("eot", True)),
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the message as a plain dict (the form chat templates read)."""
        return {"role": self.role, "content": self.content, "masked": self.masked, "eot": self.eot}


def validate_messages(messages: Sequence[Message]) -> None:
    """Check that a conversation's roles come in a valid order.

    Rules: the conversation is not empty; a system message may only be the first message; the
    first non-system message is from the user; a user message is never directly followed by
    another user message; an assistant message follows a user, ipython or tool message.

    Args:
        messages (Sequence[Message]): the conversation.

    Raises:
        ValueError: naming the index and roles of the first message out of order.
    """
    if len(messages) == 0:
        raise ValueError("a conversation needs at least one message, got none")
    previous: str | None = None
    for i, message in enumerate(messages):
        role = message.role
        if role == "system" and i != 0:
            raise ValueError(
                f"message {i} has role 'system'; a system message may only be message 0"
            )
        if role == "assistant" and previous in (None, "system", "assistant"):
            after = "the start" if previous is None else f"a {previous!r} message"
            raise ValueError(
                f"message {i} has role 'assistant' right after {after}; expected it to follow "
                "a 'user', 'ipython' or 'tool' message"
            )
        if role == "user" and previous == "user":
            raise ValueError(
                f"message {i} has role 'user' right after another 'user' message; expected "
                "roles to alternate user/assistant"
            )
        previous = role


def mask_messages(messages: Sequence[Message], masking_strategy: str) -> None:
    """Set ``Message.masked`` in place according to a masking strategy.

    Args:
        messages (Sequence[Message]): the conversation.
        masking_strategy (str): ``"train_on_all"`` (no message masked),
            ``"train_on_assistant"`` (every non-assistant message masked) or
            ``"train_on_last"`` (everything masked except the last assistant message).

    Raises:
        ValueError: if ``masking_strategy`` is unknown.
    """
    if masking_strategy not in MASKING_STRATEGIES:
        raise ValueError(
            f"masking_strategy={masking_strategy!r} is not supported; expected one of "
            f"{list(MASKING_STRATEGIES)}"
        )
    last_assistant = max((i for i, m in enumerate(messages) if m.role == "assistant"), default=-1)
    for i, message in enumerate(messages):
        if masking_strategy == "train_on_all":
            message.masked = False
        elif masking_strategy == "train_on_assistant":
            message.masked = message.role != "assistant"
        else:
            message.masked = i != last_assistant
