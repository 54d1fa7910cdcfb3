"""Messages, role validation, masking strategies, message transforms and prompt templates."""

import pytest

from torchtune.data import (
    AlpacaInstructTemplate,
    AlpacaToMessages,
    ChosenRejectedToMessages,
    InputOutputToMessages,
    Message,
    OpenAIToMessages,
    PromptTemplate,
    ShareGPTToMessages,
    mask_messages,
    validate_messages,
)


def _conv(*roles):
    return [Message(role=r, content=f"{r} {i}") for i, r in enumerate(roles)]


def test_message_rejects_unknown_role_and_non_string_content():
    with pytest.raises(ValueError, match=r"role='bot' is not a known role"):
        Message(role="bot", content="x")
    with pytest.raises(ValueError, match=r"content of a 'user' message must be a str, got int"):
        Message(role="user", content=3)


def test_message_dict_round_trip():
    m = Message(role="assistant", content="hi", masked=True, eot=False)
    assert Message.from_dict(m.to_dict()) == m


@pytest.mark.parametrize(
    "roles, message",
    [
        ((), "at least one message"),
        (("user", "system"), "message 1 has role 'system'; a system message may only be message 0"),
        (("assistant",), "message 0 has role 'assistant' right after the start"),
        (("system", "assistant"), "right after a 'system' message"),
        (("user", "assistant", "assistant"), "message 2 has role 'assistant' right after a 'assistant'"),
        (("user", "user"), "message 1 has role 'user' right after another 'user'"),
    ],
)
def test_validate_messages_errors(roles, message):
    with pytest.raises(ValueError, match=message):
        validate_messages(_conv(*roles))


def test_validate_messages_accepts_tool_turns():
    validate_messages(_conv("system", "user", "assistant", "tool", "assistant", "user", "assistant"))


@pytest.mark.parametrize(
    "strategy, expected",
    [
        ("train_on_all", [False] * 5),
        ("train_on_assistant", [True, True, False, True, False]),
        ("train_on_last", [True, True, True, True, False]),
    ],
)
def test_masking_strategies(strategy, expected):
    messages = _conv("system", "user", "assistant", "user", "assistant")
    mask_messages(messages, strategy)
    assert [m.masked for m in messages] == expected


def test_masking_strategy_unknown():
    with pytest.raises(ValueError, match="masking_strategy='everything' is not supported"):
        mask_messages(_conv("user"), "everything")


def test_input_output_to_messages_with_column_map_and_system():
    t = InputOutputToMessages(column_map={"input": "q", "output": "a"}, new_system_prompt="Be brief.")
    messages = t({"q": "2+2?", "a": "4"})["messages"]
    assert [(m.role, m.content, m.masked) for m in messages] == [
        ("system", "Be brief.", True), ("user", "2+2?", True), ("assistant", "4", False),
    ]
    assert not any(m.masked for m in InputOutputToMessages(train_on_input=True)({"input": "a", "output": "b"})["messages"])


def test_input_output_errors_name_the_field():
    t = InputOutputToMessages()
    with pytest.raises(ValueError, match=r"missing field 'output' \(expected a str\); the row has fields \['input'\]"):
        t({"input": "x"})
    with pytest.raises(ValueError, match=r"field 'output' must be a str, got int"):
        t({"input": "x", "output": 5})
    with pytest.raises(ValueError, match=r"column_map has unknown keys \['prompt'\]"):
        InputOutputToMessages(column_map={"prompt": "p"})


def test_alpaca_to_messages_uses_the_alpaca_prompt():
    m = AlpacaToMessages()({"instruction": "Add.", "input": "2 and 2", "output": "4"})["messages"]
    assert m[0].content == AlpacaInstructTemplate.format("Add.", "2 and 2")
    assert "### Input:\n2 and 2" in m[0].content and m[0].content.endswith("### Response:\n")
    m = AlpacaToMessages()({"instruction": "Say hi.", "input": "", "output": "hi"})["messages"]
    assert "### Input" not in m[0].content and m[1].content == "hi"


def test_sharegpt_to_messages():
    row = {"conversations": [
        {"from": "system", "value": "sys"}, {"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"},
    ]}
    m = ShareGPTToMessages()(row)["messages"]
    assert [(x.role, x.content, x.masked) for x in m] == [
        ("system", "sys", True), ("user", "hi", True), ("assistant", "hello", False),
    ]


@pytest.mark.parametrize(
    "row, message",
    [
        ({"conversations": "hi"}, r"field 'conversations' must be a list, got str"),
        ({"conversations": [{"from": "robot", "value": "x"}]}, r"field 'conversations\[0\].from' is 'robot'"),
        ({"conversations": [{"from": "human", "value": 1}]}, r"field 'conversations\[0\].value' must be a str"),
        ({"conversations": [{"from": "gpt", "value": "x"}]}, r"field 'conversations': message 0 has role 'assistant'"),
    ],
)
def test_sharegpt_errors(row, message):
    with pytest.raises(ValueError, match=message):
        ShareGPTToMessages()(row)


def test_openai_to_messages_train_on_last():
    row = {"dialog": [
        {"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"},
    ]}
    m = OpenAIToMessages(column_map={"messages": "dialog"}, masking_strategy="train_on_last")(row)["messages"]
    assert [x.masked for x in m] == [True, True, True, False]


def test_openai_errors():
    with pytest.raises(ValueError, match=r"field 'messages\[0\].role': role='robot' is not a known role"):
        OpenAIToMessages()({"messages": [{"role": "robot", "content": "x"}]})
    with pytest.raises(ValueError, match=r"field 'messages\[1\]' must be an object"):
        OpenAIToMessages()({"messages": [{"role": "user", "content": "x"}, "oops"]})


def test_chosen_rejected_to_messages():
    prompt = [{"role": "user", "content": "q"}]
    row = {"chosen": prompt + [{"role": "assistant", "content": "good"}],
           "rejected": prompt + [{"role": "assistant", "content": "bad"}]}
    out = ChosenRejectedToMessages()(row)
    assert [m.masked for m in out["chosen"]] == [True, False]
    assert out["rejected"][1].content == "bad"
    with pytest.raises(ValueError, match=r"missing field 'rejected'"):
        ChosenRejectedToMessages()({"chosen": row["chosen"]})


def _roles_contents_masked(messages):
    return [(m.role, m.content, m.masked) for m in messages]


def test_chosen_rejected_prompt_with_string_answers():
    out = ChosenRejectedToMessages()({"prompt": "q", "chosen": "good", "rejected": "bad"})
    assert _roles_contents_masked(out["chosen"]) == [("user", "q", True), ("assistant", "good", False)]
    assert _roles_contents_masked(out["rejected"]) == [("user", "q", True), ("assistant", "bad", False)]


def test_chosen_rejected_ultrafeedback_style_does_not_repeat_the_prompt():
    # UltraFeedback: a prompt string, and chosen/rejected that already start with it
    row = {"prompt": "q", "chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "good"}],
           "rejected": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "bad"}]}
    out = ChosenRejectedToMessages()(row)
    assert _roles_contents_masked(out["chosen"]) == [("user", "q", True), ("assistant", "good", False)]
    # a message-list prompt with answer-only lists (TRL's conversational shape), renamed columns
    row = {"question": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}],
           "win": [{"role": "assistant", "content": "good"}], "lose": [{"role": "assistant", "content": "bad"}]}
    out = ChosenRejectedToMessages({"prompt": "question", "chosen": "win", "rejected": "lose"})(row)
    assert _roles_contents_masked(out["rejected"]) == [("system", "s", True), ("user", "q", True),
                                                       ("assistant", "bad", False)]


def test_chosen_rejected_multi_turn_scores_only_the_last_answer():
    turns = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]
    row = {"chosen": turns + [{"role": "assistant", "content": "good"}],
           "rejected": turns + [{"role": "assistant", "content": "bad"}]}
    out = ChosenRejectedToMessages(new_system_prompt="be kind")(row)
    assert [m.masked for m in out["chosen"]] == [True, True, True, True, False]
    assert out["chosen"][0].role == "system" and out["chosen"][0].content == "be kind"


def test_chosen_rejected_bad_rows_name_the_field():
    with pytest.raises(ValueError, match=r"missing field 'chosen'.*fields \['prompt', 'rejected'\]"):
        ChosenRejectedToMessages()({"prompt": "q", "rejected": "bad"})
    with pytest.raises(ValueError, match=r"field 'chosen' is a string answer but the row has no 'prompt' field"):
        ChosenRejectedToMessages()({"chosen": "good", "rejected": "bad"})
    with pytest.raises(ValueError, match=r"field 'rejected' must end with the assistant's answer, .* 'user'"):
        ChosenRejectedToMessages()({"prompt": "q", "chosen": "good", "rejected": [{"role": "user", "content": "x"}]})
    with pytest.raises(ValueError, match=r"field 'chosen' must be a str or list, got int"):
        ChosenRejectedToMessages()({"prompt": "q", "chosen": 3, "rejected": "bad"})
    with pytest.raises(ValueError, match=r"column_map has unknown keys \['answer'\]"):
        ChosenRejectedToMessages({"answer": "x"})


def test_prompt_template_wraps_by_role():
    t = PromptTemplate({"user": ("Q: ", "\nA:")})
    out = t([Message(role="user", content="why?", masked=True), Message(role="assistant", content="because")])
    assert out[0].content == "Q: why?\nA:" and out[0].masked
    assert out[1].content == "because"
    with pytest.raises(ValueError, match=r"template\['user'\]='x' must be a \(prefix, suffix\) pair"):
        PromptTemplate({"user": "x"})
