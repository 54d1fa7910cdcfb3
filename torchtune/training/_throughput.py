"""Throughput meter: real (non-padding) tokens per second."""

import time
from collections.abc import Callable

import torch


def count_tokens(tokens: torch.Tensor, pad_id: int | None = None, ignore_index: int | None = None) -> int:
    """Count the real tokens of a batch.

    Args:
        tokens (torch.Tensor): token ids ``[b, s]`` (or labels ``[b, s]``).
        pad_id (int | None): id of padding in ``tokens``; None counts everything. Default: None.
        ignore_index (int | None): label value to skip as well, e.g. -100 when passing
            labels. Default: None.

    Returns:
        int: the number of entries equal to neither ``pad_id`` nor ``ignore_index``.
    """
    keep = torch.ones_like(tokens, dtype=torch.bool)
    if pad_id is not None:
        keep &= tokens != pad_id
    if ignore_index is not None:
        keep &= tokens != ignore_index
    return int(keep.sum())


class TokensPerSecond:
    """Measure tokens per second over a window (e.g. between two log steps).

    Args:
        pad_id (int | None): padding id not counted when a tensor is passed to
            :meth:`update`; None counts every entry. Default: None.
        clock (Callable[[], float]): seconds clock. Default: ``time.perf_counter``.

    Example:
        >>> meter = TokensPerSecond(pad_id=tokenizer.pad_id)
        >>> meter.update(batch["tokens"])  # each step
        >>> logger.log("tokens_per_second", meter.rate(), step); meter.reset()
    """

    def __init__(self, pad_id: int | None = None, clock: Callable[[], float] = time.perf_counter) -> None:
        self.pad_id = pad_id
        self._clock = clock
        self.total_tokens = 0
        self.reset()

    def reset(self) -> None:
        """Start a new window now (``total_tokens`` keeps counting)."""
        self._start = self._clock()
        self.window_tokens = 0

    def update(self, tokens: torch.Tensor | int) -> int:
        """Add a batch (``[b, s]`` ids, padding not counted) or a token count.

        Returns:
            int: the number of tokens added.

        Raises:
            ValueError: for a negative count.
        """
        n = count_tokens(tokens, self.pad_id) if isinstance(tokens, torch.Tensor) else int(tokens)
        if n < 0:
            raise ValueError(f"token count {n} must be >= 0")
        self.window_tokens += n
        self.total_tokens += n
        return n

    def elapsed(self) -> float:
        """Seconds since the window started."""
        return self._clock() - self._start

    def rate(self) -> float:
        """Tokens per second in the current window (0.0 before any time has passed)."""
        elapsed = self.elapsed()
        return self.window_tokens / elapsed if elapsed > 0 else 0.0
