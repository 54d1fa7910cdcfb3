"""Checkpointing: crash-safe checkpoint directories, step-checkpoint management, recipe state."""

from torchtune.utils import deprecated_aliases

from torchtune.training.checkpointing._atomic import (
    COMPLETE_MARKER,
    atomic_directory,
    commit_temp_dir,
    is_complete_checkpoint,
    prepare_temp_dir,
    temp_dir_for,
    write_complete_marker,
)
from torchtune.training.checkpointing._gguf_checkpointer import (
    GGUFCheckpointer,
    export_gguf,
    gguf_tokenizer_metadata,
)
from torchtune.training.checkpointing._hf_checkpointer import HuggingFaceCheckpointer
from torchtune.training.checkpointing._manager import CheckpointManager
from torchtune.training.checkpointing._meta_checkpointer import (
    MetaCheckpointer,
    hf_to_meta_rotary,
    meta_to_hf_rotary,
)
from torchtune.training.checkpointing._peft_adapter import load_peft_adapter, save_peft_adapter
from torchtune.training.checkpointing._recipe_state import (
    get_rng_state,
    load_recipe_state,
    read_tree,
    save_recipe_state,
    set_rng_state,
    write_tree,
)

__all__ = [
    "COMPLETE_MARKER",
    "CheckpointManager",
    "GGUFCheckpointer",
    "HuggingFaceCheckpointer",
    "MetaCheckpointer",
    "atomic_directory",
    "commit_temp_dir",
    "export_gguf",
    "get_rng_state",
    "gguf_tokenizer_metadata",
    "hf_to_meta_rotary",
    "is_complete_checkpoint",
    "load_peft_adapter",
    "load_recipe_state",
    "meta_to_hf_rotary",
    "prepare_temp_dir",
    "read_tree",
    "save_peft_adapter",
    "save_recipe_state",
    "set_rng_state",
    "temp_dir_for",
    "write_complete_marker",
    "write_tree",
]

# Moved in 0.2: the GGUF format to torchtune.gguf, its tokenizer beside the other tokenizers.
__getattr__ = deprecated_aliases(__name__, {
    "GGUFTokenizer": "torchtune.modules.tokenizers.GGUFTokenizer",
    "gguf_tokenizer_metadata_from_hf": "torchtune.gguf.gguf_tokenizer_metadata_from_hf",
})
