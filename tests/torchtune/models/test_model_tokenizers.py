"""Model tokenizer behaviour: truncation, __call__, prompt templates, roles, stop tokens."""

import pytest
from transformers import PreTrainedTokenizerFast
from transformers.tokenization_utils_sentencepiece import SentencePieceBackend

from tests.assets.tiny_tokenizers import (
    CORPUS,
    read_chat_template,
    train_byte_bpe_ranks,
    train_byte_level_tokenizer_json,
    train_sentencepiece,
    write_tiktoken_file,
)
from torchtune.data import Message, PromptTemplate
from torchtune.models.gemma import gemma_tokenizer
from torchtune.models.llama2 import llama2_tokenizer
from torchtune.models.llama3 import llama3_tokenizer
from torchtune.models.mistral import mistral_tokenizer
from torchtune.models.phi3 import phi3_tokenizer
from torchtune.models.qwen2_5 import qwen2_5_tokenizer

CONV = [
    Message("system", "Be kind.", masked=True),
    Message("user", "Tell me a long story about a fox.", masked=True),
    Message("assistant", "The quick brown fox jumps over the lazy dog. " * 4),
]


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def llama3_path(tmp):
    return write_tiktoken_file(tmp, train_byte_bpe_ranks(CORPUS, num_merges=100))


@pytest.fixture(scope="module")
def sp_path(tmp):
    return train_sentencepiece(tmp)


@pytest.fixture(scope="module")
def qwen_path(tmp):
    return train_byte_level_tokenizer_json(tmp, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"])


def test_llama3_truncation_keeps_eos_and_flags_call(llama3_path):
    full, _ = llama3_tokenizer(llama3_path).tokenize_messages(CONV)
    tok = llama3_tokenizer(llama3_path, max_seq_len=20)
    tokens, mask = tok.tokenize_messages(CONV)
    assert len(full) > 20 and len(tokens) == len(mask) == 20
    assert tokens[:19] == full[:19] and tokens[-1] == tok.eos_id
    sample = tok({"messages": CONV})
    assert sample["truncated"] and sample["tokens"] == tokens and sample["mask"] == mask
    assert not llama3_tokenizer(llama3_path, max_seq_len=len(full))({"messages": CONV})["truncated"]


def test_llama3_special_ids_and_stop_tokens(llama3_path):
    tok = llama3_tokenizer(llama3_path)
    n = tok.base.vocab_size - 256
    assert (tok.bos_id, tok.eos_id, tok.eot_id, tok.eom_id) == (n, n + 1, n + 9, n + 8)
    assert tok.stop_tokens == [n + 1, n + 8, n + 9] and tok.pad_id == n + 4
    tokens, _ = tok.tokenize_messages([Message("user", "hi"), Message("assistant", "call", eot=False)])
    assert tokens[-1] == tok.eom_id
    assert tok.decode(tok.encode("Straße 🙂")) == "Straße 🙂"


def test_prompt_template_is_applied(llama3_path):
    template = PromptTemplate({"user": ("Question: ", "\nAnswer:")})
    plain = llama3_tokenizer(llama3_path)
    templated = llama3_tokenizer(llama3_path, prompt_template=template)
    expected, _ = plain.tokenize_messages([Message("user", "Question: why?\nAnswer:"), Message("assistant", "ok")])
    assert templated.tokenize_messages([Message("user", "why?"), Message("assistant", "ok")])[0] == expected


def test_max_seq_len_must_be_positive(llama3_path):
    with pytest.raises(ValueError, match="max_seq_len=0 must be positive or None"):
        llama3_tokenizer(llama3_path, max_seq_len=0)


@pytest.mark.parametrize(
    "build, role, name",
    [(llama2_tokenizer, "tool", "Llama 2"), (mistral_tokenizer, "ipython", "Mistral"),
     (gemma_tokenizer, "tool", "Gemma")],
)
def test_unsupported_roles(tmp, sp_path, build, role, name):
    path = sp_path
    if build is gemma_tokenizer:
        path = train_sentencepiece(tmp, name="g", add_dummy_prefix=False,
                                   user_defined_symbols=["<start_of_turn>", "<end_of_turn>"])
    messages = [Message("user", "a"), Message("assistant", "b"), Message(role, "c")]
    with pytest.raises(ValueError, match=f"{name}'s chat format has no '{role}' role \\(message 2\\)"):
        build(path).tokenize_messages(messages)


def test_phi3_unsupported_role(tmp):
    path = train_byte_level_tokenizer_json(
        tmp, ["<s>", "<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"], name="phi3.json")
    with pytest.raises(ValueError, match="Phi-3's chat format has no 'tool' role"):
        phi3_tokenizer(path).tokenize_messages([Message("user", "a"), Message("assistant", "b"), Message("tool", "c")])


def test_gemma_needs_turn_pieces(sp_path):
    with pytest.raises(ValueError, match="has no '<start_of_turn>'/'<end_of_turn>' pieces"):
        gemma_tokenizer(sp_path)


def test_gemma_and_mistral_fold_system_into_first_user_turn(tmp, sp_path):
    """No system role in these formats: ours equals the template applied to the folded conversation."""
    gemma_path = train_sentencepiece(tmp, name="g2", add_dummy_prefix=False,
                                     user_defined_symbols=["<start_of_turn>", "<end_of_turn>"])
    for build, path, family, specials in [
        (gemma_tokenizer, gemma_path, "gemma", ["<start_of_turn>", "<end_of_turn>"]),
        (mistral_tokenizer, sp_path, "mistral", []),
    ]:
        ref = SentencePieceBackend(vocab_file=path, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   legacy=True, extra_special_tokens=specials)
        ref.chat_template = read_chat_template(family)
        folded = [{"role": "user", "content": "Be kind.\n\nHi"}, {"role": "assistant", "content": "Hello"}]
        ours, _ = build(path).tokenize_messages(
            [Message("system", "Be kind."), Message("user", "Hi"), Message("assistant", "Hello")])
        out = ref.apply_chat_template(folded, tokenize=True)
        assert ours == list(out["input_ids"] if not isinstance(out, list) else out)


def test_qwen2_5_tool_turns_match_template(qwen_path):
    ref = PreTrainedTokenizerFast(tokenizer_file=qwen_path, eos_token="<|im_end|>")
    ref.chat_template = read_chat_template("qwen2_5")
    dicts = [{"role": "user", "content": "Weather?"}, {"role": "assistant", "content": "Checking."},
             {"role": "tool", "content": "sunny"}, {"role": "tool", "content": "25C"},
             {"role": "assistant", "content": "Sunny, 25C."}]
    ours, _ = qwen2_5_tokenizer(qwen_path).tokenize_messages([Message(d["role"], d["content"]) for d in dicts])
    out = ref.apply_chat_template(dicts, tokenize=True)
    assert ours == list(out["input_ids"] if not isinstance(out, list) else out)
