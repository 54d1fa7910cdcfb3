"""Checkpointing: the checkpointer interface and its Hugging Face, Meta and GGUF implementations,
crash-safe step checkpoints (:class:`CheckpointManager`), recipe state, sharded (DCP) checkpoints
and peft adapters."""

from torchtune.training.checkpointing._atomic import (
    COMPLETE_MARKER,
    atomic_directory,
    atomic_file,
    is_complete_checkpoint,
)
from torchtune.training.checkpointing._dcp import dcp_load, dcp_save
from torchtune.training.checkpointing._fit import check_same_vocabulary, check_weights_fit
from torchtune.training.checkpointing._gguf_checkpointer import (
    GGUFCheckpointer,
    export_gguf,
    gguf_tokenizer_metadata,
)
from torchtune.training.checkpointing._hf_checkpointer import HuggingFaceCheckpointer
from torchtune.training.checkpointing._interface import Checkpointer
from torchtune.training.checkpointing._manager import CheckpointManager
from torchtune.training.checkpointing._meta_checkpointer import (
    MetaCheckpointer,
    hf_to_meta_rotary,
    meta_to_hf_rotary,
)
from torchtune.training.checkpointing._peft_adapter import check_save_mappings, load_peft_adapter, save_peft_adapter
from torchtune.training.checkpointing._recipe_state import load_recipe_state, restore_training_state, save_recipe_state
from torchtune.training.checkpointing._safetensors import save_safetensors
from torchtune.utils import deprecated_aliases

__all__ = [
    "COMPLETE_MARKER",
    "CheckpointManager",
    "Checkpointer",
    "GGUFCheckpointer",
    "HuggingFaceCheckpointer",
    "MetaCheckpointer",
    "atomic_directory",
    "atomic_file",
    "check_same_vocabulary",
    "check_save_mappings",
    "check_weights_fit",
    "dcp_load",
    "dcp_save",
    "export_gguf",
    "gguf_tokenizer_metadata",
    "hf_to_meta_rotary",
    "is_complete_checkpoint",
    "load_peft_adapter",
    "load_recipe_state",
    "meta_to_hf_rotary",
    "restore_training_state",
    "save_peft_adapter",
    "save_recipe_state",
    "save_safetensors",
]

# Moved in 0.2. The GGUF format is torchtune.gguf, its tokenizer sits beside the other tokenizers,
# RNG state has one home (torchtune.training), and the atomic-save internals are private.
__getattr__ = deprecated_aliases(__name__, {
    "GGUFTokenizer": "torchtune.modules.tokenizers.GGUFTokenizer",
    "gguf_tokenizer_metadata_from_hf": "torchtune.gguf.gguf_tokenizer_metadata_from_hf",
    "get_rng_state": "torchtune.training.get_rng_state",
    "set_rng_state": "torchtune.training.set_rng_state",
    "commit_temp_dir": "torchtune.training.checkpointing._atomic.commit_temp_dir",
    "prepare_temp_dir": "torchtune.training.checkpointing._atomic.prepare_temp_dir",
    "temp_dir_for": "torchtune.training.checkpointing._atomic.temp_dir_for",
    "write_complete_marker": "torchtune.training.checkpointing._atomic.write_complete_marker",
    "read_tree": "torchtune.training.checkpointing._recipe_state.read_tree",
    "write_tree": "torchtune.training.checkpointing._recipe_state.write_tree",
})
