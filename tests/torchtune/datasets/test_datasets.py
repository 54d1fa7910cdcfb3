"""Dataset builders and built-ins on local files, with every bad-input error path."""

import csv
import json
import logging
import sys
import types

import pytest
import torch

from tests.assets.tiny_tokenizers import train_byte_level_tokenizer_json
from torchtune.data import (
    CROSS_ENTROPY_IGNORE_IDX,
    AlpacaInstructTemplate,
    Message,
    PackedDataset,
    labels_from_tokens,
    padded_collate_dpo,
    padded_collate_packed,
    padded_collate_sft,
)
from torchtune.config import DictConfig
from torchtune.datasets import (
    alpaca_cleaned_dataset,
    alpaca_dataset,
    build_preference_data,
    chat_dataset,
    instruct_dataset,
    preference_dataset,
    samsum_dataset,
    slimorca_dataset,
    text_completion_dataset,
    wikitext_dataset,
)
from torchtune.models.qwen2_5 import Qwen2_5Tokenizer

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


@pytest.fixture(scope="module")
def tok_path(tmp_path_factory):
    return train_byte_level_tokenizer_json(tmp_path_factory.mktemp("tok"), SPECIALS)


@pytest.fixture
def tok(tok_path):
    return Qwen2_5Tokenizer(tok_path, max_seq_len=256, default_system_prompt=None)


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def _expected(tok, messages):
    tokens, mask = tok.tokenize_messages(messages)
    return tokens, labels_from_tokens(tokens, mask)


def test_instruct_dataset_tokens_and_labels(tmp_path, tok):
    path = _jsonl(tmp_path / "d.jsonl", [{"prompt": "What is 2+2?", "answer": "4"}, {"prompt": "Hi", "answer": "Hé"}])
    ds = instruct_dataset(tok, source="jsonl", data_files=path, column_map={"input": "prompt", "output": "answer"})
    assert len(ds) == 2
    tokens, labels = _expected(tok, [Message("user", "Hi", masked=True), Message("assistant", "Hé")])
    assert ds[1]["tokens"].tolist() == tokens and ds[1]["labels"].tolist() == labels
    batch = padded_collate_sft([ds[0], ds[1]], padding_idx=tok.pad_id)
    assert batch["tokens"].shape == batch["labels"].shape and batch["tokens"].dtype == torch.long
    # the prompt is masked: the first trainable label is the first assistant-turn token
    assert (batch["labels"][1] != CROSS_ENTROPY_IGNORE_IDX).sum() < len(tokens)


@pytest.mark.parametrize("style", ["sharegpt", "openai"])
def test_chat_dataset(tmp_path, tok, style):
    turns = [("user", "Hello"), ("assistant", "Hi there"), ("user", "Bye"), ("assistant", "Ciao")]
    if style == "sharegpt":
        row = {"conversations": [{"from": "human" if r == "user" else "gpt", "value": c} for r, c in turns]}
    else:
        row = {"messages": [{"role": r, "content": c} for r, c in turns]}
    ds = chat_dataset(tok, source="json", data_files=_jsonl(tmp_path / "c.json", [row]), conversation_style=style,
                      masking_strategy="train_on_last")
    messages = [Message(r, c, masked=i != 3) for i, (r, c) in enumerate(turns)]
    tokens, labels = _expected(tok, messages)
    assert ds[0]["tokens"].tolist() == tokens and ds[0]["labels"].tolist() == labels


def test_chat_dataset_unknown_style(tmp_path, tok):
    with pytest.raises(ValueError, match=r"conversation_style='vicuna' must be one of \['sharegpt', 'openai'\]"):
        chat_dataset(tok, source="json", data_files="x.json", conversation_style="vicuna")


def test_text_completion_dataset(tmp_path, tok):
    path = tmp_path / "t.txt"
    path.write_text("first line\nsecond line ünïcode\n")
    ds = text_completion_dataset(tok, source="text", data_files=str(path))
    tokens = tok.encode("second line ünïcode", add_bos=True, add_eos=True)
    assert ds[1]["tokens"].tolist() == tokens
    assert ds[1]["labels"].tolist() == tokens[1:] + [CROSS_ENTROPY_IGNORE_IDX]


def test_preference_dataset_and_dpo_collate(tmp_path, tok):
    prompt = [{"role": "user", "content": "Pick a colour"}]
    row = {"chosen": prompt + [{"role": "assistant", "content": "Blue"}],
           "rejected": prompt + [{"role": "assistant", "content": "No"}]}
    ds = preference_dataset(tok, source="jsonl", data_files=_jsonl(tmp_path / "p.jsonl", [row, row]))
    tokens, labels = _expected(tok, [Message("user", "Pick a colour", masked=True), Message("assistant", "Blue")])
    assert ds[0]["chosen_input_ids"].tolist() == tokens and ds[0]["chosen_labels"].tolist() == labels
    batch = padded_collate_dpo([ds[0], ds[1]], padding_idx=tok.pad_id)
    assert batch["tokens"].shape[0] == 4


def test_preference_dataset_prompt_and_string_answers(tmp_path, tok):
    rows = [{"q": "Pick a colour", "good": "Blue", "bad": "No"}]
    ds = preference_dataset(tok, source="jsonl", data_files=_jsonl(tmp_path / "p.jsonl", rows),
                            column_map={"prompt": "q", "chosen": "good", "rejected": "bad"})
    for key, answer in (("chosen", "Blue"), ("rejected", "No")):
        tokens, labels = _expected(tok, [Message("user", "Pick a colour", masked=True), Message("assistant", answer)])
        assert ds[0][f"{key}_input_ids"].tolist() == tokens and ds[0][f"{key}_labels"].tolist() == labels


def test_build_preference_data_collates_pairs_and_rejects_sft_data(tmp_path, tok):
    pairs = _jsonl(tmp_path / "p.jsonl", [{"prompt": "a", "chosen": "b", "rejected": "c"}] * 2)
    node = DictConfig({"_component_": "torchtune.datasets.preference_dataset", "source": "json", "data_files": pairs})
    ds, collate = build_preference_data(node, tok, padding_free=True)
    batch = collate([ds[0], ds[1]])
    assert batch["tokens"].shape[0] == 1 and batch["sequence_ids"].max() == 3  # 2 chosen, then 2 rejected
    instructions = _jsonl(tmp_path / "i.jsonl", [{"input": "a", "output": "b"}])
    sft = DictConfig({"_component_": "torchtune.datasets.instruct_dataset", "source": "json", "data_files": instructions})
    with pytest.raises(ValueError, match=r"dataset 'torchtune.datasets.instruct_dataset' gives samples with keys "
                                         r"\['labels', 'tokens'\], not preference pairs"):
        build_preference_data(sft, tok, padding_free=False)


def test_preference_dataset_bad_rows_name_file_row_and_field(tmp_path, tok, tok_path):
    rows = [{"prompt": "a", "chosen": "b", "rejected": "c"}, {"prompt": "a", "chosen": "b"}]
    with pytest.raises(ValueError, match=r"p.jsonl line 2: missing field 'rejected'"):
        preference_dataset(tok, source="jsonl", data_files=_jsonl(tmp_path / "p.jsonl", rows))
    # a prompt longer than max_seq_len leaves the answer nothing to score
    short = Qwen2_5Tokenizer(tok_path, max_seq_len=4, default_system_prompt=None)
    long_prompt = [{"prompt": "a b c d e f g h i j k l m n o p", "chosen": "b", "rejected": "c"}]
    with pytest.raises(ValueError, match=r"q.jsonl line 1: the chosen answer has no tokens left to score .*max_seq_len=4"):
        preference_dataset(short, source="jsonl", data_files=_jsonl(tmp_path / "q.jsonl", long_prompt))


def test_alpaca_builtins_read_local_files(tmp_path, tok):
    rows = [{"instruction": "Add.", "input": "2 and 2", "output": "4"}, {"instruction": "Hi?", "input": "", "output": "Hi"}]
    path = tmp_path / "alpaca.json"
    path.write_text(json.dumps(rows))
    for builder in (alpaca_dataset, alpaca_cleaned_dataset):
        ds = builder(tok, source="json", data_files=str(path))
        prompt = AlpacaInstructTemplate.format("Add.", "2 and 2")
        tokens, labels = _expected(tok, [Message("user", prompt, masked=True), Message("assistant", "4")])
        assert ds[0]["tokens"].tolist() == tokens and ds[0]["labels"].tolist() == labels


def test_alpaca_default_source_is_the_hub(monkeypatch, tok):
    calls = []
    fake = types.ModuleType("datasets")
    fake.load_dataset = lambda source, **kw: calls.append((source, kw)) or [
        {"instruction": "a", "input": "", "output": "b"}]
    monkeypatch.setitem(sys.modules, "datasets", fake)
    assert len(alpaca_dataset(tok)) == 1
    assert calls == [("tatsu-lab/alpaca", {"data_files": None, "split": "train"})]


def test_slimorca_samsum_wikitext_local(tmp_path, tok):
    conv = {"conversations": [{"from": "system", "value": "s"}, {"from": "human", "value": "q"},
                              {"from": "gpt", "value": "a"}]}
    assert len(slimorca_dataset(tok, source="jsonl", data_files=_jsonl(tmp_path / "s.jsonl", [conv]))) == 1
    samsum = tmp_path / "samsum.csv"
    with open(samsum, "w", newline="") as f:
        csv.writer(f).writerows([["id", "dialogue", "summary"], ["1", "A: hi\nB: hello", "They greet."]])
    ds = samsum_dataset(tok, source=str(samsum))
    user = "Summarize this dialogue:\nA: hi\nB: hello\n---\nSummary:\n"
    tokens, _ = _expected(tok, [Message("user", user, masked=True), Message("assistant", "They greet.")])
    assert ds[0]["tokens"].tolist() == tokens
    text = tmp_path / "wiki.txt"
    text.write_text("= Title =\nSome page text.\n")
    assert len(wikitext_dataset(tok, source="text", data_files=str(text), column="text")) == 2


def test_validation_split(tmp_path, tok):
    rows = [{"input": f"q{i}", "output": f"a{i}"} for i in range(10)]
    path = _jsonl(tmp_path / "d.jsonl", rows)
    train = instruct_dataset(tok, source="jsonl", data_files=path, split="train[:80%]")
    val = instruct_dataset(tok, source="jsonl", data_files=path, split="train[80%:]")
    assert (len(train), len(val)) == (8, 2)
    assert val[0]["tokens"].tolist() == _expected(tok, [Message("user", "q8", masked=True), Message("assistant", "a8")])[0]


def test_packed_option(tmp_path, tok_path):
    tok = Qwen2_5Tokenizer(tok_path, max_seq_len=128, default_system_prompt=None)
    rows = [{"input": f"question {i}", "output": "answer " * (i % 4 + 1)} for i in range(12)]
    path = _jsonl(tmp_path / "d.jsonl", rows)
    packed = instruct_dataset(tok, source="jsonl", data_files=path, packed=True)
    unpacked = instruct_dataset(tok, source="jsonl", data_files=path)
    assert isinstance(packed, PackedDataset) and len(packed) < len(unpacked)
    batch = padded_collate_packed([packed[0], packed[1]])
    assert batch["tokens"].shape == (2, 128) and batch["mask"].dense().shape == (2, 128, 128)
    n0, n1 = len(unpacked[0]["tokens"]), len(unpacked[1]["tokens"])
    assert packed[0]["seq_lens"][:2].tolist() == [n0, n1]
    assert packed[0]["tokens"][n0:n0 + n1].tolist() == unpacked[1]["tokens"].tolist()
    assert packed[0]["labels"][n0:n0 + n1].tolist() == unpacked[1]["labels"].tolist()
    tok.max_seq_len = None
    with pytest.raises(ValueError, match="packed=True needs the tokenizer's max_seq_len"):
        instruct_dataset(tok, source="jsonl", data_files=path, packed=True)


# ----------------------------------------------------------------------------- bad input


def test_missing_column_names_file_line_and_field(tmp_path, tok):
    path = _jsonl(tmp_path / "d.jsonl", [{"input": "a", "output": "b"}, {"input": "c"}])
    with pytest.raises(ValueError, match=r"d.jsonl line 2: missing field 'output' \(expected a str\)"):
        instruct_dataset(tok, source="jsonl", data_files=path)


def test_wrong_type_names_file_row_and_field(tmp_path, tok):
    path = tmp_path / "d.json"
    path.write_text(json.dumps([{"input": "a", "output": "b"}, {"input": "c", "output": 7}]))
    with pytest.raises(ValueError, match=r"d.json record 1: field 'output' must be a str, got int"):
        instruct_dataset(tok, source="json", data_files=str(path))


def test_roles_out_of_order(tmp_path, tok):
    row = {"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}
    path = _jsonl(tmp_path / "c.jsonl", [row])
    with pytest.raises(ValueError, match=r"c.jsonl line 1: field 'messages': message 1 has role 'user' right after another 'user'"):
        chat_dataset(tok, source="jsonl", data_files=path, conversation_style="openai")


def test_invalid_json_line(tmp_path, tok):
    path = tmp_path / "d.jsonl"
    path.write_text('{"input": "a", "output": "b"}\n{"input": "a" "output": "b"}\n')
    with pytest.raises(ValueError, match=r"d.jsonl line 2 column 15: invalid JSON"):
        instruct_dataset(tok, source="jsonl", data_files=str(path))


def test_truncation_warns_once_with_count(tmp_path, tok_path, caplog):
    tok = Qwen2_5Tokenizer(tok_path, max_seq_len=30, default_system_prompt=None)
    rows = [{"input": "short", "output": "ok"}] + [{"input": "long " * 20, "output": "x " * 20}] * 3
    with caplog.at_level(logging.WARNING, logger="torchtune.datasets._base"):
        ds = instruct_dataset(tok, source="jsonl", data_files=_jsonl(tmp_path / "d.jsonl", rows))
    warnings = [r for r in caplog.records if "truncated" in r.getMessage()]
    assert len(warnings) == 1
    assert "3 of 4 samples from" in warnings[0].getMessage() and "max_seq_len" in warnings[0].getMessage()
    assert all(len(ds[i]["tokens"]) <= 30 for i in range(len(ds))) and len(ds[1]["tokens"]) == 30
    assert ds[1]["tokens"][-1] == tok.eos_id  # a truncated sample still ends the turn


def test_empty_after_filter(tmp_path, tok):
    path = _jsonl(tmp_path / "d.jsonl", [{"input": "a", "output": "b"}])
    with pytest.raises(ValueError, match=r"is empty after filtering: 1 rows loaded, none kept"):
        instruct_dataset(tok, source="jsonl", data_files=path, filter_fn=lambda row: False)
    kept = instruct_dataset(tok, source="jsonl", data_files=path, filter_fn=lambda row: row["input"] == "a")
    assert len(kept) == 1
