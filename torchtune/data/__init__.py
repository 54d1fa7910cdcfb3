"""Messages, masking, message transforms, prompt templates, collate functions and packing."""

from torchtune.data._collate import (
    dpo_collate_fn,
    labels_from_tokens,
    packed_block_causal_mask,
    padded_collate_dpo,
    padded_collate_packed,
    padded_collate_sft,
    padding_free_collate_dpo,
    padding_free_collate_sft,
    sft_collate_fn,
)
from torchtune.data._common import CROSS_ENTROPY_IGNORE_IDX
from torchtune.data._message_transforms import (
    AlpacaToMessages,
    ChosenRejectedToMessages,
    InputOutputToMessages,
    OpenAIToMessages,
    ShareGPTToMessages,
    get_field,
)
from torchtune.data._messages import (
    MASKING_STRATEGIES,
    ROLES,
    Message,
    Role,
    mask_messages,
    validate_messages,
)
from torchtune.data._packing import PackedDataset
from torchtune.data._prompt_templates import SUMMARIZE_TEMPLATE, AlpacaInstructTemplate, PromptTemplate
from torchtune.data._sampling import epoch_sample_order

__all__ = [
    "AlpacaInstructTemplate",
    "AlpacaToMessages",
    "CROSS_ENTROPY_IGNORE_IDX",
    "ChosenRejectedToMessages",
    "InputOutputToMessages",
    "MASKING_STRATEGIES",
    "Message",
    "OpenAIToMessages",
    "PackedDataset",
    "PromptTemplate",
    "ROLES",
    "Role",
    "SUMMARIZE_TEMPLATE",
    "ShareGPTToMessages",
    "dpo_collate_fn",
    "epoch_sample_order",
    "get_field",
    "labels_from_tokens",
    "mask_messages",
    "packed_block_causal_mask",
    "padded_collate_dpo",
    "padded_collate_packed",
    "padded_collate_sft",
    "padding_free_collate_dpo",
    "padding_free_collate_sft",
    "sft_collate_fn",
    "validate_messages",
]
