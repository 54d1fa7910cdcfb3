"""Small helpers shared across the library."""

from torchtune.utils._deprecation import deprecated_aliases, deprecated_arguments
from torchtune.utils._import import require

__all__ = ["deprecated_aliases", "deprecated_arguments", "require"]
