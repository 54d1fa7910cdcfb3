"""Small helpers shared across the library."""

from torchtune.utils._deprecation import deprecated_aliases, deprecated_arguments
from torchtune.utils._import import require
from torchtune.utils._lazy_state_dict import LazyStateDict, tensor_meta
from torchtune.utils._signature import forwards_kwargs

__all__ = ["LazyStateDict", "deprecated_aliases", "deprecated_arguments", "forwards_kwargs", "require", "tensor_meta"]
