"""A progress bar for recipes that shows only on rank 0."""

from typing import Any

from tqdm import tqdm


def progress_bar(total: int | None = None, *, rank: int = 0, desc: str | None = None, **kwargs: Any) -> tqdm:
    """Return a ``tqdm`` bar sized to the terminal, disabled on non-zero ranks.

    Args:
        total (int | None): expected number of updates. Default: None.
        rank (int): this process's rank; the bar is disabled unless it is 0. Default: 0.
        desc (str | None): label shown before the bar. Default: None.
        **kwargs (Any): other ``tqdm`` arguments.

    Returns:
        tqdm: use ``bar.update(1)``, ``bar.set_postfix(loss=...)``, ``bar.close()``.
    """
    kwargs.setdefault("dynamic_ncols", True)
    kwargs.setdefault("disable", rank != 0)
    return tqdm(total=total, desc=desc, **kwargs)
