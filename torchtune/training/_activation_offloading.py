"""Activation offloading: keep the tensors autograd saves for backward in CPU memory.

On CUDA the device-to-host copies run on a side stream, overlapping the forward pass, and the
copies back are queued on the compute stream when backward needs them. Pair it with activation
checkpointing: then only each checkpointed layer's input is saved, and it is those inputs that
move to the host. On CPU the activations already live in host memory, so offloading is a no-op
(a note is logged); ``force=True`` still runs the hooks (a host-to-host copy), which is how the
tests check that it changes nothing.
"""

import logging
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
from torch import nn
from torch.autograd.graph import saved_tensors_hooks

logger = logging.getLogger(__name__)

_streams: dict[torch.device, Any] = {}  # one side stream per GPU, shared by every context


class _Offloaded:
    """A saved tensor's host copy, the device it returns to, and the event ending its copy."""

    __slots__ = ("host", "device", "event")

    def __init__(self, host: torch.Tensor, device: torch.device, event: Any) -> None:
        self.host, self.device, self.event = host, device, event


class OffloadActivations(saved_tensors_hooks):
    """Context manager: tensors saved for backward inside it are moved to CPU memory.

    Parameters (and tensors smaller than ``min_bytes``) stay where they are: weights are
    already in memory and small tensors cost more to move than they save.

    Args:
        min_bytes (int): offload only saved tensors of at least this size. Default 1 MiB.
        force (bool): also copy tensors that are already on the CPU (for tests). Default False.

    Example:
        >>> with OffloadActivations():
        ...     loss = model(tokens).sum()
        >>> loss.backward()  # saved activations come back from the host as needed
    """

    def __init__(self, *, min_bytes: int = 1 << 20, force: bool = False) -> None:
        self.min_bytes = min_bytes
        self.force = force
        self.offloaded = 0  # tensors moved so far (for logs and tests)
        super().__init__(self._pack, self._unpack)

    def _pack(self, tensor: torch.Tensor) -> torch.Tensor | _Offloaded:
        if isinstance(tensor, nn.Parameter) or tensor.numel() * tensor.element_size() < self.min_bytes:
            return tensor
        if tensor.device.type == "cuda":
            return self._pack_cuda(tensor)
        if tensor.device.type == "cpu" and self.force:
            host = torch.empty(tensor.size(), dtype=tensor.dtype, layout=tensor.layout)
            host.copy_(tensor)
            self.offloaded += 1
            return _Offloaded(host, tensor.device, None)
        return tensor

    def _pack_cuda(self, tensor: torch.Tensor) -> _Offloaded:
        if tensor.device not in _streams:
            _streams[tensor.device] = torch.cuda.Stream(tensor.device)
        stream = _streams[tensor.device]
        stream.wait_stream(torch.cuda.current_stream(tensor.device))  # the tensor is written
        with torch.cuda.stream(stream):
            host = torch.empty(tensor.size(), dtype=tensor.dtype, layout=tensor.layout, pin_memory=True)
            host.copy_(tensor, non_blocking=True)
            tensor.record_stream(stream)  # its memory is reused only after the copy
            event = stream.record_event()
        self.offloaded += 1
        return _Offloaded(host, tensor.device, event)

    @staticmethod
    def _unpack(packed: torch.Tensor | _Offloaded) -> torch.Tensor:
        if not isinstance(packed, _Offloaded):
            return packed
        if packed.event is None:
            return packed.host
        current = torch.cuda.current_stream(packed.device)
        current.wait_event(packed.event)  # the host copy is complete
        return packed.host.to(packed.device, non_blocking=True)


def activation_offloading(device: torch.device, enabled: bool) -> AbstractContextManager:
    """The context a recipe runs its forward pass in for ``enable_activation_offloading``.

    Args:
        device (torch.device): the training device.
        enabled (bool): the config's ``enable_activation_offloading``.

    Returns:
        AbstractContextManager: an :class:`OffloadActivations` on CUDA when enabled, else a
        context that does nothing (on CPU, with a logged note, since activations are already in
        host memory).
    """
    if not enabled:
        return nullcontext()
    if device.type != "cuda":
        logger.info("enable_activation_offloading on %s does nothing: activations already live in host memory",
                    device.type)
        return nullcontext()
    return OffloadActivations()
