"""Base tokenizers vs the reference libraries on tiny files built here."""

import base64

import pytest
import sentencepiece as spm
import tiktoken
from tiktoken.load import load_tiktoken_bpe
from transformers import PreTrainedTokenizerFast
from transformers.tokenization_utils_sentencepiece import SentencePieceBackend

from tests.assets.tiny_tokenizers import (
    CORPUS,
    LLAMA3_PATTERN,
    MIXED_TEXTS,
    train_byte_bpe_ranks,
    train_byte_level_tokenizer_json,
    train_sentencepiece,
    write_tiktoken_file,
    write_tokenizer_config,
)
from torchtune.modules.tokenizers import (
    HuggingFaceBaseTokenizer,
    SentencePieceBaseTokenizer,
    TikTokenBaseTokenizer,
    load_bpe_ranks,
    split_special_tokens,
)

SPECIALS = ["<|begin|>", "<|end|>", "<|im_start|>", "<|im_end|>"]
WITH_SPECIALS = [f"<|im_start|>user\n{t}<|im_end|>" for t in MIXED_TEXTS[:6]] + ["<|begin|>a<|end|><|end|>b"]


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("base")


@pytest.fixture(scope="module")
def sp_path(tmp):
    return train_sentencepiece(tmp)


@pytest.fixture(scope="module")
def tiktoken_setup(tmp):
    ranks = train_byte_bpe_ranks(CORPUS, num_merges=150)
    specials = {t: len(ranks) + i for i, t in enumerate(SPECIALS)}
    return write_tiktoken_file(tmp, ranks), ranks, specials


def test_sentencepiece_matches_sentencepiece(sp_path):
    ours = SentencePieceBaseTokenizer(sp_path)
    ref = spm.SentencePieceProcessor(model_file=sp_path)
    for text in MIXED_TEXTS:
        assert ours.encode(text) == [ref.bos_id()] + ref.encode(text) + [ref.eos_id()]
        assert ours.encode(text, add_bos=False, add_eos=False) == ref.encode(text)
        assert ours.decode(ours.encode(text)) == ref.decode(ref.encode(text))
    assert (ours.bos_id, ours.eos_id, ours.vocab_size) == (ref.bos_id(), ref.eos_id(), ref.vocab_size())
    assert ours.pad_id == 0  # no pad piece: fall back to 0


def test_sentencepiece_continuation_matches_transformers_non_legacy(sp_path):
    """trim_leading_whitespace encodes like transformers' non-legacy (no dummy prefix) mode."""
    ours = SentencePieceBaseTokenizer(sp_path)
    ref = SentencePieceBackend(vocab_file=sp_path, unk_token="<unk>", legacy=False)
    for text in ["Hello world", "café au lait", "fine, thank you"]:
        assert ours.encode(text, False, False, trim_leading_whitespace=True) == ref.encode(
            text, add_special_tokens=False
        )


def test_sentencepiece_bad_files(tmp):
    with pytest.raises(FileNotFoundError, match="SentencePiece model not found"):
        SentencePieceBaseTokenizer(str(tmp / "missing.model"))
    bad = tmp / "bad.model"
    bad.write_text("not a model")
    with pytest.raises(ValueError, match="is not a SentencePiece model file"):
        SentencePieceBaseTokenizer(str(bad))


def test_tiktoken_matches_tiktoken_encoding(tiktoken_setup):
    path, ranks, specials = tiktoken_setup
    ours = TikTokenBaseTokenizer(path, "tiny", LLAMA3_PATTERN, specials["<|begin|>"], specials["<|end|>"], specials)
    ref = tiktoken.Encoding(
        name="ref", pat_str=LLAMA3_PATTERN, mergeable_ranks=load_tiktoken_bpe(path), special_tokens=specials
    )
    assert load_bpe_ranks(path) == ranks
    for text in MIXED_TEXTS + WITH_SPECIALS:
        expected = ref.encode(text, disallowed_special=())  # special strings stay plain text
        assert ours.encode(text, add_bos=False, add_eos=False) == expected
        assert ours.encode(text) == [ours.bos_id] + expected + [ours.eos_id]
        assert ours.decode(ours.encode(text)) == text
    for text in WITH_SPECIALS:
        assert ours.encode_with_special_tokens(text) == ref.encode(text, allowed_special="all")
    assert ours.vocab_size == ref.n_vocab == len(ranks) + len(SPECIALS)


def test_tiktoken_malformed_rank_file(tmp):
    path = tmp / "bad.tiktoken"
    path.write_text(base64.b64encode(b"a").decode() + " 0\nnot-base64!! 1\n")
    with pytest.raises(ValueError, match=r"bad.tiktoken line 2: malformed BPE rank entry"):
        load_bpe_ranks(str(path))


def test_tokenizer_json_matches_transformers(tmp):
    path = train_byte_level_tokenizer_json(tmp, SPECIALS)
    config = write_tokenizer_config(tmp, bos_token="<|begin|>", eos_token={"content": "<|end|>"})
    ours = HuggingFaceBaseTokenizer(path, tokenizer_config_json_path=config)
    ref = PreTrainedTokenizerFast(tokenizer_file=path, bos_token="<|begin|>", eos_token="<|end|>")
    for text in MIXED_TEXTS + WITH_SPECIALS:
        expected = ref.encode(text, add_special_tokens=False)
        assert ours.encode(text, add_bos=False, add_eos=False) == expected
        assert ours.encode(text) == [ref.bos_token_id] + expected + [ref.eos_token_id]
        ids = ours.encode(text)
        assert ours.decode(ids) == ref.decode(ids, skip_special_tokens=True)
        assert ours.decode(ids, skip_special_tokens=False) == ref.decode(ids, skip_special_tokens=False)
    assert ours.vocab_size == len(ref)


def test_tokenizer_json_ids_from_generation_config(tmp):
    path = train_byte_level_tokenizer_json(tmp, SPECIALS, name="gen.json")
    gen = tmp / "generation_config.json"
    gen.write_text('{"bos_token_id": 5, "eos_token_id": [7, 8]}')
    tok = HuggingFaceBaseTokenizer(path, generation_config_path=str(gen))
    assert (tok.bos_id, tok.eos_id) == (5, 7)


def test_tokenizer_json_errors(tmp):
    path = train_byte_level_tokenizer_json(tmp, SPECIALS, name="err.json")
    with pytest.raises(ValueError, match="no EOS token"):
        HuggingFaceBaseTokenizer(path)
    with pytest.raises(ValueError, match=r"eos_token='<nope>' is not in the tokenizer's vocabulary"):
        HuggingFaceBaseTokenizer(path, eos_token="<nope>")
    bad = tmp / "bad_config.json"
    bad.write_text('{"eos_token": ')
    with pytest.raises(ValueError, match=r"bad_config.json: invalid JSON in tokenizer config at line 1"):
        HuggingFaceBaseTokenizer(path, tokenizer_config_json_path=str(bad))


def test_split_special_tokens_prefers_longest():
    specials = {"<a>": 1, "<a><b>": 2}
    assert split_special_tokens("x<a><b>y<a>", specials) == ["x", 2, "y", 1]
    assert split_special_tokens("", specials) == []
