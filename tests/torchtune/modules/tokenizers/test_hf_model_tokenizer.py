"""HFModelTokenizer (tokenizer.json + Jinja chat template) vs transformers' apply_chat_template."""

import pytest
from transformers import PreTrainedTokenizerFast

from tests.assets.tiny_tokenizers import read_chat_template, train_byte_level_tokenizer_json, write_tokenizer_config
from torchtune.data import Message, mask_messages
from torchtune.modules.tokenizers import HFModelTokenizer

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|begin_of_text|>", "<|start_header_id|>",
            "<|end_header_id|>", "<|eot_id|>", "<think>", "</think>"]
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


def _make(tok_json, family, **kwargs):
    tmp, path = tok_json
    config = write_tokenizer_config(tmp, read_chat_template(family), name=f"{family}.json", **TOKENS[family])
    ref = PreTrainedTokenizerFast(tokenizer_file=path, **TOKENS[family])
    ref.chat_template = read_chat_template(family)
    return HFModelTokenizer(path, config, **kwargs), ref


def _ids(out):
    return list(out["input_ids"]) if not isinstance(out, list) else out


def _messages(strategy="train_on_assistant"):
    messages = [Message(role=d["role"], content=d["content"]) for d in CONV]
    mask_messages(messages, strategy)
    return messages


@pytest.mark.parametrize("family", ["qwen2_5", "llama3"])
def test_tokens_and_mask_match_apply_chat_template(tok_json, family):
    ours, ref = _make(tok_json, family)
    messages = _messages()
    tokens, mask = ours.tokenize_messages(messages)
    assert tokens == _ids(ref.apply_chat_template(CONV, tokenize=True))
    expected_mask, start = [], 0
    for k in range(1, len(CONV) + 1):
        end = len(_ids(ref.apply_chat_template(CONV[:k], tokenize=True)))
        expected_mask += [messages[k - 1].masked] * (end - start)
        start = end
    assert mask == expected_mask
    gen, _ = ours.tokenize_messages(messages[:4], add_end_tokens=False)
    assert gen == _ids(ref.apply_chat_template(CONV[:4], tokenize=True, add_generation_prompt=True))


def test_call_adds_tokens_mask_and_truncates(tok_json):
    ours, _ = _make(tok_json, "qwen2_5", max_seq_len=10)
    sample = ours({"messages": _messages(), "id": 3})
    assert len(sample["tokens"]) == len(sample["mask"]) == 10
    assert sample["truncated"] and sample["id"] == 3 and "messages" not in sample


def test_template_not_prefix_stable_is_rejected(tok_json):
    tmp, path = tok_json
    template = "{% for m in messages %}{{ m['content'] }}{% endfor %}{{ messages | length }}"
    config = write_tokenizer_config(tmp, template, name="unstable.json", eos_token="<|im_end|>")
    with pytest.raises(ValueError, match="does not render a conversation prefix as a prefix"):
        HFModelTokenizer(path, config).tokenize_messages(_messages())


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
