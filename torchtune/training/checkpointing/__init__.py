"""Checkpointing: crash-safe checkpoint directories, step-checkpoint management, recipe state."""

from torchtune.training.checkpointing._atomic import (
    COMPLETE_MARKER,
    atomic_directory,
    commit_temp_dir,
    is_complete_checkpoint,
    prepare_temp_dir,
    temp_dir_for,
    write_complete_marker,
)
from torchtune.training.checkpointing._manager import CheckpointManager
from torchtune.training.checkpointing._recipe_state import (
    get_rng_state,
    load_recipe_state,
    save_recipe_state,
    set_rng_state,
)

__all__ = [
    "COMPLETE_MARKER",
    "CheckpointManager",
    "atomic_directory",
    "commit_temp_dir",
    "get_rng_state",
    "is_complete_checkpoint",
    "load_recipe_state",
    "prepare_temp_dir",
    "save_recipe_state",
    "set_rng_state",
    "temp_dir_for",
    "write_complete_marker",
]
