"""Small helpers shared across the library."""

from torchtune.utils._deprecation import deprecated_aliases
from torchtune.utils._import import require

__all__ = ["deprecated_aliases", "require"]
