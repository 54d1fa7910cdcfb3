"""Dataset builders and sources (local JSON/JSONL/CSV/Parquet/text, or Hugging Face datasets)."""

from torchtune.datasets._base import (
    PreferenceDataset,
    PromptDataset,
    SFTDataset,
    TextCompletionDataset,
    TokenizedDataset,
)
from torchtune.datasets._formats import (
    CONVERSATION_STYLES,
    build_preference_data,
    build_sft_data,
    build_validation_loader,
    chat_dataset,
    instruct_dataset,
    preference_dataset,
    prompt_dataset,
    text_completion_dataset,
)
from torchtune.datasets._public import (
    alpaca_cleaned_dataset,
    alpaca_dataset,
    samsum_dataset,
    slimorca_dataset,
    wikitext_dataset,
)
from torchtune.datasets._sources import (
    LOCAL_FORMATS,
    Rows,
    check_local_data_files,
    load_rows,
    local_data_files,
    parse_split,
)

__all__ = [
    "CONVERSATION_STYLES",
    "LOCAL_FORMATS",
    "PreferenceDataset",
    "PromptDataset",
    "Rows",
    "SFTDataset",
    "TextCompletionDataset",
    "TokenizedDataset",
    "alpaca_cleaned_dataset",
    "alpaca_dataset",
    "build_preference_data",
    "build_sft_data",
    "build_validation_loader",
    "chat_dataset",
    "check_local_data_files",
    "instruct_dataset",
    "load_rows",
    "local_data_files",
    "parse_split",
    "preference_dataset",
    "prompt_dataset",
    "samsum_dataset",
    "slimorca_dataset",
    "text_completion_dataset",
    "wikitext_dataset",
]
