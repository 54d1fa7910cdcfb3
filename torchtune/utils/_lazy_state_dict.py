"""State dicts whose tensors are computed when read, so that a save holds one tensor at a time."""

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # torchtune.utils is imported by the CLI, which must not import torch
    import torch


class LazyStateDict(Mapping):
    """A read-only state dict that computes each tensor when it is read and keeps none of them.

    A save that merges adapters or renames and fuses weights can hand one of these to a writer
    instead of a dict of every result: the writer takes the shapes and dtypes from :meth:`meta`
    (a file header needs them before any data), then reads the tensors one at a time, so only
    the tensor being written is in memory. Each read computes its tensor again. ``dict(lazy)``
    computes them all.

    Args:
        metas (Mapping[str, torch.Tensor]): each key's shape and dtype as a tensor on the
            ``meta`` device, in the state dict's order.
        compute (Callable[[str], torch.Tensor]): the tensor of a key.

    Raises:
        ValueError: if an entry of ``metas`` is not on the ``meta`` device.

    Example:
        >>> lazy = LazyStateDict({"w": torch.empty(2, 3, device="meta")}, lambda key: torch.zeros(2, 3))
        >>> lazy.meta("w").shape
        torch.Size([2, 3])
        >>> float(lazy["w"].sum())
        0.0
    """

    def __init__(self, metas: "Mapping[str, torch.Tensor]", compute: "Callable[[str], torch.Tensor]") -> None:
        not_meta = [k for k, v in metas.items() if v.device.type != "meta"]
        if not_meta:
            raise ValueError(f"metas[{not_meta[0]!r}] is on {metas[not_meta[0]].device}; give shapes and dtypes as "
                             "meta tensors: torch.empty(shape, dtype=dtype, device='meta')")
        self._metas = dict(metas)
        self._compute = compute

    def __getitem__(self, key: str) -> "torch.Tensor":
        meta = self._metas[key]
        value = self._compute(key)
        if value.shape != meta.shape or value.dtype != meta.dtype:
            raise ValueError(f"{key!r} was computed as {value.dtype} {list(value.shape)}, but its meta entry says "
                             f"{meta.dtype} {list(meta.shape)}")
        return value

    def __contains__(self, key: object) -> bool:
        return key in self._metas  # without computing the tensor

    def __iter__(self) -> Iterator[str]:
        return iter(self._metas)

    def __len__(self) -> int:
        return len(self._metas)

    def __repr__(self) -> str:
        return f"LazyStateDict({len(self)} tensors)"

    def meta(self, key: str) -> "torch.Tensor":
        """The shape and dtype of ``self[key]`` as a ``meta`` tensor, without computing it.

        Raises:
            KeyError: for an unknown key.
        """
        return self._metas[key]


def tensor_meta(state_dict: "Mapping[str, torch.Tensor]", key: str) -> "torch.Tensor":
    """The shape and dtype of ``state_dict[key]`` as a ``meta`` tensor.

    Computes nothing for a :class:`LazyStateDict`; for any other mapping it reads the tensor.

    Args:
        state_dict (Mapping[str, torch.Tensor]): a state dict, lazy or not.
        key (str): one of its keys.

    Returns:
        torch.Tensor: an empty tensor on the ``meta`` device with the entry's shape and dtype.
    """
    if isinstance(state_dict, LazyStateDict):
        return state_dict.meta(key)
    import torch

    value = state_dict[key]
    return torch.empty(value.shape, dtype=value.dtype, device="meta")

