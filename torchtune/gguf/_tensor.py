"""A frozen weight kept as its GGUF (llama.cpp) quantisation blocks, dequantised where it is used.

``GGUFQuantizedTensor`` reports the logical shape ``[out_dim, in_dim]`` and a float dtype but holds
only the raw block bytes of each row, ``[out_dim, in_dim / K * B]`` uint8 (``K`` values of ``B``
bytes per block, :data:`torchtune.gguf.BLOCK_LAYOUT`). ``F.linear`` dequantises it for the
product and once more for the input gradient in the backward pass (nothing full-precision is kept
between them); any other operation sees the dequantised values. Moving it to a device keeps the
blocks; asking for another dtype (``.to(torch.float32)``) gives a plain dequantised tensor.
"""

from typing import Any

import torch
import torch.nn.functional as F
from torch.utils._pytree import tree_map

from torchtune.gguf._quants import BLOCK_LAYOUT, dequantize_blocks


aten = torch.ops.aten


class _DequantizedLinear(torch.autograd.Function):
    """``x @ W^T`` with ``W`` dequantised in the forward pass and again in the backward pass."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: "GGUFQuantizedTensor") -> torch.Tensor:
        ctx.weight = weight  # frozen: no gradient, and only its blocks are kept
        return F.linear(x, weight.dequantized(x.dtype))

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad_output @ ctx.weight.dequantized(grad_output.dtype), None  # [..., in_dim]


class GGUFQuantizedTensor(torch.Tensor):
    """A 2-D weight stored as GGUF quantisation blocks (Q4_0, Q4_1, Q8_0, Q4_K, ...).

    Args:
        blocks (torch.Tensor): uint8 ``[out_dim, in_dim / K * B]``, each row's blocks as stored.
        type_name (str): the GGML type, a key of :data:`torchtune.gguf.BLOCK_LAYOUT`.
        shape (tuple[int, int]): the logical ``(out_dim, in_dim)``.
        dtype (torch.dtype): the dtype it reports and dequantises to by default.
            Default ``torch.float32``.

    Raises:
        ValueError: for a type without blocks, or bytes that do not match ``shape``.

    Example:
        >>> w = GGUFQuantizedTensor(raw_rows, "Q4_1", (576, 576))
        >>> y = F.linear(x, w)  # dequantises w for this product only
    """

    @staticmethod
    def __new__(cls, blocks: torch.Tensor, type_name: str, shape: tuple[int, int],
                dtype: torch.dtype = torch.float32) -> "GGUFQuantizedTensor":
        return torch.Tensor._make_wrapper_subclass(cls, shape, dtype=dtype, device=blocks.device, requires_grad=False)

    def __init__(self, blocks: torch.Tensor, type_name: str, shape: tuple[int, int],
                 dtype: torch.dtype = torch.float32) -> None:
        if type_name not in BLOCK_LAYOUT:
            raise ValueError(f"type_name={type_name!r} has no blocks; block types: {', '.join(BLOCK_LAYOUT)}")
        values, nbytes = BLOCK_LAYOUT[type_name]
        out_dim, in_dim = shape
        if in_dim % values or tuple(blocks.shape) != (out_dim, in_dim // values * nbytes) or blocks.dtype != torch.uint8:
            raise ValueError(
                f"a {type_name} weight of shape {tuple(shape)} needs uint8 blocks of shape "
                f"{(out_dim, in_dim // values * nbytes)}, got {blocks.dtype} {tuple(blocks.shape)}"
            )
        self.blocks = blocks
        self.type_name = type_name

    def dequantized(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """The weight's values as a plain ``[out_dim, in_dim]`` tensor of ``dtype`` (default: its own)."""
        values, nbytes = BLOCK_LAYOUT[self.type_name]
        flat = dequantize_blocks(self.blocks.reshape(-1, nbytes), self.type_name)  # [n * K] float32
        return flat.reshape(self.shape).to(dtype or self.dtype)

    def __tensor_flatten__(self) -> tuple[list[str], tuple[str, torch.dtype]]:
        return ["blocks"], (self.type_name, self.dtype)

    @staticmethod
    def __tensor_unflatten__(inner: dict[str, torch.Tensor], meta: tuple[str, torch.dtype], outer_size: Any,
                             outer_stride: Any) -> "GGUFQuantizedTensor":
        type_name, dtype = meta
        return GGUFQuantizedTensor(inner["blocks"], type_name, tuple(outer_size), dtype)

    def __repr__(self) -> str:
        return f"GGUFQuantizedTensor({self.type_name}, shape={tuple(self.shape)}, dtype={self.dtype}, device={self.device})"

    @classmethod
    def __torch_function__(cls, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if func is F.linear and isinstance(args[1], GGUFQuantizedTensor) and not isinstance(args[0], GGUFQuantizedTensor):
            bias = args[2] if len(args) > 2 else kwargs.get("bias")
            out = _DequantizedLinear.apply(args[0], args[1])
            return out if bias is None else out + bias
        with torch._C.DisableTorchFunctionSubclass():
            return func(*args, **kwargs)

    @classmethod
    def __torch_dispatch__(cls, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if func in (aten.detach.default, aten.alias.default):
            w = args[0]
            return GGUFQuantizedTensor(w.blocks, w.type_name, tuple(w.shape), w.dtype)
        if func is aten.clone.default:
            w = args[0]
            return GGUFQuantizedTensor(w.blocks.clone(), w.type_name, tuple(w.shape), w.dtype)
        if func is aten._to_copy.default and kwargs.get("dtype") in (None, args[0].dtype):
            w = args[0]  # a device move keeps the blocks
            device = kwargs.get("device") or w.device
            return GGUFQuantizedTensor(w.blocks.to(device), w.type_name, tuple(w.shape), w.dtype)
        if func._schema.is_mutable and isinstance(args[0], GGUFQuantizedTensor):  # would change a temporary
            raise NotImplementedError(
                f"GGUFQuantizedTensor is a frozen weight; {func} would write into it. Replace the "
                "parameter instead (LoRALinear.load_state_dict does) or use its dequantized() values"
            )
        # anything else computes on the dequantised values
        plain = tree_map(lambda a: a.dequantized() if isinstance(a, GGUFQuantizedTensor) else a, (args, kwargs))
        return func(*plain[0], **plain[1])
