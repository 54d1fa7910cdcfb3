"""prompt_dataset: prompts tokenized for generation, answers, column_map, and bad rows named."""

import json

import pytest

from tests.assets.tiny_tokenizers import train_byte_level_tokenizer_json
from torchtune.data import Message
from torchtune.datasets import PromptDataset, prompt_dataset
from torchtune.models.qwen2_5 import Qwen2_5Tokenizer

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


@pytest.fixture(scope="module")
def tok():
    import tempfile
    from pathlib import Path

    path = train_byte_level_tokenizer_json(Path(tempfile.mkdtemp()), SPECIALS)
    return Qwen2_5Tokenizer(path, max_seq_len=64, default_system_prompt=None)


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def test_prompts_end_with_the_assistant_header_and_keep_answers(tmp_path, tok):
    rows = [{"prompt": "What is 2+2?", "answer": "4"}, {"prompt": "Count: a b c", "answer": 3}]
    ds = prompt_dataset(tok, source="jsonl", data_files=_jsonl(tmp_path / "p.jsonl", rows))
    assert isinstance(ds, PromptDataset) and len(ds) == 2
    want, _ = tok.tokenize_messages([Message("user", "What is 2+2?")], add_end_tokens=False)
    assert ds[0]["tokens"].tolist() == want
    assert tok.decode(want, skip_special_tokens=False).endswith("<|im_start|>assistant\n")  # ready to generate
    assert (ds[0]["prompt"], ds[0]["answer"]) == ("What is 2+2?", "4")
    assert ds[1]["answer"] == "3"  # numbers become their text
    assert ds.locations == ["p.jsonl line 1", "p.jsonl line 2"]


def test_column_map_system_prompt_and_message_list_prompts(tmp_path, tok):
    rows = [{"question": [{"role": "user", "content": "Name a colour"}], "solution": "blue"}]
    ds = prompt_dataset(tok, source="jsonl", data_files=_jsonl(tmp_path / "q.jsonl", rows),
                        column_map={"prompt": "question", "answer": "solution"}, system_prompt="Be brief.")
    want, _ = tok.tokenize_messages([Message("system", "Be brief."), Message("user", "Name a colour")],
                                    add_end_tokens=False)
    assert ds[0]["tokens"].tolist() == want and ds[0]["answer"] == "blue"
    no_answers = prompt_dataset(tok, source="jsonl", data_files=_jsonl(tmp_path / "r.jsonl", [{"prompt": "Hi"}]),
                                column_map={"answer": None})
    assert no_answers[0]["answer"] is None


@pytest.mark.parametrize("row, message", [
    ({"prompt": "Hi"}, r"p.jsonl line 2: missing field 'answer'"),
    ({"prompt": "Hi", "answer": ["4"]}, r"p.jsonl line 2: field 'answer' must be a str or int or float, got list"),
    ({"prompt": "  ", "answer": "4"}, r"p.jsonl line 2: field 'prompt' is empty"),
    ({"prompt": [{"role": "user"}], "answer": "4"}, r"p.jsonl line 2: field 'prompt' message 0 must be a"),
    ({"prompt": "word " * 80, "answer": "4"},
     r"p.jsonl line 2: the prompt is longer than the tokenizer's max_seq_len=64"),
])
def test_bad_rows_name_file_row_and_field(tmp_path, tok, row, message):
    path = _jsonl(tmp_path / "p.jsonl", [{"prompt": "ok", "answer": "1"}, row])
    with pytest.raises(ValueError, match=message):
        prompt_dataset(tok, source="jsonl", data_files=path)


def test_unknown_column_map_key(tok):
    with pytest.raises(ValueError, match=r"column_map has unknown keys \['solution'\]"):
        prompt_dataset(tok, source="jsonl", data_files="x.jsonl", column_map={"solution": "a"})
