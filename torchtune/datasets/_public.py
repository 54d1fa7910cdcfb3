"""Built-in datasets: Alpaca, Alpaca-cleaned, SlimOrca, SAMSum and WikiText.

Each defaults to its Hugging Face Hub id (needs the ``datasets`` extra) and also reads a local
copy: ``alpaca_dataset(tok, source="json", data_files="alpaca.json")``.
"""

from typing import Any, Callable, Mapping

from torch.utils.data import Dataset

from torchtune.data import SUMMARIZE_TEMPLATE, AlpacaToMessages, InputOutputToMessages
from torchtune.datasets._base import SFTDataset
from torchtune.datasets._formats import chat_dataset, maybe_pack, text_completion_dataset
from torchtune.modules.tokenizers import ModelTokenizer


def alpaca_dataset(
    tokenizer: ModelTokenizer,
    *,
    source: str = "tatsu-lab/alpaca",
    column_map: Mapping[str, str] | None = None,
    train_on_input: bool = False,
    packed: bool = False,
    filter_fn: Callable[[Mapping[str, Any]], bool] | None = None,
    split: str = "train",
    data_files: Any = None,
    **load_kwargs: Any,
) -> Dataset:
    """Alpaca instruction data (``instruction``, ``input``, ``output``) with the Alpaca prompt.

    Args:
        tokenizer (ModelTokenizer): a model tokenizer.
        source (str): Hub id or local format/path. Default ``"tatsu-lab/alpaca"``.
        column_map (Mapping[str, str] | None): renames of instruction/input/output.
        train_on_input (bool): include the prompt in the loss. Default False.
        packed (bool): pack into ``max_seq_len`` rows. Default False.
        filter_fn (Callable | None): row filter. Default None.
        split (str): split spec. Default ``"train"``.
        data_files (Any): local files. Default None.
        **load_kwargs: passed to ``load_rows``.

    Returns:
        Dataset: ``SFTDataset`` (or ``PackedDataset``).
    """
    ds = SFTDataset(
        source=source, message_transform=AlpacaToMessages(train_on_input, column_map), model_transform=tokenizer,
        filter_fn=filter_fn, split=split, data_files=data_files, **load_kwargs,
    )
    return maybe_pack(ds, tokenizer, packed)


def alpaca_cleaned_dataset(tokenizer: ModelTokenizer, *, source: str = "yahma/alpaca-cleaned", **kwargs: Any) -> Dataset:
    """The cleaned Alpaca data (``yahma/alpaca-cleaned``); arguments as ``alpaca_dataset``."""
    return alpaca_dataset(tokenizer, source=source, **kwargs)


def slimorca_dataset(
    tokenizer: ModelTokenizer, *, source: str = "Open-Orca/SlimOrca-Dedup", train_on_input: bool = False, **kwargs: Any
) -> Dataset:
    """SlimOrca-Dedup conversations (ShareGPT style); arguments as ``chat_dataset``."""
    return chat_dataset(tokenizer, source=source, conversation_style="sharegpt", train_on_input=train_on_input, **kwargs)


class _SummarizeToMessages(InputOutputToMessages):
    """Dialogue/summary rows as a summarization prompt and its answer."""

    def __call__(self, sample: Mapping[str, Any]) -> dict[str, Any]:
        out = super().__call__(sample)
        return {"messages": SUMMARIZE_TEMPLATE(out["messages"])}


def samsum_dataset(
    tokenizer: ModelTokenizer,
    *,
    source: str = "Samsung/samsum",
    column_map: Mapping[str, str] | None = None,
    train_on_input: bool = False,
    packed: bool = False,
    filter_fn: Callable[[Mapping[str, Any]], bool] | None = None,
    split: str = "train",
    data_files: Any = None,
    **load_kwargs: Any,
) -> Dataset:
    """SAMSum dialogue summarization (``dialogue`` -> ``summary``).

    Args:
        tokenizer (ModelTokenizer): a model tokenizer.
        source (str): Hub id or local format/path. Default ``"Samsung/samsum"``.
        column_map (Mapping[str, str] | None): ``{"input": ..., "output": ...}``; default
            ``{"input": "dialogue", "output": "summary"}``.
        train_on_input (bool): include the prompt in the loss. Default False.
        packed (bool): pack into ``max_seq_len`` rows. Default False.
        filter_fn (Callable | None): row filter. Default None.
        split (str): split spec. Default ``"train"``.
        data_files (Any): local files. Default None.
        **load_kwargs: passed to ``load_rows``.

    Returns:
        Dataset: ``SFTDataset`` (or ``PackedDataset``).
    """
    transform = _SummarizeToMessages(train_on_input, column_map or {"input": "dialogue", "output": "summary"})
    ds = SFTDataset(
        source=source, message_transform=transform, model_transform=tokenizer,
        filter_fn=filter_fn, split=split, data_files=data_files, **load_kwargs,
    )
    return maybe_pack(ds, tokenizer, packed)


def wikitext_dataset(
    tokenizer: ModelTokenizer,
    *,
    source: str = "EleutherAI/wikitext_document_level",
    subset: str | None = "wikitext-103-v1",
    column: str = "page",
    **kwargs: Any,
) -> Dataset:
    """WikiText pages for continued pre-training; arguments as ``text_completion_dataset``.

    ``subset`` is the Hub configuration name; it is ignored for local sources (pass
    ``column="text"`` for a local text file).
    """
    if subset is not None and kwargs.get("data_files") is None and "/" in source:
        kwargs["name"] = subset
    return text_completion_dataset(tokenizer, source=source, column=column, **kwargs)
