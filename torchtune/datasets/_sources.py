"""Row sources: local JSON / JSONL / CSV / Parquet / text files, or any Hugging Face dataset.

Every source yields ``Rows``: indexable dict rows plus ``where(i)``, a human-readable location
("data.jsonl line 7") used in error messages.
"""

import csv
import importlib
import inspect
import json
import logging
import os
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from torchtune.config import ConfigError
from torchtune.utils import require

logger = logging.getLogger(__name__)

LOCAL_FORMATS = ("json", "jsonl", "csv", "parquet", "text")
_EXTENSIONS = {".json": "json", ".jsonl": "jsonl", ".csv": "csv", ".parquet": "parquet", ".txt": "text"}
_SPLIT = re.compile(r"^(?P<name>\w+)(?:\[(?P<start>-?\d+%?)?:(?P<end>-?\d+%?)?\])?$")


@dataclass
class Rows:
    """Rows of a dataset and where each came from.

    Attributes:
        rows (Sequence[Mapping[str, Any]]): the rows.
        locations (Sequence[str] | Callable[[int], str]): per-row location text.
        name (str): the source's name, for messages.
    """

    rows: Sequence[Mapping[str, Any]]
    locations: Sequence[str] | Callable[[int], str]
    name: str

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> Mapping[str, Any]:
        return self.rows[i]

    def where(self, i: int) -> str:
        """Location of row ``i``, e.g. ``"train.jsonl line 3"``."""
        return self.locations(i) if callable(self.locations) else self.locations[i]


def _read_json(path: str) -> tuple[list[Any], list[str]]:
    with open(path, encoding="utf-8") as f:
        text = f.read()
    name = os.path.basename(path)
    if text.lstrip().startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} line {e.lineno} column {e.colno}: invalid JSON: {e.msg}") from None
        return records, [f"{name} record {i}" for i in range(len(records))]
    return _read_jsonl(path)


def _read_jsonl(path: str) -> tuple[list[Any], list[str]]:
    records, where = [], []
    name = os.path.basename(path)
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(
                    f"{path} line {lineno} column {e.colno}: invalid JSON: {e.msg} "
                    "(expected one JSON object per line)"
                ) from None
            where.append(f"{name} line {lineno}")
    return records, where


def _read_csv(path: str, **kwargs: Any) -> tuple[list[Any], list[str]]:
    records, where = [], []
    name = os.path.basename(path)
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, **kwargs)
        for row in reader:
            if None in row or None in row.values():
                got = len(reader.fieldnames) + len(row.get(None, [])) - sum(v is None for v in row.values())
                raise ValueError(
                    f"{path} line {reader.line_num}: expected {len(reader.fieldnames)} fields "
                    f"{reader.fieldnames}, got {got}"
                )
            records.append(row)
            where.append(f"{name} line {reader.line_num}")
    return records, where


def _read_parquet(path: str) -> tuple[list[Any], list[str]]:
    parquet = require("pyarrow.parquet", extra="datasets")
    records = parquet.read_table(path).to_pylist()
    name = os.path.basename(path)
    return records, [f"{name} row {i}" for i in range(len(records))]


def _read_text(path: str, sample_by: str = "line") -> tuple[list[Any], list[str]]:
    with open(path, encoding="utf-8") as f:
        text = f.read()
    name = os.path.basename(path)
    if sample_by == "document":
        return [{"text": text}], [name]
    if sample_by == "paragraph":
        paragraphs = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
        return [{"text": p} for p in paragraphs], [f"{name} paragraph {i}" for i in range(len(paragraphs))]
    if sample_by != "line":
        raise ValueError(f"sample_by={sample_by!r} must be one of 'line', 'paragraph', 'document'")
    lines = text.splitlines()
    return [{"text": line} for line in lines], [f"{name} line {i + 1}" for i in range(len(lines))]


def _read_file(path: str, fmt: str, **kwargs: Any) -> tuple[list[Any], list[str]]:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"data file not found: {path}")
    if fmt == "json":
        records, where = _read_json(path)
    elif fmt == "jsonl":
        records, where = _read_jsonl(path)
    elif fmt == "csv":
        records, where = _read_csv(path, **kwargs)
    elif fmt == "parquet":
        records, where = _read_parquet(path)
    else:
        records, where = _read_text(path, **kwargs)
    for record, location in zip(records, where):
        if not isinstance(record, dict):
            raise ValueError(f"{location}: expected a JSON object (a record), got {type(record).__name__}")
    return records, where


def _slice(n: int, spec: str | None, default: int) -> int:
    if spec is None:
        return default
    if spec.endswith("%"):
        return round(n * int(spec[:-1]) / 100)
    value = int(spec)
    return max(0, n + value) if value < 0 else min(value, n)


def parse_split(split: str) -> tuple[str, str | None, str | None]:
    """Parse ``"train"``, ``"train[:90%]"``, ``"train[90%:]"`` or ``"validation[10:200]"``.

    Returns:
        tuple[str, str | None, str | None]: split name, start and end specs.

    Raises:
        ValueError: if ``split`` does not have that form.
    """
    match = _SPLIT.match(split.replace(" ", ""))
    if match is None:
        raise ValueError(f"split={split!r} must look like 'train', 'train[:90%]' or 'train[100:200]'")
    return match["name"], match["start"], match["end"]


def _local_files(source: str, data_files: Any, split_name: str) -> tuple[str, list[str]]:
    fmt = source if source in LOCAL_FORMATS else _EXTENSIONS.get(os.path.splitext(source)[1].lower())
    if source not in LOCAL_FORMATS:
        data_files = source
    if data_files is None:
        raise ValueError(f"source={source!r} reads local files: pass data_files= (a path, a list, or a dict of splits)")
    if isinstance(data_files, Mapping):
        if split_name not in data_files:
            raise ValueError(f"split {split_name!r} is not in data_files; available: {sorted(data_files)}")
        data_files = data_files[split_name]
    elif split_name != "train":
        raise ValueError(
            f"split {split_name!r} needs data_files as a dict {{split: path}}; a plain path is the 'train' split"
        )
    files = [data_files] if isinstance(data_files, (str, os.PathLike)) else list(data_files)
    return fmt, [str(f) for f in files]


def load_rows(
    source: str, *, data_files: Any = None, split: str = "train", **load_kwargs: Any
) -> Rows:
    """Load dataset rows from local files or the Hugging Face Hub.

    Local: ``source`` is a format (``json`` (array or JSON lines), ``jsonl``, ``csv``,
    ``parquet``, ``text``) with ``data_files``, or a path to a file with one of the extensions
    .json/.jsonl/.csv/.parquet/.txt. Anything else is passed to
    ``datasets.load_dataset(source, data_files=..., split=..., **load_kwargs)``.

    Args:
        source (str): format name, local file path, or Hugging Face dataset id/builder.
        data_files (Any): path, list of paths, or ``{split: path(s)}``. Default None.
        split (str): split name with an optional slice, e.g. ``"train[:90%]"`` for training and
            ``"train[90%:]"`` for validation. Default ``"train"``.
        **load_kwargs: extra arguments (``sample_by`` for text, csv reader options, or
            ``load_dataset`` arguments such as ``name``).

    Returns:
        Rows: the rows with their locations.

    Raises:
        ValueError: on malformed files (naming file and line), bad split specs, missing files.
        ModuleNotFoundError: for a Hub dataset when ``datasets`` is not installed.
    """
    name, start, end = parse_split(split)
    if source in LOCAL_FORMATS or os.path.splitext(str(source))[1].lower() in _EXTENSIONS:
        fmt, files = _local_files(source, data_files, name)
        records, where = [], []
        for path in files:
            r, w = _read_file(path, fmt, **load_kwargs)
            records += r
            where += w
        lo, hi = _slice(len(records), start, 0), _slice(len(records), end, len(records))
        return Rows(records[lo:hi], where[lo:hi], name=", ".join(files))
    datasets = require("datasets", extra="datasets")
    ds = datasets.load_dataset(source, data_files=data_files, split=split, **load_kwargs)
    return Rows(ds, lambda i: f"dataset {source!r} split {split!r} row {i}", name=source)


def local_data_files(node: Any) -> list[str]:
    """The local files a dataset config node names: every ``data_files`` entry, and ``source``
    when it is a path with a data-file suffix (``.json``, ``.jsonl``, ``.csv``, ``.parquet``, ``.txt``).

    Args:
        node (Any): a dataset node (mapping with ``get``), or anything else (no files).

    Returns:
        list[str]: the paths, in config order.
    """
    if not hasattr(node, "get"):
        return []
    files = []
    for key in ("data_files", "source"):
        value = node.get(key)
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, str) and (key == "data_files" or os.path.splitext(v)[1] in _EXTENSIONS):
                files.append(v)
    return files


def _default_source(component: str) -> Any:
    """The default ``source`` of a dataset builder named by its import path (None if unknown)."""
    module, _, name = component.rpartition(".")
    try:
        builder = getattr(importlib.import_module(module), name)
        return inspect.signature(builder).parameters["source"].default
    except (ImportError, AttributeError, KeyError, TypeError, ValueError):
        return None  # config validation reports a bad component


def check_local_data_files(cfg: Any, keys: Sequence[str] = ("dataset", "dataset_val")) -> None:
    """Stop before any work when a dataset node of ``cfg`` names a local file that does not exist,
    or a Hugging Face Hub dataset (or parquet files) without the ``datasets`` extra installed.

    Args:
        cfg (Any): the recipe config.
        keys (Sequence[str]): the dataset nodes to check. Default ``("dataset", "dataset_val")``.

    Raises:
        ConfigError: naming the key, the missing file (or package) and the fix.
    """
    for key in keys:
        node = cfg.get(key)
        source = node.get("source") if hasattr(node, "get") else None
        if source is None and hasattr(node, "get") and isinstance(node.get("_component_"), str):
            source = _default_source(node["_component_"])  # e.g. alpaca_cleaned_dataset's Hub id
        needs = None
        if isinstance(source, str) and source not in LOCAL_FORMATS and os.path.splitext(source)[1].lower() not in _EXTENSIONS:
            needs = ("datasets", f"{key}.source={source!r} is a Hugging Face Hub dataset")
        elif source == "parquet" or any(str(f).endswith(".parquet") for f in local_data_files(node)):
            needs = ("pyarrow.parquet", f"{key} reads parquet files")
        if needs is not None:
            try:
                require(needs[0], extra="datasets")
            except ModuleNotFoundError as e:
                raise ConfigError(f"{needs[1]}, but {e}") from None
        for path in local_data_files(node):
            if not os.path.exists(path):
                raise ConfigError(
                    f"{key} file {path!r} does not exist; fix the path with {key}.data_files=<file> "
                    f"(or {key}.source=<file>)"
                )
