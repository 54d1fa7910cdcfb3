"""Eagerly tokenized datasets: SFT, text completion, preference pairs and prompts with answers."""

import logging
from typing import Any, Callable, Mapping

import numpy as np
from torch.utils.data import Dataset

from torchtune.data import CROSS_ENTROPY_IGNORE_IDX, Message, get_field, labels_from_tokens
from torchtune.datasets._sources import Rows, load_rows
from torchtune.modules.tokenizers import ModelTokenizer

logger = logging.getLogger(__name__)

Transform = Callable[[Mapping[str, Any]], dict[str, Any]]


def _array(values: Any) -> np.ndarray:
    return np.asarray(values, dtype=np.int64)


class TokenizedDataset(Dataset):
    """Rows loaded from a source, filtered, and turned into samples once at construction.

    A row that fails its transforms raises ``ValueError`` naming its location (file and line
    or row) and the underlying problem. Samples cut to ``max_seq_len`` are counted and
    reported in one warning. An empty result raises. ``locations[i]`` says where sample ``i``
    came from (e.g. ``"data.jsonl line 7"``).

    Args:
        source (str): see ``load_rows``.
        filter_fn (Callable[[Mapping], bool] | None): keep rows for which it returns True.
        split (str): split spec. Default ``"train"``.
        data_files (Any): local files. Default None.
        **load_kwargs: passed to ``load_rows``.
    """

    def __init__(
        self,
        *,
        source: str,
        filter_fn: Callable[[Mapping[str, Any]], bool] | None = None,
        split: str = "train",
        data_files: Any = None,
        **load_kwargs: Any,
    ) -> None:
        rows = load_rows(source, data_files=data_files, split=split, **load_kwargs)
        self._samples: list[dict[str, np.ndarray]] = []
        self.locations: list[str] = []
        self.num_truncated = 0
        kept = self._build(rows, filter_fn)
        if self.num_truncated:
            logger.warning(
                "%d of %d samples from %s were longer than max_seq_len and were truncated",
                self.num_truncated, kept, rows.name,
            )
        if not self._samples:
            raise ValueError(
                f"dataset {rows.name!r} (split {split!r}) is empty after filtering: "
                f"{len(rows)} rows loaded, none kept"
            )

    def _build(self, rows: Rows, filter_fn: Callable[[Mapping[str, Any]], bool] | None) -> int:
        kept = 0
        for i in range(len(rows)):
            row = rows[i]
            if filter_fn is not None and not filter_fn(row):
                continue
            kept += 1
            try:
                sample = self.prepare(row)
            except (ValueError, KeyError, TypeError) as e:
                raise ValueError(f"{rows.where(i)}: {e}") from e
            self.num_truncated += int(sample.pop("truncated", False))
            self._samples.append(sample)
            self.locations.append(rows.where(i))
        return kept

    def prepare(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """Turn one row into a sample (subclasses)."""
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self._samples)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        return self._samples[index]


class SFTDataset(TokenizedDataset):
    """Supervised fine-tuning samples: row -> messages -> tokens/mask -> shifted labels.

    Args:
        source (str): see ``load_rows``.
        message_transform (Transform): row -> ``{"messages": [Message, ...]}``.
        model_transform (Transform): a model tokenizer: reads ``messages``, adds ``tokens``,
            ``mask`` (and ``truncated``).
        filter_fn (Callable | None): row filter, applied before the transforms.
        split (str): split spec. Default ``"train"``.
        data_files (Any): local files. Default None.
        **load_kwargs: passed to ``load_rows``.

    Samples are ``{"tokens": int64 [s], "labels": int64 [s]}`` with labels already shifted.
    """

    def __init__(self, *, source: str, message_transform: Transform, model_transform: Transform, **kwargs: Any):
        self._message_transform = message_transform
        self._model_transform = model_transform
        super().__init__(source=source, **kwargs)

    def prepare(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """Transform and tokenize one row."""
        out = self._model_transform(self._message_transform(row))
        labels = labels_from_tokens(out["tokens"], out["mask"])
        return {"tokens": _array(out["tokens"]), "labels": _array(labels), "truncated": out.get("truncated", False)}


class TextCompletionDataset(TokenizedDataset):
    """Unstructured text for continued pre-training: every token is a target.

    Args:
        source (str): see ``load_rows``.
        tokenizer (ModelTokenizer): has ``encode(text, add_bos, add_eos)`` and ``max_seq_len``.
        column (str): the text column. Default ``"text"``.
        add_eos (bool): append EOS to every sample. Default True.
        **kwargs: ``filter_fn``, ``split``, ``data_files`` and ``load_rows`` arguments.
    """

    def __init__(self, *, source: str, tokenizer: ModelTokenizer, column: str = "text", add_eos: bool = True, **kwargs: Any):
        self._tokenizer, self._column, self._add_eos = tokenizer, column, add_eos
        super().__init__(source=source, **kwargs)

    def prepare(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """Tokenize one row's text."""
        tokens = self._tokenizer.encode(get_field(row, self._column), add_bos=True, add_eos=self._add_eos)
        max_len = getattr(self._tokenizer, "max_seq_len", None)
        truncated = max_len is not None and len(tokens) > max_len
        tokens = tokens[:max_len] if truncated else tokens
        labels = tokens[1:] + [CROSS_ENTROPY_IGNORE_IDX]
        return {"tokens": _array(tokens), "labels": _array(labels), "truncated": truncated}


class PreferenceDataset(TokenizedDataset):
    """Chosen/rejected pairs for DPO-style training.

    Args:
        source (str): see ``load_rows``.
        message_transform (Transform): row -> ``{"chosen": [...], "rejected": [...]}``.
        tokenizer (ModelTokenizer): a model tokenizer with ``tokenize_messages`` and ``max_seq_len``.
        **kwargs: ``filter_fn``, ``split``, ``data_files`` and ``load_rows`` arguments.

    Samples hold ``chosen_input_ids``, ``chosen_labels``, ``rejected_input_ids`` and
    ``rejected_labels`` (labels shifted, prompt masked). A row whose answer keeps no token after
    truncation to ``max_seq_len`` raises ``ValueError`` naming the file and row.
    """

    def __init__(self, *, source: str, message_transform: Transform, tokenizer: ModelTokenizer, **kwargs: Any):
        self._message_transform, self._tokenizer = message_transform, tokenizer
        super().__init__(source=source, **kwargs)

    def prepare(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """Tokenize both conversations of one row."""
        pair = self._message_transform(row)
        out: dict[str, Any] = {"truncated": False}
        for key in ("chosen", "rejected"):
            sample = self._tokenizer({"messages": pair[key]})
            out["truncated"] |= bool(sample.get("truncated", False))
            labels = labels_from_tokens(sample["tokens"], sample["mask"])
            if all(label == CROSS_ENTROPY_IGNORE_IDX for label in labels):
                max_len = getattr(self._tokenizer, "max_seq_len", None)
                raise ValueError(
                    f"the {key} answer has no tokens left to score (prompt of {len(labels)} tokens, "
                    f"max_seq_len={max_len}); raise the tokenizer's max_seq_len or drop the row with filter_fn"
                )
            out[f"{key}_input_ids"] = _array(sample["tokens"])
            out[f"{key}_labels"] = _array(labels)
        return out


class PromptDataset(TokenizedDataset):
    """Prompts with reference answers, for reinforcement learning on sampled completions (GRPO).

    A row holds a ``prompt`` (a string, taken as one user message, or an OpenAI-style message
    list of ``{"role", "content"}`` dicts) and, unless ``answer_column`` is None, an ``answer``
    (a string; numbers are turned into their text). The prompt is tokenized with the chat
    template's assistant header at its end (``add_end_tokens=False``), ready for generation.

    Args:
        source (str): see ``load_rows``.
        tokenizer (ModelTokenizer): a model tokenizer (``__call__(sample, inference=True)``, ``max_seq_len``).
        prompt_column (str): the prompt's column. Default ``"prompt"``.
        answer_column (str | None): the reference answer's column; None for rows without one
            (rewards that need an answer then raise). Default ``"answer"``.
        system_prompt (str | None): a system message put before each prompt. Default None.
        **kwargs: ``filter_fn``, ``split``, ``data_files`` and ``load_rows`` arguments.

    Samples are ``{"tokens": int64 [s], "prompt": str, "answer": str | None}``, ``prompt``
    being the text of the prompt's last message (what reward functions read). A row with a
    missing or mistyped field, an empty prompt, or a prompt longer than the tokenizer's
    ``max_seq_len`` (it would lose its end, the assistant header) raises ``ValueError`` naming
    the file and row.
    """

    def __init__(self, *, source: str, tokenizer: ModelTokenizer, prompt_column: str = "prompt",
                 answer_column: str | None = "answer", system_prompt: str | None = None, **kwargs: Any):
        self._tokenizer, self._system = tokenizer, system_prompt
        self._prompt_column, self._answer_column = prompt_column, answer_column
        super().__init__(source=source, **kwargs)

    def _messages(self, row: Mapping[str, Any]) -> list[Message]:
        value = get_field(row, self._prompt_column, (str, list))
        if isinstance(value, str):
            messages = [Message(role="user", content=value)]
        else:
            messages = []
            for j, m in enumerate(value):
                well_formed = isinstance(m, Mapping) and all(isinstance(m.get(k), str) for k in ("role", "content"))
                if not well_formed:
                    raise ValueError(f"field {self._prompt_column!r} message {j} must be a "
                                     f"{{'role': str, 'content': str}} dict, got {m!r:.80}")
                messages.append(Message(role=m["role"], content=m["content"]))
        if not messages or not messages[-1].content.strip():
            raise ValueError(f"field {self._prompt_column!r} is empty; every row needs a prompt")
        if self._system is not None:
            messages = [Message(role="system", content=self._system)] + [m for m in messages if m.role != "system"]
        return messages

    def prepare(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """Tokenize one row's prompt and read its answer."""
        messages = self._messages(row)
        answer = None
        if self._answer_column is not None:
            answer = get_field(row, self._answer_column, (str, int, float))
            answer = answer if isinstance(answer, str) else str(answer)
        out = self._tokenizer({"messages": messages}, inference=True)
        if out.get("truncated", False):
            max_len = getattr(self._tokenizer, "max_seq_len", None)
            raise ValueError(
                f"the prompt is longer than the tokenizer's max_seq_len={max_len} and would lose its end; raise "
                "max_seq_len or drop the row with filter_fn"
            )
        return {"tokens": _array(out["tokens"]), "prompt": messages[-1].content, "answer": answer}
