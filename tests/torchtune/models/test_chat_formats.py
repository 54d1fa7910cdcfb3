"""Chat formats of every family vs transformers' apply_chat_template on the published templates."""

import pytest
from transformers import PreTrainedTokenizerFast
from transformers.convert_slow_tokenizer import TikTokenConverter
from transformers.tokenization_utils_sentencepiece import SentencePieceBackend

from tests.assets.tiny_tokenizers import (
    LLAMA3_PATTERN,
    read_chat_template,
    train_byte_bpe_ranks,
    train_byte_level_tokenizer_json,
    train_sentencepiece,
    write_tiktoken_file,
    CORPUS,
)
from torchtune.data import Message, mask_messages
from torchtune.models.gemma import gemma_tokenizer
from torchtune.models.llama2 import llama2_tokenizer
from torchtune.models.llama3 import llama3_special_tokens, llama3_tokenizer
from torchtune.models.mistral import mistral_tokenizer
from torchtune.models.phi3 import phi3_tokenizer
from torchtune.models.phi4 import phi4_tokenizer
from torchtune.models.qwen2_5 import qwen2_5_tokenizer
from torchtune.models.qwen3 import qwen3_tokenizer

SYSTEM = {"role": "system", "content": "You are a helpful assistant."}
TURNS = [
    {"role": "user", "content": "Hello, how are you? café"},
    {"role": "assistant", "content": "I am fine, thank you! 日本語 🙂"},
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "Paris is the capital of France."},
]


def _ids(out):
    return list(out["input_ids"]) if not isinstance(out, list) else out


def _messages(dicts, strategy="train_on_assistant"):
    messages = [Message(role=d["role"], content=d["content"]) for d in dicts]
    mask_messages(messages, strategy)
    return messages


def _expected_mask(ref, dicts, messages, **kwargs):
    """Mask implied by the reference: tokens between prefix renderings belong to one message."""
    mask, start = [], 0
    for k in range(1, len(dicts) + 1):
        end = len(_ids(ref.apply_chat_template(dicts[:k], tokenize=True, **kwargs)))
        mask += [messages[k - 1].masked] * (end - start)
        start = end
    return mask


def _sp_ref(path, template, specials=()):
    ref = SentencePieceBackend(
        vocab_file=path, bos_token="<s>", eos_token="</s>", unk_token="<unk>", legacy=True,
        extra_special_tokens=list(specials),
    )
    ref.chat_template = template
    return ref


def _fast_ref(path, template, **tokens):
    ref = PreTrainedTokenizerFast(tokenizer_file=path, **tokens)
    ref.chat_template = template
    return ref


def _check_generation_prompt(ours, ref, dicts):
    tokens, _ = ours.tokenize_messages(_messages(dicts), add_end_tokens=False)
    assert tokens == _ids(ref.apply_chat_template(dicts, tokenize=True, add_generation_prompt=True))


def _check(ours, ref, dicts, check_mask=True):
    messages = _messages(dicts)
    tokens, mask = ours.tokenize_messages(messages)
    expected = _ids(ref.apply_chat_template(dicts, tokenize=True))
    assert tokens == expected
    assert len(mask) == len(tokens)
    if check_mask:
        assert mask == _expected_mask(ref, dicts, messages)
    assert not all(mask) and any(mask)


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("chat")


def test_llama2(tmp):
    path = train_sentencepiece(tmp, name="llama2")
    ref = _sp_ref(path, read_chat_template("llama2"))
    _check(llama2_tokenizer(path), ref, [SYSTEM] + TURNS)
    _check(llama2_tokenizer(path), ref, TURNS)


def test_mistral(tmp):
    path = train_sentencepiece(tmp, name="mistral")
    ref = _sp_ref(path, read_chat_template("mistral"))
    _check(mistral_tokenizer(path), ref, TURNS)


def test_gemma(tmp):
    path = train_sentencepiece(
        tmp, name="gemma", add_dummy_prefix=False, user_defined_symbols=["<start_of_turn>", "<end_of_turn>"]
    )
    ref = _sp_ref(path, read_chat_template("gemma"), ["<start_of_turn>", "<end_of_turn>"])
    _check(gemma_tokenizer(path), ref, TURNS)
    _check_generation_prompt(gemma_tokenizer(path), ref, TURNS[:3])


def test_llama3(tmp):
    ranks = train_byte_bpe_ranks(CORPUS, num_merges=150)
    path = write_tiktoken_file(tmp, ranks)
    specials = llama3_special_tokens(len(ranks))
    hf = TikTokenConverter(vocab_file=path, pattern=LLAMA3_PATTERN, extra_special_tokens=list(specials)).converted()
    ref = PreTrainedTokenizerFast(tokenizer_object=hf, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>")
    ref.chat_template = read_chat_template("llama3")
    assert hf.token_to_id("<|eot_id|>") == specials["<|eot_id|>"]
    _check(llama3_tokenizer(path), ref, [SYSTEM] + TURNS)
    _check_generation_prompt(llama3_tokenizer(path), ref, [SYSTEM] + TURNS[:3])


QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]


def test_qwen2_5(tmp):
    path = train_byte_level_tokenizer_json(tmp, QWEN_SPECIALS, name="qwen2_5.json")
    ref = _fast_ref(path, read_chat_template("qwen2_5"), eos_token="<|im_end|>", pad_token="<|endoftext|>")
    _check(qwen2_5_tokenizer(path), ref, [SYSTEM] + TURNS)
    # no system message: the template adds Qwen's default one
    messages = _messages(TURNS)
    tokens, mask = qwen2_5_tokenizer(path).tokenize_messages(messages)
    assert tokens == _ids(ref.apply_chat_template(TURNS, tokenize=True))


def test_qwen3_reasoning(tmp):
    path = train_byte_level_tokenizer_json(tmp, QWEN_SPECIALS, name="qwen3.json")
    ref = _fast_ref(path, read_chat_template("qwen3"), eos_token="<|im_end|>", pad_token="<|endoftext|>")
    dicts = [SYSTEM] + TURNS[:1] + [
        {"role": "assistant", "content": "<think>\nold reasoning\n</think>\n\nI am fine."},
        TURNS[2],
        {"role": "assistant", "content": "<think>\nParis, surely.\n</think>\n\nParis is the capital."},
    ]
    _check(qwen3_tokenizer(path), ref, dicts, check_mask=False)
    _check(qwen3_tokenizer(path), ref, TURNS, check_mask=False)


def test_phi3(tmp):
    specials = ["<s>", "<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
    path = train_byte_level_tokenizer_json(tmp, specials, name="phi3.json")
    ref = _fast_ref(path, read_chat_template("phi3"), bos_token="<s>", eos_token="<|endoftext|>")
    _check(phi3_tokenizer(path), ref, [SYSTEM] + TURNS, check_mask=False)
    _check_generation_prompt(phi3_tokenizer(path), ref, [SYSTEM] + TURNS[:3])


def test_phi4(tmp):
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_sep|>", "<|im_end|>"]
    path = train_byte_level_tokenizer_json(tmp, specials, name="phi4.json")
    ref = _fast_ref(path, read_chat_template("phi4"), eos_token="<|im_end|>")
    _check(phi4_tokenizer(path), ref, [SYSTEM] + TURNS)


def test_generation_prompt_matches_add_generation_prompt(tmp):
    path = train_byte_level_tokenizer_json(tmp, QWEN_SPECIALS, name="qwen_gen.json")
    ref = _fast_ref(path, read_chat_template("qwen2_5"), eos_token="<|im_end|>")
    dicts = [SYSTEM] + TURNS[:3]
    _check_generation_prompt(qwen2_5_tokenizer(path), ref, dicts)


def _hf_model_tokenizer(tmp, family, specials, template_kwargs=None, mask_template=None, **tokens):
    """Our HFModelTokenizer on the family's published template, transformers' on the same files,
    and the transformers tokenizer whose ``return_assistant_tokens_mask`` is the mask reference:
    the template itself when it has ``{% generation %}`` blocks, else ``mask_template`` (TRL's
    training variant of it)."""
    from tests.assets.tiny_tokenizers import write_tokenizer_config
    from torchtune.modules.tokenizers import HFModelTokenizer

    path = train_byte_level_tokenizer_json(tmp, specials, name=f"{family}.json")
    config = write_tokenizer_config(tmp, read_chat_template(family), name=f"{family}_config.json", **tokens)
    ours = HFModelTokenizer(path, config, template_kwargs=template_kwargs)
    ref = _fast_ref(path, read_chat_template(family), **tokens)
    return ours, ref, _fast_ref(path, mask_template or read_chat_template(family), **tokens)


def _check_with_kwargs(ours, ref, mask_ref, dicts, **kwargs):
    messages = _messages(dicts)
    tokens, mask = ours.tokenize_messages(messages)
    assert tokens == _ids(ref.apply_chat_template(dicts, tokenize=True, **kwargs))
    out = mask_ref.apply_chat_template(dicts, tokenize=True, return_dict=True, return_assistant_tokens_mask=True,
                                       **kwargs)
    assert list(out["input_ids"]) == tokens
    assert [not m for m in mask] == [bool(x) for x in out["assistant_masks"]]  # mask: True = not trained
    assert not all(mask) and any(mask)
    if dicts[-1]["role"] == "assistant":
        gen, _ = ours.tokenize_messages(_messages(dicts[:-1]), add_end_tokens=False)
        assert gen == _ids(ref.apply_chat_template(dicts[:-1], tokenize=True, add_generation_prompt=True, **kwargs))


SMOLLM3_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]


@pytest.mark.parametrize(
    "system,template_kwargs",
    [
        (None, None),  # reasoning on by default, SmolLM's long default instructions
        (None, {"enable_thinking": False}),  # empty <think> blocks before every answer
        ("Be brief. /no_think", None),  # the flag in the system message wins, and is removed
        ("Be brief. /think", {"enable_thinking": False}),
        ("You are a pirate.", None),  # custom instructions replace the default ones
    ],
    ids=["default", "enable_thinking_false", "system_no_think", "system_think_overrides", "custom"],
)
def test_smollm3_thinking_flags(tmp, system, template_kwargs):
    ours, ref, mask_ref = _hf_model_tokenizer(tmp, "smollm3", SMOLLM3_SPECIALS, template_kwargs,
                                              bos_token="<|begin_of_text|>", eos_token="<|im_end|>")
    dicts = ([{"role": "system", "content": system}] if system else []) + TURNS
    _check_with_kwargs(ours, ref, mask_ref, dicts, **(template_kwargs or {}))
    text = ours.render(_messages(dicts), add_generation_prompt=True)
    thinking = "/no_think" not in (system or "") and (template_kwargs or {}).get("enable_thinking", True)
    if system and "/think" in system:
        thinking = True
    assert f"Reasoning Mode: {'/think' if thinking else '/no_think'}" in text
    assert text.endswith("<|im_start|>assistant\n" if thinking else "<think>\n\n</think>\n")


GEMMA3_SPECIALS = ["<pad>", "<eos>", "<bos>", "<start_of_turn>", "<end_of_turn>"]


def test_gemma3(tmp):
    from tests.assets.tiny_tokenizers import read_corpus_chat_templates

    training = read_corpus_chat_templates()["trl-gemma3_training"]  # TRL's copy with generation blocks
    ours, ref, mask_ref = _hf_model_tokenizer(tmp, "gemma3", GEMMA3_SPECIALS, mask_template=training,
                                              bos_token="<bos>", eos_token="<eos>", pad_token="<pad>")
    _check_with_kwargs(ours, ref, mask_ref, [SYSTEM] + TURNS)  # the system text opens the first user turn
    _check_with_kwargs(ours, ref, mask_ref, TURNS)
