"""Row sources: local files, split slicing, Hugging Face datasets, and bad-input errors."""

import json
import sys
import types

import pytest

from torchtune.datasets import load_rows, parse_split

ROWS = [{"input": f"q{i}", "output": f"a{i}"} for i in range(10)]


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def test_json_array_and_json_lines(tmp_path):
    array = tmp_path / "data.json"
    array.write_text(json.dumps(ROWS))
    rows = load_rows("json", data_files=str(array))
    assert list(rows.rows) == ROWS and rows.where(3) == "data.json record 3"
    lines = _write_jsonl(tmp_path / "lines.json", ROWS)  # HF's "json" also reads JSON lines
    rows = load_rows("json", data_files=lines)
    assert list(rows.rows) == ROWS and rows.where(0) == "lines.json line 1"
    assert list(load_rows(lines).rows) == ROWS  # a path alone picks the format from its extension


def test_jsonl_skips_blank_lines_and_counts_lines(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2}\n')
    rows = load_rows("jsonl", data_files=str(path))
    assert [r["a"] for r in rows.rows] == [1, 2] and rows.where(1) == "d.jsonl line 3"


def test_csv(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text('input,output\nq0,a0\n"multi\nline",a1\n', encoding="utf-8")
    rows = load_rows(str(path))
    assert list(rows.rows) == [{"input": "q0", "output": "a0"}, {"input": "multi\nline", "output": "a1"}]
    assert rows.where(1) == "d.csv line 4"


def test_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tmp_path / "d.parquet"
    pq.write_table(pa.Table.from_pylist(ROWS), path)
    rows = load_rows("parquet", data_files=str(path))
    assert list(rows.rows) == ROWS and rows.where(2) == "d.parquet row 2"


def test_parquet_without_pyarrow_names_the_extra(tmp_path, monkeypatch):
    path = tmp_path / "d.parquet"
    path.write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'torchtune\[datasets\]'"):
        load_rows(str(path))


def test_text_sample_by(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("one\ntwo\n\nthree\n")
    assert [r["text"] for r in load_rows("text", data_files=str(path)).rows] == ["one", "two", "", "three"]
    assert [r["text"] for r in load_rows("text", data_files=str(path), sample_by="paragraph").rows] == [
        "one\ntwo", "three\n"]
    assert load_rows("text", data_files=str(path), sample_by="document").rows == [{"text": "one\ntwo\n\nthree\n"}]
    with pytest.raises(ValueError, match="sample_by='word' must be one of"):
        load_rows("text", data_files=str(path), sample_by="word")


@pytest.mark.parametrize(
    "split, expected",
    [("train", 10), ("train[:90%]", 9), ("train[90%:]", 1), ("train[2:5]", 3), ("train[-2:]", 2)],
)
def test_split_slices(tmp_path, split, expected):
    rows = load_rows("jsonl", data_files=_write_jsonl(tmp_path / "d.jsonl", ROWS), split=split)
    assert len(rows) == expected
    if split == "train[90%:]":
        assert rows[0] == ROWS[9] and rows.where(0) == "d.jsonl line 10"


def test_split_from_dict_of_files_and_several_files(tmp_path):
    train = _write_jsonl(tmp_path / "train.jsonl", ROWS[:6])
    val = _write_jsonl(tmp_path / "val.jsonl", ROWS[6:])
    assert list(load_rows("jsonl", data_files={"train": train, "validation": val}, split="validation").rows) == ROWS[6:]
    assert len(load_rows("jsonl", data_files=[train, val])) == 10
    with pytest.raises(ValueError, match=r"split 'test' is not in data_files; available: \['train', 'validation'\]"):
        load_rows("jsonl", data_files={"train": train, "validation": val}, split="test")
    with pytest.raises(ValueError, match="split 'validation' needs data_files as a dict"):
        load_rows("jsonl", data_files=train, split="validation")


def test_bad_split_spec():
    with pytest.raises(ValueError, match=r"split='train\[a:b\]' must look like"):
        parse_split("train[a:b]")


def test_invalid_json_names_file_line_and_column(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"a": 1}\n{"a": 2}\n{"a": 3,,}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl line 3 column 9: invalid JSON: .*one JSON object per line"):
        load_rows(str(path))
    array = tmp_path / "bad.json"
    array.write_text('[\n {"a": 1},\n {"a": }\n]')
    with pytest.raises(ValueError, match=r"bad.json line 3 column 8: invalid JSON"):
        load_rows(str(array))


def test_record_not_an_object(tmp_path):
    path = tmp_path / "d.json"
    path.write_text('[{"a": 1}, [1, 2]]')
    with pytest.raises(ValueError, match=r"d.json record 1: expected a JSON object \(a record\), got list"):
        load_rows(str(path))


def test_csv_wrong_number_of_fields(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("input,output\nq0,a0\nq1\n")
    with pytest.raises(ValueError, match=r"d.csv line 3: expected 2 fields \['input', 'output'\], got 1"):
        load_rows(str(path))


def test_missing_files_and_missing_data_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="data file not found: .*nope.jsonl"):
        load_rows(str(tmp_path / "nope.jsonl"))
    with pytest.raises(ValueError, match="source='csv' reads local files: pass data_files="):
        load_rows("csv")


def test_hub_dataset_through_datasets(monkeypatch):
    calls = []
    fake = types.ModuleType("datasets")
    fake.load_dataset = lambda source, **kw: calls.append((source, kw)) or [{"text": "x"}, {"text": "y"}]
    monkeypatch.setitem(sys.modules, "datasets", fake)
    rows = load_rows("org/name", split="train[:50%]", name="cfg")
    assert calls == [("org/name", {"data_files": None, "split": "train[:50%]", "name": "cfg"})]
    assert rows[1] == {"text": "y"} and rows.where(1) == "dataset 'org/name' split 'train[:50%]' row 1"


def test_hub_dataset_without_datasets_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'torchtune\[datasets\]'"):
        load_rows("tatsu-lab/alpaca")


def test_hub_dataset_without_the_datasets_extra_is_one_config_error(monkeypatch):
    import sys

    from torchtune.config import ConfigError
    from torchtune.datasets import check_local_data_files

    monkeypatch.setitem(sys.modules, "datasets", None)  # as if not installed
    cfg = {"dataset": {"_component_": "torchtune.datasets.alpaca_dataset", "source": "tatsu-lab/alpaca"}}
    with pytest.raises(ConfigError) as info:
        check_local_data_files(cfg)
    assert str(info.value) == ("dataset.source='tatsu-lab/alpaca' is a Hugging Face Hub dataset, but 'datasets' is "
                               "not installed; it comes with the 'datasets' extra: pip install 'torchtune[datasets]'")
    with pytest.raises(ConfigError, match=r"^dataset.source='yahma/alpaca-cleaned' is a Hugging Face Hub dataset"):
        check_local_data_files({"dataset": {"_component_": "torchtune.datasets.alpaca_cleaned_dataset"}})  # its default
    check_local_data_files({"dataset": {"source": "json", "data_files": __file__}})  # local: no extra needed
