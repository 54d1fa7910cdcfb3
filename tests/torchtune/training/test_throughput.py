import resource

import pytest
import torch

from torchtune.training import (
    TokensPerSecond,
    count_tokens,
    max_rss_bytes,
    peak_memory_stats,
    reset_peak_memory_stats,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_count_tokens_skips_padding_and_ignored_labels():
    tokens = torch.tensor([[5, 6, 0, 0], [7, 0, 0, 0]])
    assert count_tokens(tokens) == 8
    assert count_tokens(tokens, pad_id=0) == 3
    labels = torch.tensor([[-100, 6, 0, -100]])
    assert count_tokens(labels, ignore_index=-100) == 2
    assert count_tokens(labels, pad_id=0, ignore_index=-100) == 1


def test_rate_over_windows():
    clock = FakeClock()
    meter = TokensPerSecond(pad_id=0, clock=clock)
    assert meter.rate() == 0.0
    assert meter.update(torch.tensor([[1, 2, 0], [3, 0, 0]])) == 3
    meter.update(7)
    clock.now += 2.0
    assert meter.rate() == 5.0 and meter.elapsed() == 2.0
    meter.reset()
    meter.update(6)
    clock.now += 3.0
    assert meter.rate() == 2.0 and meter.total_tokens == 16


def test_negative_count():
    with pytest.raises(ValueError, match="token count -1 must be >= 0"):
        TokensPerSecond().update(-1)


def test_cpu_peak_memory_is_max_rss():
    stats = peak_memory_stats("cpu")
    assert list(stats) == ["peak_memory_rss"]
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert max_rss_bytes() >= kib * 1024 > 0
    assert stats["peak_memory_rss"] == pytest.approx(kib * 1024 / 1024**3, rel=0.5)
    reset_peak_memory_stats("cpu")  # no-op, must not fail


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_peak_memory():
    reset_peak_memory_stats("cuda")
    x = torch.empty(256 * 1024**2, dtype=torch.uint8, device="cuda")
    stats = peak_memory_stats("cuda")
    assert stats["peak_memory_alloc"] >= 0.25
    del x
