"""Tokenizers rebuilt from GGUF metadata against the tokenizers / sentencepiece / transformers
readings of the same vocabulary, and chat-template tokenization against transformers."""

import json
import os

import pytest

gguf = pytest.importorskip("gguf")

from tests.torchtune.gguf._gguf_testing import (  # noqa: E402
    MIXED_TEXTS,
    TOKENIZER_CORPUS,
    bpe_tokenizer_kv,
    kv_to_metadata,
    tiny_model,
    train_byte_level_bpe,
    write_tiny_gguf,
)

from torchtune.data import Message  # noqa: E402
from torchtune.modules.tokenizers import GGUFTokenizer  # noqa: E402

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] "
    "+ '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Wie heißt die Hauptstadt? 日本"},
    {"role": "assistant", "content": "Paris, 2024 🙂"},
]


@pytest.mark.parametrize("pre", ["gpt2", "smollm", "qwen2", "llama-bpe"])
def test_bpe_matches_tokenizers(pre):
    tok = train_byte_level_bpe(pre)
    ours = GGUFTokenizer(kv_to_metadata(bpe_tokenizer_kv(tok, pre)))
    assert ours.vocab_size == tok.get_vocab_size()
    for text in MIXED_TEXTS:
        expected = tok.encode(text, add_special_tokens=False).ids
        assert ours.encode(text, add_bos=False, add_eos=False) == expected, repr(text)
        assert ours.decode(expected, skip_special_tokens=False) == tok.decode(expected, skip_special_tokens=False)


def test_bpe_matches_transformers_gguf_reading(tmp_path):
    from transformers import AutoTokenizer

    tok = train_byte_level_bpe("qwen2")
    kv = bpe_tokenizer_kv(tok, "qwen2", chat_template=CHATML)
    write_tiny_gguf(tiny_model("qwen2"), tmp_path / "m.gguf", tokenizer_kv=kv)
    reference = AutoTokenizer.from_pretrained(tmp_path, gguf_file="m.gguf")
    ours = GGUFTokenizer.from_file(tmp_path / "m.gguf")
    for text in MIXED_TEXTS:
        assert ours.encode(text, add_bos=False, add_eos=False) == reference.encode(text, add_special_tokens=False)
    expected = reference.apply_chat_template(CONVERSATION, tokenize=True, return_dict=False)
    assert ours.tokenize_messages(CONVERSATION)[0] == list(expected)


def test_qwen3_multi_turn_matches_transformers_gguf_reading(tmp_path):
    """Qwen3's template renders the last assistant turn differently from earlier ones."""
    from transformers import AutoTokenizer

    from tests.assets.tiny_tokenizers import read_chat_template

    specials = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>")
    tok = train_byte_level_bpe("qwen2", special_tokens=specials)
    kv = bpe_tokenizer_kv(tok, "qwen2", chat_template=read_chat_template("qwen3"))
    write_tiny_gguf(tiny_model("qwen2"), tmp_path / "q.gguf", tokenizer_kv=kv)
    reference = AutoTokenizer.from_pretrained(tmp_path, gguf_file="q.gguf")
    ours = GGUFTokenizer.from_file(tmp_path / "q.gguf")
    conversation = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
                    {"role": "user", "content": "ok?"}, {"role": "assistant", "content": "yes"}]
    tokens, mask = ours.tokenize_messages(conversation)
    assert tokens == list(reference.apply_chat_template(conversation, tokenize=True, return_dict=False))
    trained = ours.decode([t for t, m in zip(tokens, mask) if not m], skip_special_tokens=False)
    assert trained == "hello<|im_end|>\n<think>\n\n</think>\n\nyes<|im_end|>\n"


def _spm_metadata(tmp_path, add_dummy_prefix: bool, control_symbols=()):
    import sentencepiece as spm

    corpus = os.path.join(tmp_path, "corpus.txt")
    with open(corpus, "w", encoding="utf-8") as f:
        f.write("\n".join(line.replace("\n", " ") for line in TOKENIZER_CORPUS * 3))
    spm.SentencePieceTrainer.train(
        input=corpus, model_prefix=os.path.join(tmp_path, "sp"), vocab_size=520, model_type="bpe",
        byte_fallback=True, character_coverage=1.0, normalization_rule_name="identity",
        remove_extra_whitespaces=False, add_dummy_prefix=add_dummy_prefix, unk_id=0, bos_id=1, eos_id=2,
        pad_id=-1, num_threads=1, minloglevel=2, user_defined_symbols=["<tool>"],
        control_symbols=list(control_symbols),
    )
    sp = spm.SentencePieceProcessor(model_file=os.path.join(tmp_path, "sp.model"))
    n = sp.get_piece_size()

    def token_type(i):  # as llama.cpp's _create_vocab_sentencepiece assigns them
        if sp.is_unknown(i):
            return 2
        if sp.is_control(i):
            return 3
        if sp.is_byte(i):
            return 6
        return 4 if sp.id_to_piece(i) == "<tool>" else 1

    metadata = {
        "tokenizer.ggml.model": "llama",
        "tokenizer.ggml.tokens": [sp.id_to_piece(i) for i in range(n)],
        "tokenizer.ggml.scores": [sp.get_score(i) for i in range(n)],
        "tokenizer.ggml.token_type": [token_type(i) for i in range(n)],
        "tokenizer.ggml.unknown_token_id": 0,
        "tokenizer.ggml.bos_token_id": 1,
        "tokenizer.ggml.eos_token_id": 2,
        "tokenizer.ggml.add_space_prefix": add_dummy_prefix,
    }
    return sp, metadata


@pytest.mark.parametrize("add_dummy_prefix", [True, False])
def test_sentencepiece_matches_sentencepiece(tmp_path, add_dummy_prefix):
    sp, metadata = _spm_metadata(tmp_path, add_dummy_prefix)
    ours = GGUFTokenizer(metadata)
    assert ours.bos_id == 1 and ours.eos_id == 2 and ours.add_bos
    for text in MIXED_TEXTS + ["x <tool> y", ""]:
        expected = sp.encode(text)
        assert ours.encode(text) == [1] + expected + [2], repr(text)
        assert ours.decode(expected) == sp.decode(expected), repr(text)


# Phi-3's template as its GGUF carries it (llama.cpp's ggml-vocab-phi-3.gguf)
PHI3_GGUF_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') %}"
    "{{'<|user|>' + '\n' + message['content'] + '<|end|>' + '\n' + '<|assistant|>' + '\n'}}"
    "{% elif (message['role'] == 'assistant') %}{{message['content'] + '<|end|>' + '\n'}}{% endif %}{% endfor %}"
)


def _kv(metadata):
    import gguf

    vt = gguf.GGUFValueType
    kinds = {list: None, bool: vt.BOOL, int: vt.UINT32, str: vt.STRING}
    kv = {}
    for key, value in metadata.items():
        if isinstance(value, list):
            sub = {str: vt.STRING, float: vt.FLOAT32, int: vt.INT32}[type(value[0])]
            kv[key] = (value, vt.ARRAY, sub)
        else:
            kv[key] = (value, kinds[type(value)], None)
    return kv


def test_sentencepiece_control_tokens_match_transformers_gguf(tmp_path):
    """The dummy prefix follows every control token (issue 20, item 4), as in transformers'
    reading of a Phi-3 GGUF, and a chat starting with the BOS text gets one BOS."""
    from transformers import AutoTokenizer

    controls = ["<|user|>", "<|end|>", "<|assistant|>"]
    _, metadata = _spm_metadata(tmp_path, add_dummy_prefix=True, control_symbols=controls)
    metadata.update({"tokenizer.ggml.add_bos_token": True, "tokenizer.chat_template": PHI3_GGUF_TEMPLATE})
    write_tiny_gguf(tiny_model("llama"), tmp_path / "phi.gguf", tokenizer_kv=_kv(metadata), arch="phi3")
    reference = AutoTokenizer.from_pretrained(tmp_path, gguf_file="phi.gguf")
    ours = GGUFTokenizer.from_file(tmp_path / "phi.gguf")
    texts = ["<s><|user|>\nhi", "a<|end|>b", "<|user|>The fox<|end|>\n<|assistant|>", " lead", "x  y"]
    for text in texts + MIXED_TEXTS:
        assert ours.encode(text, add_bos=False, add_eos=False) == reference.encode(text, add_special_tokens=False), text
    start = [1, reference.convert_tokens_to_ids("<|user|>"), reference.convert_tokens_to_ids("\u2581")]
    assert ours.encode("<s><|user|>\nhi", add_bos=False, add_eos=False)[:3] == start
    conversation = [{"role": "user", "content": "The quick fox?"}, {"role": "assistant", "content": "Jumps."}]
    tokens, mask = ours.tokenize_messages(conversation)
    expected = list(reference.apply_chat_template(conversation, tokenize=True, return_dict=False))
    assert tokens == expected + [ours.eos_id] and tokens.count(1) == 1
    trained = ours.decode([t for t, m in zip(tokens, mask) if not m], skip_special_tokens=False)
    assert trained.strip() == "Jumps.<|end|> \n</s>"


def test_inconsistent_vocabulary_arrays_are_clear_errors(tmp_path):
    _, metadata = _spm_metadata(tmp_path, add_dummy_prefix=True)
    short = dict(metadata, **{"tokenizer.ggml.token_type": metadata["tokenizer.ggml.token_type"][:-3]})
    n = len(metadata["tokenizer.ggml.tokens"])
    message = f"tokenizer.ggml.token_type has {n - 3} entries but tokenizer.ggml.tokens has {n}"
    with pytest.raises(ValueError, match=message):
        GGUFTokenizer(short)
    short = dict(metadata, **{"tokenizer.ggml.scores": metadata["tokenizer.ggml.scores"][:5]})
    with pytest.raises(ValueError, match=f"tokenizer.ggml.scores has 5 entries but tokenizer.ggml.tokens has {n}"):
        GGUFTokenizer(short)


def test_gpt_2_pre_tokenizer_name_as_llama_cpp_writes_it():
    tok = train_byte_level_bpe("gpt2")
    ours = GGUFTokenizer(kv_to_metadata(bpe_tokenizer_kv(tok, "gpt-2")))
    for text in MIXED_TEXTS:
        assert ours.encode(text, add_bos=False, add_eos=False) == tok.encode(text, add_special_tokens=False).ids


def test_tokenize_messages_matches_template_and_masks(tmp_path):
    from transformers import PreTrainedTokenizerFast

    tok = train_byte_level_bpe("qwen2")
    ours = GGUFTokenizer(kv_to_metadata(bpe_tokenizer_kv(tok, "qwen2", chat_template=CHATML)))
    reference = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>")
    reference.chat_template = CHATML
    tokens, mask = ours.tokenize_messages(CONVERSATION)
    assert tokens == list(reference.apply_chat_template(CONVERSATION, tokenize=True, return_dict=False))
    # exactly the assistant's content, its <|im_end|> and newline are trained on
    trained = [t for t, m in zip(tokens, mask) if not m]
    assert trained == tok.encode("Paris, 2024 🙂<|im_end|>\n", add_special_tokens=False).ids

    prompt, prompt_mask = ours.tokenize_messages(CONVERSATION[:2], add_end_tokens=False)
    expected = reference.apply_chat_template(CONVERSATION[:2], tokenize=True, add_generation_prompt=True,
                                             return_dict=False)
    assert prompt == list(expected) and all(prompt_mask)


def test_call_and_eos_appended_without_end_token(tmp_path):
    tok = train_byte_level_bpe("gpt2")
    template = "{% for m in messages %}{{ m['role'] + ': ' + m['content'] + '\n' }}{% endfor %}"
    ours = GGUFTokenizer(kv_to_metadata(bpe_tokenizer_kv(tok, "gpt2", chat_template=template)), max_seq_len=5)
    messages = [Message("user", "Hi there", masked=True), Message("assistant", "Hello, wörld")]
    sample = ours({"messages": messages})
    assert len(sample["tokens"]) == 5 and len(sample["mask"]) == 5 and sample["truncated"]
    assert sample["tokens"][-1] == ours.eos_id
    full = GGUFTokenizer(kv_to_metadata(bpe_tokenizer_kv(tok, "gpt2", chat_template=template)))
    tokens, mask = full.tokenize_messages(messages)
    text = "user: Hi there\nassistant: Hello, wörld\n"
    assert tokens == tok.encode(text).ids + [full.eos_id]  # no end token in the template: EOS added
    trained = [t for t, m in zip(tokens, mask) if not m]
    assert trained == tok.encode("Hello, wörld\n").ids + [full.eos_id]


def test_errors():
    tok = train_byte_level_bpe("gpt2")
    metadata = kv_to_metadata(bpe_tokenizer_kv(tok, "gpt2"))
    with pytest.raises(ValueError, match="GGUF tokenizer model 't5' is not supported; supported: gpt2, llama"):
        GGUFTokenizer(dict(metadata, **{"tokenizer.ggml.model": "t5"}))
    with pytest.raises(ValueError, match="tokenizer.ggml.pre='chatglm-bpe' is not supported"):
        GGUFTokenizer(dict(metadata, **{"tokenizer.ggml.pre": "chatglm-bpe"}))
    without_merges = {k: v for k, v in metadata.items() if k != "tokenizer.ggml.merges"}
    with pytest.raises(ValueError, match="needs tokenizer.ggml.merges, which is missing"):
        GGUFTokenizer(without_merges)
    with pytest.raises(ValueError, match="GGUF metadata has no tokenizer"):
        GGUFTokenizer({"general.architecture": "llama"})
    with pytest.raises(ValueError, match="has no tokenizer.chat_template"):
        GGUFTokenizer(metadata).tokenize_messages(CONVERSATION)
    twice = "{% for m in messages %}{{ m['content'] }}|{% endfor %}" * 2
    with pytest.raises(ValueError, match="overlap in the rendered conversation; per-message loss masks cannot"):
        GGUFTokenizer(dict(metadata, **{"tokenizer.chat_template": twice})).tokenize_messages(CONVERSATION)
    raising = "{{ raise_exception('no system role') }}"
    with pytest.raises(ValueError, match="chat template error: no system role"):
        GGUFTokenizer(dict(metadata, **{"tokenizer.chat_template": raising})).tokenize_messages(CONVERSATION)


@pytest.mark.parametrize("pre", ["gpt2", "smollm", "qwen2", "llama-bpe"])
def test_metadata_from_hf_tokenizer_json(tmp_path, pre):
    """HF tokenizer.json + tokenizer_config.json -> GGUF metadata -> our tokenizer == the original."""
    from transformers import PreTrainedTokenizerFast

    from torchtune.gguf import gguf_tokenizer_metadata_from_hf

    tok = train_byte_level_bpe(pre)
    tok.save(str(tmp_path / "tokenizer.json"))
    config = {"eos_token": "<|im_end|>", "pad_token": {"content": "<|endoftext|>"}, "chat_template": CHATML}
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    metadata = gguf_tokenizer_metadata_from_hf(tmp_path / "tokenizer.json", tmp_path / "tokenizer_config.json")
    assert metadata["tokenizer.ggml.pre"] == pre
    assert metadata["tokenizer.ggml.padding_token_id"] == tok.token_to_id("<|endoftext|>")
    ours = GGUFTokenizer(metadata)
    for text in MIXED_TEXTS:
        assert ours.encode(text, add_bos=False, add_eos=False) == tok.encode(text).ids, repr(text)
    reference = PreTrainedTokenizerFast(tokenizer_file=str(tmp_path / "tokenizer.json"), eos_token="<|im_end|>")
    reference.chat_template = CHATML
    expected = reference.apply_chat_template(CONVERSATION, tokenize=True, return_dict=False)
    assert ours.tokenize_messages(CONVERSATION)[0] == list(expected)


def test_metadata_from_hf_rejects_unknown_tokenizers():
    from tokenizers import Tokenizer, models, pre_tokenizers

    from torchtune.gguf import gguf_tokenizer_metadata_from_hf

    tok = Tokenizer(models.BPE(vocab={"a": 0}, merges=[], byte_fallback=True))
    with pytest.raises(ValueError, match="only byte-level BPE tokenizer.json files .* 'BPE' with byte_fallback"):
        gguf_tokenizer_metadata_from_hf(json.loads(tok.to_str()))
    tok = Tokenizer(models.BPE(vocab={"a": 0}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    with pytest.raises(ValueError, match=r"pre-tokenizer \['Whitespace'\] has no known llama.cpp"):
        gguf_tokenizer_metadata_from_hf(json.loads(tok.to_str()))


def test_save_hf_files_load_in_transformers(tmp_path):
    from transformers import AutoTokenizer

    tok = train_byte_level_bpe("qwen2")
    ours = GGUFTokenizer(kv_to_metadata(bpe_tokenizer_kv(tok, "qwen2", chat_template=CHATML)))
    assert ours.save_hf_files(tmp_path)
    reference = AutoTokenizer.from_pretrained(tmp_path)
    for text in MIXED_TEXTS:
        assert reference.encode(text, add_special_tokens=False) == ours.encode(text, add_bos=False, add_eos=False)
    expected = reference.apply_chat_template(CONVERSATION, tokenize=True, return_dict=False)
    assert ours.tokenize_messages(CONVERSATION)[0] == list(expected)
    assert reference.eos_token == "<|im_end|>"


def test_save_hf_files_declines_sentencepiece_vocabularies(tmp_path):
    _, metadata = _spm_metadata(tmp_path, add_dummy_prefix=True)
    ours = GGUFTokenizer(metadata)
    assert ours.save_hf_files(tmp_path / "out") is False
