"""release_freed_memory gives freed heap blocks back to the operating system (glibc)."""

import platform
import sys

import pytest
import torch

from torchtune import training

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
MIB = 1024**2


def resident_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is glibc's")
def test_freed_blocks_between_live_ones_go_back_to_the_system():
    # As when a model replaces its initial weights: 8 MiB blocks freed with small live blocks
    # allocated after each, so the heap cannot shrink from its top.
    torch.empty(8 * MIB, dtype=torch.uint8).fill_(1)  # freeing one mmapped block raises glibc's threshold
    big, small = [], []
    for _ in range(48):
        big.append(torch.ones(8 * MIB, dtype=torch.uint8))
        small.append(torch.ones(64 * 1024, dtype=torch.uint8))
    del big
    before = resident_bytes()
    assert training.release_freed_memory() is True
    after = resident_bytes()
    # 384 MiB were freed; without the trim glibc keeps (most of) them resident
    assert before - after > 200 * MIB, (before / MIB, after / MIB)
    assert all(int(s.sum()) == 64 * 1024 for s in small)  # the live blocks are untouched


def test_off_glibc_it_only_collects(monkeypatch):
    monkeypatch.setattr(platform, "libc_ver", lambda *a, **k: ("", ""))
    assert training.release_freed_memory() is False
