"""release_freed_memory gives freed heap blocks back to the operating system (glibc)."""

import os
import platform
import subprocess
import sys

import pytest

from torchtune import training

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"

_FREED_BETWEEN_LIVE = """
import torch
from torchtune import training

MIB = 1024**2

def resident_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096

# As when a model replaces its initial weights: 8 MiB blocks freed with small live blocks
# allocated after each, so the heap cannot shrink from its top.
torch.empty(8 * MIB, dtype=torch.uint8).fill_(1)  # freeing one mmapped block raises glibc's threshold
big, small = [], []
for _ in range(48):
    big.append(torch.ones(8 * MIB, dtype=torch.uint8))
    small.append(torch.ones(64 * 1024, dtype=torch.uint8))
del big
before = resident_bytes()
released = training.release_freed_memory()
after = resident_bytes()
intact = all(int(s.sum()) == 64 * 1024 for s in small)
print(released, before // MIB, after // MIB, intact)
"""


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is glibc's")
def test_freed_blocks_between_live_ones_go_back_to_the_system():
    # A fresh interpreter: what glibc keeps resident depends on the heap's history (its dynamic
    # mmap threshold, holes left by earlier tests), which a test in a shared process cannot control.
    out = subprocess.run([sys.executable, "-c", _FREED_BETWEEN_LIVE], capture_output=True, text=True,
                         check=True, env={**os.environ, "OMP_NUM_THREADS": "1",
                                          "PYTHONPATH": os.pathsep.join(sys.path)}).stdout.split()
    released, before, after, intact = out[-4] == "True", int(out[-3]), int(out[-2]), out[-1] == "True"
    assert released
    # 384 MiB were freed; without the trim glibc keeps (most of) them resident
    assert before - after > 200, (before, after)
    assert intact  # the live blocks are untouched


def test_off_glibc_it_only_collects(monkeypatch):
    monkeypatch.setattr(platform, "libc_ver", lambda *a, **k: ("", ""))
    assert training.release_freed_memory() is False
