"""``compile: true``: check the compiler before any work, then compile each decoder layer.

Compiling layer by layer (as torchtune does) keeps each graph small and lets layers of the same
class share one compiled graph. Padding-free rows change length every batch; pad them to a
multiple (the recipes' ``pad_to_multiple_of``) so that only a few shapes occur, after which
torch's automatic dynamic shapes stop further recompiles. The document mask is built outside the
layers (see :meth:`torchtune.modules.TransformerDecoder.set_document_attention`), so the
compiled layers see tensors only.
"""

import logging

import torch
from torch import nn

from torchtune.config import ConfigError

logger = logging.getLogger(__name__)


def _has_triton() -> bool:
    from torch.utils._triton import has_triton

    return has_triton()


def _cpp_compiler() -> str | None:
    """The C++ compiler inductor would use on CPU, or None when there is none."""
    from torch._inductor.cpp_builder import get_cpp_compiler

    try:
        return get_cpp_compiler()
    except Exception:  # inductor raises its own error types when no compiler is found
        return None


def check_compile(device: torch.device, backend: str = "inductor") -> None:
    """Stop before any work when ``compile: true`` cannot work on ``device``.

    Inductor needs Triton for CUDA and a C++ compiler for CPU. Other backends are not checked.

    Args:
        device (torch.device): the training device.
        backend (str): the ``torch.compile`` backend. Default ``"inductor"``.

    Raises:
        ConfigError: naming ``compile`` and the fix.
    """
    if backend != "inductor":
        return
    if device.type == "cuda" and not _has_triton():
        raise ConfigError("compile=true on CUDA needs Triton, which is not installed or finds no usable GPU; "
                          "install the triton package that matches your torch, or set compile=false")
    if device.type == "cpu" and _cpp_compiler() is None:
        raise ConfigError("compile=true on CPU needs a C++ compiler (g++ or clang++) and none was found; "
                          "install one (e.g. apt-get install g++) or set CXX to it, or set compile=false")


def compile_model(model: nn.Module, device: torch.device, *, backend: str = "inductor") -> int:
    """Compile each decoder layer of ``model`` in place (the whole model when it has no ``layers``).

    Off CUDA, rows of documents then use the dense mask (``set_document_attention("dense")``,
    when it was ``"auto"``): per-document SDPA loops over the document lengths, which a compiled
    layer would have to be recompiled for, and torch has no flex-attention backward on CPU. The
    dense mask costs attention time that grows with the square of the row (on one CPU thread,
    a row of 2,167 tokens: 768 ms against 37 ms per document, docs/benchmarks.md), so on CPU
    ``compile`` pays off for short rows or packed data only.

    Args:
        model (nn.Module): a :class:`~torchtune.modules.TransformerDecoder` (or any module).
        device (torch.device): the training device.
        backend (str): the ``torch.compile`` backend. Default ``"inductor"``.

    Returns:
        int: the number of modules compiled.
    """
    layers = getattr(model, "layers", None)
    if layers is None:
        model.compile(backend=backend)
        return 1
    for layer in layers:
        layer.compile(backend=backend)
    if device.type != "cuda" and getattr(model, "document_attention", None) == "auto":
        model.set_document_attention("dense")
        logger.info("compile on %s: rows of documents use the dense block-causal mask", device.type)
    logger.info("compiled %d decoder layers with backend %s", len(layers), backend)
    return len(layers)
