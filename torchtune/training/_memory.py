"""Peak memory report for logging.

On CUDA this is what the caching allocator handed out (``torch.cuda.max_memory_allocated``)
and reserved, since the last :func:`reset_peak_memory_stats`. On CPU it is the
process's maximum resident set size from ``resource.getrusage``: it covers everything the
process ever held (Python, libraries, data), not only tensors, and cannot be reset.
"""

import ctypes
import gc
import platform
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


def release_freed_memory() -> bool:
    """Hand the memory that Python and torch have freed back to the operating system.

    Building a model and loading its checkpoint frees many large blocks: the random initial
    weights that loaded ones replace, full-precision weights replaced by their quantised form
    (``quantize_base``), the loaded state dict itself. glibc keeps freed blocks smaller than its
    (self-raising) mmap threshold inside the heap, between blocks still in use, and later
    allocations reuse them only in part, so the process stays that much larger for the rest of the
    run. This runs the garbage collector and then glibc's ``malloc_trim(0)``, which returns the
    free pages inside the heap. The recipes call it once, after the model is built and loaded.

    Returns:
        bool: True when memory was trimmed; False where the C library is not glibc (nothing to
        do there but the garbage collection).
    """
    gc.collect()
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    libc.malloc_trim(0)
    return True
