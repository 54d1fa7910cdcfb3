"""Dataset builders: instruct, chat, text completion, preference and prompt data from any source."""

from typing import Any, Callable, Mapping

from torch.utils.data import DataLoader, Dataset

from torchtune.config import instantiate
from torchtune.data import (
    ChosenRejectedToMessages,
    InputOutputToMessages,
    OpenAIToMessages,
    PackedDataset,
    ShareGPTToMessages,
    dpo_collate_fn,
    epoch_sample_order,
    sft_collate_fn,
)
from torchtune.datasets._base import PreferenceDataset, PromptDataset, SFTDataset, TextCompletionDataset
from torchtune.modules.tokenizers import ModelTokenizer


CONVERSATION_STYLES = ("sharegpt", "openai")


def maybe_pack(ds: Dataset, tokenizer: ModelTokenizer, packed: bool) -> Dataset:
    """Wrap ``ds`` in ``PackedDataset`` (rows of ``tokenizer.max_seq_len``) when ``packed``.

    Raises:
        ValueError: if packing is asked for and the tokenizer has no ``max_seq_len``.
    """
    if not packed:
        return ds
    max_seq_len = getattr(tokenizer, "max_seq_len", None)
    if max_seq_len is None:
        raise ValueError("packed=True needs the tokenizer's max_seq_len to be set (the packed row length)")
    return PackedDataset(ds, max_seq_len=max_seq_len, padding_idx=getattr(tokenizer, "pad_id", 0))


def instruct_dataset(
    tokenizer: ModelTokenizer,
    *,
    source: str,
    column_map: Mapping[str, str] | None = None,
    train_on_input: bool = False,
    new_system_prompt: str | None = None,
    packed: bool = False,
    filter_fn: Callable[[Mapping[str, Any]], bool] | None = None,
    split: str = "train",
    data_files: Any = None,
    **load_kwargs: Any,
) -> Dataset:
    """Single-turn instruction data: an ``input`` column (prompt) and an ``output`` column.

    Args:
        tokenizer (ModelTokenizer): a model tokenizer.
        source (str): local format/path or Hugging Face dataset (see ``load_rows``).
        column_map (Mapping[str, str] | None): ``{"input": ..., "output": ...}`` renames.
        train_on_input (bool): include the prompt in the loss. Default False.
        new_system_prompt (str | None): system message to prepend. Default None.
        packed (bool): pack into ``max_seq_len`` rows. Default False.
        filter_fn (Callable | None): row filter. Default None.
        split (str): split spec, e.g. ``"train[:95%]"``. Default ``"train"``.
        data_files (Any): local files. Default None.
        **load_kwargs: passed to ``load_rows``.

    Returns:
        Dataset: ``SFTDataset`` (or ``PackedDataset``).
    """
    transform = InputOutputToMessages(train_on_input, column_map, new_system_prompt)
    ds = SFTDataset(
        source=source, message_transform=transform, model_transform=tokenizer,
        filter_fn=filter_fn, split=split, data_files=data_files, **load_kwargs,
    )
    return maybe_pack(ds, tokenizer, packed)


def chat_dataset(
    tokenizer: ModelTokenizer,
    *,
    source: str,
    conversation_style: str,
    column_map: Mapping[str, str] | None = None,
    train_on_input: bool = False,
    new_system_prompt: str | None = None,
    masking_strategy: str | None = None,
    packed: bool = False,
    filter_fn: Callable[[Mapping[str, Any]], bool] | None = None,
    split: str = "train",
    data_files: Any = None,
    **load_kwargs: Any,
) -> Dataset:
    """Multi-turn conversations in ShareGPT (``conversations``: from/value) or OpenAI
    (``messages``: role/content) style.

    Args:
        tokenizer (ModelTokenizer): a model tokenizer.
        source (str): local format/path or Hugging Face dataset.
        conversation_style (str): ``"sharegpt"`` or ``"openai"``.
        column_map (Mapping[str, str] | None): rename of the conversation column.
        train_on_input (bool): include non-assistant turns in the loss. Default False.
        new_system_prompt (str | None): replaces system turns. Default None.
        masking_strategy (str | None): ``train_on_all | train_on_assistant | train_on_last``;
            overrides ``train_on_input``. Default None.
        packed (bool): pack into ``max_seq_len`` rows. Default False.
        filter_fn (Callable | None): row filter. Default None.
        split (str): split spec. Default ``"train"``.
        data_files (Any): local files. Default None.
        **load_kwargs: passed to ``load_rows``.

    Returns:
        Dataset: ``SFTDataset`` (or ``PackedDataset``).

    Raises:
        ValueError: if ``conversation_style`` is unknown.
    """
    if conversation_style == "sharegpt":
        transform = ShareGPTToMessages(train_on_input, column_map, new_system_prompt, masking_strategy)
    elif conversation_style == "openai":
        transform = OpenAIToMessages(train_on_input, column_map, new_system_prompt, masking_strategy)
    else:
        raise ValueError(f"conversation_style={conversation_style!r} must be one of {list(CONVERSATION_STYLES)}")
    ds = SFTDataset(
        source=source, message_transform=transform, model_transform=tokenizer,
        filter_fn=filter_fn, split=split, data_files=data_files, **load_kwargs,
    )
    return maybe_pack(ds, tokenizer, packed)


def text_completion_dataset(
    tokenizer: ModelTokenizer,
    *,
    source: str,
    column: str = "text",
    add_eos: bool = True,
    packed: bool = False,
    filter_fn: Callable[[Mapping[str, Any]], bool] | None = None,
    split: str = "train",
    data_files: Any = None,
    **load_kwargs: Any,
) -> Dataset:
    """Plain text for continued pre-training (every token is a target).

    Args:
        tokenizer (ModelTokenizer): has ``encode`` and ``max_seq_len``.
        source (str): local format/path (``text`` reads one sample per line by default;
            ``sample_by="paragraph"|"document"``) or Hugging Face dataset.
        column (str): the text column. Default ``"text"``.
        add_eos (bool): append EOS. Default True.
        packed (bool): pack into ``max_seq_len`` rows. Default False.
        filter_fn (Callable | None): row filter. Default None.
        split (str): split spec. Default ``"train"``.
        data_files (Any): local files. Default None.
        **load_kwargs: passed to ``load_rows``.

    Returns:
        Dataset: ``TextCompletionDataset`` (or ``PackedDataset``).
    """
    ds = TextCompletionDataset(
        source=source, tokenizer=tokenizer, column=column, add_eos=add_eos,
        filter_fn=filter_fn, split=split, data_files=data_files, **load_kwargs,
    )
    return maybe_pack(ds, tokenizer, packed)


def preference_dataset(
    tokenizer: ModelTokenizer,
    *,
    source: str,
    column_map: Mapping[str, str] | None = None,
    new_system_prompt: str | None = None,
    filter_fn: Callable[[Mapping[str, Any]], bool] | None = None,
    split: str = "train",
    data_files: Any = None,
    **load_kwargs: Any,
) -> PreferenceDataset:
    """Preference pairs for DPO-style training, in the common row shapes.

    A row holds either ``chosen`` and ``rejected`` whole conversations (OpenAI message lists
    ending with the assistant's answer, as in Anthropic HH and UltraFeedback-style data), or a
    ``prompt`` (string or message list) with ``chosen`` and ``rejected`` answers (strings or
    message lists); see :class:`~torchtune.data.ChosenRejectedToMessages`. Only the final
    answers are scored. A row without ``chosen`` or ``rejected`` raises ``ValueError`` naming
    the file, the row and the missing field.

    Args:
        tokenizer (ModelTokenizer): a model tokenizer.
        source (str): local format/path or Hugging Face dataset.
        column_map (Mapping[str, str] | None): ``{"prompt": ..., "chosen": ..., "rejected": ...}``
            renames.
        new_system_prompt (str | None): replaces system turns. Default None.
        filter_fn (Callable | None): row filter. Default None.
        split (str): split spec. Default ``"train"``.
        data_files (Any): local files. Default None.
        **load_kwargs: passed to ``load_rows``.

    Returns:
        PreferenceDataset: collate with :func:`~torchtune.data.dpo_collate_fn`.
    """
    return PreferenceDataset(
        source=source, message_transform=ChosenRejectedToMessages(column_map, new_system_prompt),
        tokenizer=tokenizer, filter_fn=filter_fn, split=split, data_files=data_files, **load_kwargs,
    )


def prompt_dataset(
    tokenizer: ModelTokenizer,
    *,
    source: str,
    column_map: Mapping[str, str] | None = None,
    system_prompt: str | None = None,
    filter_fn: Callable[[Mapping[str, Any]], bool] | None = None,
    split: str = "train",
    data_files: Any = None,
    **load_kwargs: Any,
) -> PromptDataset:
    """Prompts with reference answers, for GRPO and other reinforcement learning on sampled
    completions.

    A row holds a ``prompt`` (a string or a message list) and an ``answer`` (a string or a
    number) that reward functions such as :class:`~torchtune.training.ExactAnswerReward` check
    completions against. ``column_map={"prompt": "question", "answer": "solution"}`` reads
    other column names; ``{"answer": None}`` reads rows without answers. A bad row raises
    ``ValueError`` naming the file, the row and the field.

    Args:
        tokenizer (ModelTokenizer): a model tokenizer.
        source (str): local format/path or Hugging Face dataset.
        column_map (Mapping[str, str] | None): ``{"prompt": ..., "answer": ...}`` renames.
            Default None.
        system_prompt (str | None): a system message before every prompt. Default None.
        filter_fn (Callable | None): row filter. Default None.
        split (str): split spec. Default ``"train"``.
        data_files (Any): local files. Default None.
        **load_kwargs: passed to ``load_rows``.

    Returns:
        PromptDataset: samples ``{"tokens", "prompt", "answer"}``; ``locations`` names their rows.

    Raises:
        ValueError: on unknown ``column_map`` keys, or a bad row (naming file and row).
    """
    column_map = dict(column_map or {})
    unknown = sorted(set(column_map) - {"prompt", "answer"})
    if unknown:
        raise ValueError(f"column_map has unknown keys {unknown}; expected keys among ['prompt', 'answer']")
    return PromptDataset(
        source=source, tokenizer=tokenizer, prompt_column=column_map.get("prompt", "prompt"),
        answer_column=column_map.get("answer", "answer"), system_prompt=system_prompt, filter_fn=filter_fn,
        split=split, data_files=data_files, **load_kwargs,
    )


def build_sft_data(
    node: Any, tokenizer: ModelTokenizer, *, padding_free: bool, pad_to_multiple_of: int = 1
) -> tuple[Dataset, Callable[[Any], dict[str, Any]]]:
    """The fine-tuning dataset a config node describes and the collate function that fits it
    (:func:`torchtune.data.sft_collate_fn`: packed rows, one padding-free row per batch, or
    padded samples).

    Args:
        node (Any): the config's ``dataset`` node (``_component_`` + arguments).
        tokenizer (ModelTokenizer): the model tokenizer, passed as the builder's first argument.
        padding_free (bool): lay each batch's samples end to end in one row.
        pad_to_multiple_of (int): round batch lengths up to a multiple of this many tokens
            (the recipes' ``pad_to_multiple_of``, for ``compile``). Default 1.

    Returns:
        tuple[Dataset, Callable[[Any], dict[str, Any]]]: the dataset and its collate function.
    """
    ds = instantiate(node, tokenizer)
    return ds, sft_collate_fn(ds, padding_free=padding_free, padding_idx=tokenizer.pad_id,
                              pad_to_multiple_of=pad_to_multiple_of)


def build_preference_data(
    node: Any, tokenizer: ModelTokenizer, *, padding_free: bool
) -> tuple[Dataset, Callable[[Any], dict[str, Any]]]:
    """The preference dataset a config node describes and its collate function
    (:func:`torchtune.data.dpo_collate_fn`: chosen then rejected sequences, end to end in one
    row or padded).

    Args:
        node (Any): the config's ``dataset`` node (``_component_`` + arguments), e.g.
            :func:`preference_dataset`.
        tokenizer (ModelTokenizer): the model tokenizer, passed as the builder's first argument.
        padding_free (bool): lay each batch's sequences end to end in one row.

    Returns:
        tuple[Dataset, Callable[[Any], dict[str, Any]]]: the dataset and its collate function.

    Raises:
        ValueError: when the node builds samples that are not preference pairs.
    """
    ds = instantiate(node, tokenizer)
    first = ds[0] if len(ds) else {}
    if "chosen_input_ids" not in first or "rejected_input_ids" not in first:
        raise ValueError(
            f"dataset {node.get('_component_')!r} gives samples with keys {sorted(first)}, not preference pairs; "
            "use torchtune.datasets.preference_dataset (chosen/rejected columns)"
        )
    return ds, dpo_collate_fn(padding_free=padding_free, padding_idx=tokenizer.pad_id)


def build_validation_loader(
    node: Any, tokenizer: ModelTokenizer, *, padding_free: bool, batch_size: int, world_size: int = 1, rank: int = 0
) -> DataLoader | None:
    """Batches of the held-out data a config's ``dataset_val`` node describes, in dataset order;
    with several processes each gets its own equal share (see
    :func:`torchtune.data.epoch_sample_order`) for :func:`torchtune.training.validation_loss`.

    Args:
        node (Any): the ``dataset_val`` node, or None for no validation.
        tokenizer (ModelTokenizer): the model tokenizer.
        padding_free (bool): lay each batch's samples end to end in one row.
        batch_size (int): samples per batch.
        world_size (int): processes. Default 1.
        rank (int): this process. Default 0.

    Returns:
        DataLoader | None: the loader, or None when ``node`` is None.
    """
    if node is None:
        return None
    ds, collate = build_sft_data(node, tokenizer, padding_free=padding_free)
    order = epoch_sample_order(len(ds), seed=0, epoch=0, shuffle=False, world_size=world_size, rank=rank)
    return DataLoader(ds, batch_size=batch_size, sampler=order, collate_fn=collate)
