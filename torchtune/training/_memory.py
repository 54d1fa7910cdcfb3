"""Peak memory report for logging.

On CUDA this is what the caching allocator handed out (``torch.cuda.max_memory_allocated``)
and reserved, since the last :func:`reset_peak_memory_stats`. On CPU it is the
process's maximum resident set size from ``resource.getrusage``: it covers everything the
process ever held (Python, libraries, data), not only tensors, and cannot be reset.
"""

import resource
import sys

import torch

_GIB = 1024**3


def peak_memory_stats(device: torch.device | str = "cpu") -> dict[str, float]:
    """Return peak memory use in GiB.

    Args:
        device (torch.device | str): the training device. Default: ``"cpu"``.

    Returns:
        dict[str, float]: on CUDA ``peak_memory_alloc`` and ``peak_memory_reserved``
        (since the last reset) and ``peak_memory_active``; on other devices
        ``peak_memory_rss`` (process lifetime).
    """
    device = torch.device(device)
    if device.type == "cuda":
        stats = torch.cuda.memory_stats(device)
        return {
            "peak_memory_active": stats.get("active_bytes.all.peak", 0) / _GIB,
            "peak_memory_alloc": torch.cuda.max_memory_allocated(device) / _GIB,
            "peak_memory_reserved": torch.cuda.max_memory_reserved(device) / _GIB,
        }
    return {"peak_memory_rss": max_rss_bytes() / _GIB}


def reset_peak_memory_stats(device: torch.device | str = "cpu") -> None:
    """Reset CUDA peak counters; a no-op on CPU (max RSS cannot be reset)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def max_rss_bytes() -> int:
    """The process's maximum resident set size in bytes (``ru_maxrss`` is KiB on Linux,
    bytes on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss) if sys.platform == "darwin" else int(rss) * 1024
