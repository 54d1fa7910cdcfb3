"""Small helpers shared across the library."""

from torchtune.utils._import import require

__all__ = ["require"]
