"""Transforms that turn a raw dataset row into a list of ``Message``.

Each transform reads columns through ``column_map`` (our name -> the dataset's column name) and
raises ``ValueError`` naming the missing or mistyped field; the dataset adds the file and row.
"""

from typing import Any, Mapping, Sequence

from torchtune.data._messages import Message, mask_messages, validate_messages
from torchtune.data._prompt_templates import AlpacaInstructTemplate


def _column_map(column_map: Mapping[str, str] | None, expected: Sequence[str]) -> dict[str, str]:
    """Complete a user column map with identity entries, rejecting unknown keys."""
    column_map = dict(column_map or {})
    unknown = sorted(set(column_map) - set(expected))
    if unknown:
        raise ValueError(f"column_map has unknown keys {unknown}; expected keys among {list(expected)}")
    return {name: column_map.get(name, name) for name in expected}


def get_field(sample: Mapping[str, Any], column: str, expected: type | tuple[type, ...] = str) -> Any:
    """Read ``sample[column]`` and check its type.

    Args:
        sample (Mapping[str, Any]): one dataset row.
        column (str): the column to read.
        expected (type | tuple[type, ...]): the allowed type(s). Default ``str``.

    Returns:
        Any: the value.

    Raises:
        ValueError: if the column is missing or holds a value of the wrong type.
    """
    names = expected.__name__ if isinstance(expected, type) else " or ".join(t.__name__ for t in expected)
    if column not in sample:
        raise ValueError(
            f"missing field {column!r} (expected a {names}); the row has fields {sorted(sample)}"
        )
    value = sample[column]
    if not isinstance(value, expected):
        raise ValueError(f"field {column!r} must be a {names}, got {type(value).__name__}: {value!r:.80}")
    return value


def _finish(
    messages: list[Message], system_prompt: str | None, masking_strategy: str, column: str | None = None
) -> list[Message]:
    if system_prompt is not None:
        messages = [m for m in messages if m.role != "system"]
        messages.insert(0, Message(role="system", content=system_prompt))
    try:
        validate_messages(messages)
    except ValueError as e:
        if column is None:
            raise
        raise ValueError(f"field {column!r}: {e}") from None
    mask_messages(messages, masking_strategy)
    return messages


class InputOutputToMessages:
    """Turn a row with an input and an output column into a user/assistant exchange.

    Args:
        train_on_input (bool): compute the loss on the user turn too. Default False.
        column_map (Mapping[str, str] | None): maps ``"input"``/``"output"`` to column names.
        new_system_prompt (str | None): a system message to prepend. Default None.
    """

    def __init__(
        self,
        train_on_input: bool = False,
        column_map: Mapping[str, str] | None = None,
        new_system_prompt: str | None = None,
    ) -> None:
        self._columns = _column_map(column_map, ("input", "output"))
        self._strategy = "train_on_all" if train_on_input else "train_on_assistant"
        self._system = new_system_prompt

    def _user_text(self, sample: Mapping[str, Any]) -> str:
        return get_field(sample, self._columns["input"])

    def __call__(self, sample: Mapping[str, Any]) -> dict[str, Any]:
        """Return ``{"messages": [user, assistant]}`` built from ``sample``."""
        messages = [
            Message(role="user", content=self._user_text(sample)),
            Message(role="assistant", content=get_field(sample, self._columns["output"])),
        ]
        return {"messages": _finish(messages, self._system, self._strategy)}


class AlpacaToMessages(InputOutputToMessages):
    """Alpaca rows (``instruction``, ``input``, ``output``) rendered with the Alpaca prompt.

    Args:
        train_on_input (bool): compute the loss on the prompt too. Default False.
        column_map (Mapping[str, str] | None): maps ``"instruction"``, ``"input"`` and
            ``"output"`` to column names. The input column may be absent or empty.
    """

    def __init__(self, train_on_input: bool = False, column_map: Mapping[str, str] | None = None) -> None:
        self._columns = _column_map(column_map, ("instruction", "input", "output"))
        self._strategy = "train_on_all" if train_on_input else "train_on_assistant"
        self._system = None

    def _user_text(self, sample: Mapping[str, Any]) -> str:
        instruction = get_field(sample, self._columns["instruction"])
        extra = sample.get(self._columns["input"]) or ""
        if not isinstance(extra, str):
            raise ValueError(
                f"field {self._columns['input']!r} must be a str, got {type(extra).__name__}"
            )
        return AlpacaInstructTemplate.format(instruction, extra)


class ShareGPTToMessages:
    """ShareGPT rows: ``conversations: [{"from": "human"|"gpt"|"system", "value": ...}]``.

    Args:
        train_on_input (bool): compute the loss on user/system turns too. Default False.
        column_map (Mapping[str, str] | None): maps ``"conversations"`` to a column name.
        new_system_prompt (str | None): replaces any system turn. Default None.
        masking_strategy (str | None): overrides ``train_on_input``; one of
            ``train_on_all | train_on_assistant | train_on_last``.
    """

    _ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
              "tool": "tool", "ipython": "ipython"}

    def __init__(
        self,
        train_on_input: bool = False,
        column_map: Mapping[str, str] | None = None,
        new_system_prompt: str | None = None,
        masking_strategy: str | None = None,
    ) -> None:
        self._columns = _column_map(column_map, ("conversations",))
        self._strategy = masking_strategy or ("train_on_all" if train_on_input else "train_on_assistant")
        self._system = new_system_prompt

    def __call__(self, sample: Mapping[str, Any]) -> dict[str, Any]:
        """Return ``{"messages": [...]}`` built from the conversation column."""
        turns = get_field(sample, self._columns["conversations"], list)
        messages = []
        for i, turn in enumerate(turns):
            where = f"{self._columns['conversations']}[{i}]"
            if not isinstance(turn, Mapping):
                raise ValueError(f"field {where!r} must be an object with 'from' and 'value', got {turn!r:.80}")
            speaker = get_field(turn, "from")
            if speaker not in self._ROLES:
                raise ValueError(f"field '{where}.from' is {speaker!r}; expected one of {sorted(self._ROLES)}")
            value = turn.get("value")
            if not isinstance(value, str):
                raise ValueError(f"field '{where}.value' must be a str, got {type(value).__name__}")
            messages.append(Message(role=self._ROLES[speaker], content=value))
        return {"messages": _finish(messages, self._system, self._strategy, self._columns["conversations"])}


def _openai_messages(turns: Any, column: str) -> list[Message]:
    if not isinstance(turns, list):
        raise ValueError(f"field {column!r} must be a list of messages, got {type(turns).__name__}")
    messages = []
    for i, turn in enumerate(turns):
        where = f"{column}[{i}]"
        if not isinstance(turn, Mapping):
            raise ValueError(f"field {where!r} must be an object with 'role' and 'content', got {turn!r:.80}")
        role = get_field(turn, "role")
        content = turn.get("content")
        if not isinstance(content, str):
            raise ValueError(f"field '{where}.content' must be a str, got {type(content).__name__}")
        try:
            messages.append(Message(role=role, content=content))
        except ValueError as e:
            raise ValueError(f"field '{where}.role': {e}") from None
    return messages


class OpenAIToMessages:
    """OpenAI-style rows: ``messages: [{"role": ..., "content": ...}]``.

    Args:
        train_on_input (bool): compute the loss on non-assistant turns too. Default False.
        column_map (Mapping[str, str] | None): maps ``"messages"`` to a column name.
        new_system_prompt (str | None): replaces any system turn. Default None.
        masking_strategy (str | None): overrides ``train_on_input``.
    """

    def __init__(
        self,
        train_on_input: bool = False,
        column_map: Mapping[str, str] | None = None,
        new_system_prompt: str | None = None,
        masking_strategy: str | None = None,
    ) -> None:
        self._columns = _column_map(column_map, ("messages",))
        self._strategy = masking_strategy or ("train_on_all" if train_on_input else "train_on_assistant")
        self._system = new_system_prompt

    def __call__(self, sample: Mapping[str, Any]) -> dict[str, Any]:
        """Return ``{"messages": [...]}`` built from the messages column."""
        column = self._columns["messages"]
        messages = _openai_messages(get_field(sample, column, list), column)
        return {"messages": _finish(messages, self._system, self._strategy, column)}


class ChosenRejectedToMessages:
    """Preference rows in the common shapes, turned into a chosen and a rejected conversation.

    Accepted rows (column names through ``column_map``):

    - ``chosen``/``rejected`` full conversations (OpenAI message lists, as in Anthropic HH and
      UltraFeedback-style data), each ending with the assistant answer;
    - a ``prompt`` (a string, or a message list) with ``chosen``/``rejected`` answers (strings,
      or message lists). When an answer list already starts with the prompt's messages (as in
      UltraFeedback, whose ``chosen`` repeats the prompt) the prompt is not added twice.

    Every turn except the final assistant turn is masked in both conversations: only the
    answers are scored.

    Args:
        column_map (Mapping[str, str] | None): maps ``"prompt"``, ``"chosen"`` and
            ``"rejected"`` to column names. Default None (the same names).
        new_system_prompt (str | None): replaces any system turn. Default None.

    Raises:
        ValueError: on unknown ``column_map`` keys; when called, naming the missing or
            mistyped field (a row without ``chosen`` or ``rejected``, a string answer without a
            prompt, a conversation that does not end with an assistant turn).
    """

    def __init__(
        self, column_map: Mapping[str, str] | None = None, new_system_prompt: str | None = None
    ) -> None:
        self._columns = _column_map(column_map, ("prompt", "chosen", "rejected"))
        self._system = new_system_prompt

    def _prompt(self, sample: Mapping[str, Any]) -> list[Message] | None:
        column = self._columns["prompt"]
        if sample.get(column) is None:
            return None
        value = get_field(sample, column, (str, list))
        return [Message(role="user", content=value)] if isinstance(value, str) else _openai_messages(value, column)

    def _conversation(self, sample: Mapping[str, Any], key: str, prompt: list[Message] | None) -> list[Message]:
        column = self._columns[key]
        value = get_field(sample, column, (str, list))
        if isinstance(value, str):
            if prompt is None:
                raise ValueError(
                    f"field {column!r} is a string answer but the row has no {self._columns['prompt']!r} field; "
                    f"give a prompt column (column_map={{'prompt': ...}}) or whole conversations as message lists"
                )
            answer = [Message(role="assistant", content=value)]
        else:
            answer = _openai_messages(value, column)
        if prompt is not None and [(m.role, m.content) for m in answer[: len(prompt)]] != [
            (m.role, m.content) for m in prompt
        ]:
            answer = [Message(role=m.role, content=m.content) for m in prompt] + answer
        if not answer or answer[-1].role != "assistant":
            last = answer[-1].role if answer else "nothing"
            raise ValueError(f"field {column!r} must end with the assistant's answer, but its last message is {last!r}")
        return _finish(answer, self._system, "train_on_last", column)

    def __call__(self, sample: Mapping[str, Any]) -> dict[str, Any]:
        """Return ``{"chosen": [Message, ...], "rejected": [Message, ...]}``."""
        prompt = self._prompt(sample)
        return {key: self._conversation(sample, key, prompt) for key in ("chosen", "rejected")}
