"""HFModelTokenizer (tokenizer.json + Jinja chat template) vs transformers' apply_chat_template."""

import pytest
from transformers import PreTrainedTokenizerFast

from tests.assets.tiny_tokenizers import (
    read_chat_template,
    read_corpus_chat_templates,
    train_byte_level_tokenizer_json,
    write_tokenizer_config,
)
from torchtune.data import Message, mask_messages
from torchtune.modules.tokenizers import HFModelTokenizer

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|begin_of_text|>", "<|start_header_id|>",
            "<|end_header_id|>", "<|eot_id|>", "<think>", "</think>", "<s>", "<|system|>", "<|user|>",
            "<|assistant|>", "<|end|>", "<SPECIAL_10>", "<SPECIAL_11>", "<SPECIAL_12>"]
CONV = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Bonjour, ça va? 🙂"},
    {"role": "assistant", "content": "Oui, très bien."},
    {"role": "user", "content": "And in Japanese?"},
    {"role": "assistant", "content": "元気です。"},
]
TOKENS = {
    "qwen2_5": {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"},
    "llama3": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
}


@pytest.fixture(scope="module")
def tok_json(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hfmodel")
    return tmp, train_byte_level_tokenizer_json(tmp, SPECIALS)


def _make(tok_json, family, tokens=None, **kwargs):
    tmp, path = tok_json
    tokens = tokens or TOKENS[family]
    config = write_tokenizer_config(tmp, read_chat_template(family), name=f"{family}.json", **tokens)
    ref = PreTrainedTokenizerFast(tokenizer_file=path, **tokens)
    ref.chat_template = read_chat_template(family)
    return HFModelTokenizer(path, config, **kwargs), ref


def _ids(out):
    return list(out["input_ids"]) if not isinstance(out, list) else out


def _messages(strategy="train_on_assistant"):
    return _messages_of(CONV, strategy)


def _messages_of(conversation, strategy="train_on_assistant"):
    messages = [Message(role=d["role"], content=d["content"]) for d in conversation]
    mask_messages(messages, strategy)
    return messages


def _trained_text(tokenizer, tokens, mask):
    return tokenizer.decode([t for t, m in zip(tokens, mask) if not m], skip_special_tokens=False)


@pytest.mark.parametrize("family", ["qwen2_5", "llama3"])
def test_tokens_and_mask_match_apply_chat_template(tok_json, family):
    ours, ref = _make(tok_json, family)
    messages = _messages()
    tokens, mask = ours.tokenize_messages(messages)
    assert tokens == _ids(ref.apply_chat_template(CONV, tokenize=True))
    # each assistant turn trains on its content and end-of-turn tokens, never on its header
    end = {"qwen2_5": "<|im_end|>\n", "llama3": "<|eot_id|>"}[family]
    assert _trained_text(ours, tokens, mask) == f"Oui, très bien.{end}元気です。{end}"
    gen, gen_mask = ours.tokenize_messages(messages[:4], add_end_tokens=False)
    assert gen == _ids(ref.apply_chat_template(CONV[:4], tokenize=True, add_generation_prompt=True))
    assert _trained_text(ours, gen, gen_mask) == f"Oui, très bien.{end}"  # the prompt's tail is masked


def test_llama3_mask_equals_transformers_assistant_mask_of_its_generation_tagged_variant(tok_json):
    """TRL's llama3 training template is Llama 3's with {% generation %} blocks added."""
    ours, ref = _make(tok_json, "llama3")
    ref.chat_template = read_corpus_chat_templates()["trl-llama3_training"]
    out = ref.apply_chat_template(CONV, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    tokens, mask = ours.tokenize_messages(_messages())
    assert tokens == list(out["input_ids"])
    assert [not m for m in mask] == [bool(a) for a in out["assistant_masks"]]


QWEN3_CONV = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
              {"role": "user", "content": "ok?"}, {"role": "assistant", "content": "yes"}]


def test_qwen3_multi_turn(tok_json):
    """Qwen3 renders the last assistant turn with an empty think block and earlier ones without:
    a rendered prefix is not a prefix of the whole (issue 20, item 1)."""
    ours, ref = _make(tok_json, "qwen3", tokens=TOKENS["qwen2_5"])
    messages = _messages_of(QWEN3_CONV)
    tokens, mask = ours.tokenize_messages(messages)
    assert tokens == _ids(ref.apply_chat_template(QWEN3_CONV, tokenize=True))
    assert ours.render(messages).endswith("<|im_start|>assistant\n<think>\n\n</think>\n\nyes<|im_end|>\n")
    assert _trained_text(ours, tokens, mask) == "hello<|im_end|>\n<think>\n\n</think>\n\nyes<|im_end|>\n"
    reasoning = [*QWEN3_CONV[:3], {"role": "assistant", "content": "<think>\nshort\n</think>\n\nyes"}]
    tokens, mask = ours.tokenize_messages(_messages_of(reasoning))
    assert tokens == _ids(ref.apply_chat_template(reasoning, tokenize=True))
    assert _trained_text(ours, tokens, mask) == "hello<|im_end|>\n<think>\nshort\n</think>\n\nyes<|im_end|>\n"


def test_phi3_eos_terminated_template(tok_json):
    """Phi-3 ends with the EOS token unless a generation prompt is asked (issue 16, Phi item 1)."""
    phi = {"bos_token": "<s>", "eos_token": "<|endoftext|>"}
    ours, ref = _make(tok_json, "phi3", tokens=phi)
    messages = _messages()
    tokens, mask = ours.tokenize_messages(messages)
    assert tokens == _ids(ref.apply_chat_template(CONV, tokenize=True))
    assert tokens[-1] == ours.base.token_to_id("<|endoftext|>")
    ref.chat_template = read_corpus_chat_templates()["trl-phi3_training"]
    out = ref.apply_chat_template(CONV, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    assert tokens == list(out["input_ids"])
    assert [not m for m in mask] == [bool(a) for a in out["assistant_masks"]]
    assert _trained_text(ours, tokens, mask) == "Oui, très bien.<|end|>\n元気です。<|end|>\n<|endoftext|>"
    gen, _ = ours.tokenize_messages(messages[:4], add_end_tokens=False)
    assert gen == _ids(ref.apply_chat_template(CONV[:4], tokenize=True, add_generation_prompt=True))


def test_generation_tags_and_train_on_all(tok_json):
    tmp, path = tok_json
    template = (
        "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' }}{% if m['role'] == 'assistant' %}"
        "{% generation %}{{ m['content'] + '<|im_end|>' }}{% endgeneration %}{% else %}"
        "{{ m['content'] + '<|im_end|>' }}{% endif %}{{ '\n' }}{% endfor %}"
    )
    ours = HFModelTokenizer(path, write_tokenizer_config(tmp, template, name="gen.json", eos_token="<|im_end|>"))
    assert ours.template.has_generation_blocks
    ref = PreTrainedTokenizerFast(tokenizer_file=path, eos_token="<|im_end|>")
    ref.chat_template = template
    out = ref.apply_chat_template(CONV, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    tokens, mask = ours.tokenize_messages(_messages())
    assert tokens == list(out["input_ids"])
    assert [not m for m in mask] == [bool(a) for a in out["assistant_masks"]]
    # train_on_all: everything but the assistant headers and the newline the block leaves out
    tokens, mask = ours.tokenize_messages(_messages("train_on_all"))
    masked = ours.decode([t for t, m in zip(tokens, mask) if m], skip_special_tokens=False)
    assert masked == "<|im_start|>assistant\n\n<|im_start|>assistant\n\n"


def test_train_on_last_with_generation_tags(tok_json):
    """Only the last assistant turn's {% generation %} block is trained on."""
    tmp, path = tok_json
    source = read_corpus_chat_templates()["trl-qwen3_training"]
    ours = HFModelTokenizer(path, write_tokenizer_config(tmp, source, name="q3t.json", **TOKENS["qwen2_5"]))
    ref = PreTrainedTokenizerFast(tokenizer_file=path, **TOKENS["qwen2_5"])
    ref.chat_template = source
    out = ref.apply_chat_template(QWEN3_CONV, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    assistant = [bool(a) for a in out["assistant_masks"]]
    last_block = max(i for i, a in enumerate(assistant) if a and (i == 0 or not assistant[i - 1]))
    expected = [a and i >= last_block for i, a in enumerate(assistant)]
    tokens, mask = ours.tokenize_messages(_messages_of(QWEN3_CONV, "train_on_last"))
    assert tokens == list(out["input_ids"])
    assert [not m for m in mask] == expected and any(expected)


def test_train_on_all_masks_only_assistant_headers(tok_json):
    ours, _ = _make(tok_json, "qwen2_5")
    tokens, mask = ours.tokenize_messages(_messages("train_on_all"))
    masked = ours.decode([t for t, m in zip(tokens, mask) if m], skip_special_tokens=False)
    assert masked == "<|im_start|>assistant\n<|im_start|>assistant\n"


def test_system_only_prefix_that_the_template_cannot_render(tok_json):
    """Nemotron Nano v2 fails with UndefinedError on a system-only conversation; the full
    conversation must still tokenize (issue 20, item 3)."""
    tmp, path = tok_json
    source = read_corpus_chat_templates()["NVIDIA-Nemotron-Nano-v2"]
    tokens_cfg = {"eos_token": "<|im_end|>"}
    ours = HFModelTokenizer(path, write_tokenizer_config(tmp, source, name="nemo.json", **tokens_cfg))
    with pytest.raises(Exception):
        ours.render(_messages()[:1])
    ref = PreTrainedTokenizerFast(tokenizer_file=path, **tokens_cfg)
    ref.chat_template = source
    tokens, mask = ours.tokenize_messages(_messages())
    assert tokens == _ids(ref.apply_chat_template(CONV, tokenize=True))
    assert "Oui, très bien." in _trained_text(ours, tokens, mask)


def test_call_adds_tokens_mask_and_truncates(tok_json):
    ours, _ = _make(tok_json, "qwen2_5", max_seq_len=10)
    sample = ours({"messages": _messages(), "id": 3})
    assert len(sample["tokens"]) == len(sample["mask"]) == 10
    assert sample["truncated"] and sample["id"] == 3 and "messages" not in sample


def test_template_whose_turns_cannot_be_located_is_rejected(tok_json):
    tmp, path = tok_json  # every content written twice: the turns' texts interleave
    template = "{% for m in messages %}{{ m['content'] }}|{% endfor %}" * 2
    config = write_tokenizer_config(tmp, template, name="twice.json", eos_token="<|im_end|>")
    with pytest.raises(ValueError, match="overlap in the rendered conversation; per-message loss masks cannot"):
        HFModelTokenizer(path, config).tokenize_messages(_messages())


def test_template_failure_is_one_clear_error(tok_json):
    tmp, path = tok_json  # a template that needs a field our messages do not have
    template = "{% for m in messages %}{{ m['content'] + m.tool_calls[0] }}{% endfor %}"
    config = write_tokenizer_config(tmp, template, name="undefined.json", eos_token="<|im_end|>")
    with pytest.raises(ValueError, match=r"cannot render this conversation \(roles: system, user, assistant, user, "
                                         r"assistant\): UndefinedError"):
        HFModelTokenizer(path, config).tokenize_messages(_messages())


def test_empty_conversation_is_a_clear_error(tok_json):
    ours, _ = _make(tok_json, "qwen2_5")
    with pytest.raises(ValueError, match="messages is empty"):
        ours.tokenize_messages([])


def test_invalid_jinja_is_one_clear_error(tok_json):
    tmp, path = tok_json
    config = write_tokenizer_config(tmp, "{% for m in messages %}{{ m }}", name="bad.json", eos_token="<|im_end|>")
    with pytest.raises(ValueError, match=r"the chat template is not valid Jinja: .* \(template line 1\)"):
        HFModelTokenizer(path, config)


def test_missing_chat_template(tok_json):
    tmp, path = tok_json
    config = write_tokenizer_config(tmp, None, name="nochat.json", eos_token="<|im_end|>")
    with pytest.raises(ValueError, match="no 'chat_template'"):
        HFModelTokenizer(path, config)


def test_chat_template_jinja_file_beside_config(tmp_path):
    path = train_byte_level_tokenizer_json(tmp_path, SPECIALS)
    config = write_tokenizer_config(tmp_path, None, eos_token="<|im_end|>")
    (tmp_path / "chat_template.jinja").write_text(read_chat_template("qwen2_5"))
    tokens, _ = HFModelTokenizer(path, config).tokenize_messages(_messages())
    assert tokens[0] == HFModelTokenizer(path, config).base.token_to_id("<|im_start|>")


def test_template_raise_exception_and_sandbox(tok_json):
    tmp, path = tok_json
    config = write_tokenizer_config(tmp, "{{ raise_exception('no system please') }}", name="raise.json",
                                    eos_token="<|im_end|>")
    with pytest.raises(ValueError, match="chat template error: no system please"):
        HFModelTokenizer(path, config).tokenize_messages(_messages())
    from jinja2.exceptions import SecurityError

    config = write_tokenizer_config(tmp, "{{ messages.__class__.__mro__ }}", name="evil.json", eos_token="<|im_end|>")
    with pytest.raises(SecurityError):
        HFModelTokenizer(path, config).render(_messages())
