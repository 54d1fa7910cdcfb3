import random

import numpy as np
import pytest
import torch

from torchtune.training import get_rng_state, set_rng_state, set_seed


def _draw():
    return (random.random(), random.gauss(0, 1), float(np.random.rand()), float(np.random.randn()), torch.rand(3).tolist())


def test_same_seed_same_numbers_and_rank_offsets():
    assert set_seed(5) == 5
    a = _draw()
    set_seed(5)
    assert _draw() == a
    assert set_seed(4, rank=1) == 5
    assert _draw() == a
    set_seed(5, rank=1)
    assert _draw() != a


def test_matches_library_seeding():
    set_seed(123)
    ours = _draw()
    random.seed(123)
    np.random.seed(123)
    torch.manual_seed(123)
    assert _draw() == ours


@pytest.mark.parametrize(
    "seed, rank, message",
    [(-1, 0, r"seed=-1 \(\+ rank=0\) must be in \[0, 4294967295\]"), (2**32 - 1, 1, r"must be in \[0, 4294967295\]"), (0, -1, r"rank=-1 must be >= 0")],
)
def test_bad_seed(seed, rank, message):
    with pytest.raises(ValueError, match=message):
        set_seed(seed, rank=rank)


def test_deterministic_mode_toggles_torch():
    before = torch.are_deterministic_algorithms_enabled()
    try:
        set_seed(0, deterministic=True)
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    finally:
        torch.use_deterministic_algorithms(before)
        torch.backends.cudnn.deterministic = False


def test_rng_state_round_trip_through_weights_only_load(tmp_path):
    set_seed(7)
    random.gauss(0, 1)  # leave a cached gaussian in Python's state
    np.random.randn()  # and in NumPy's
    state = get_rng_state()
    expected = _draw()
    torch.save(state, tmp_path / "rng.pt")
    set_seed(99)
    _draw()
    set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert _draw() == expected


def test_rng_state_holds_only_plain_values():
    state = get_rng_state()
    for key, value in state.items():
        assert value is None or isinstance(value, (int, float, torch.Tensor, list)), key
    assert state["python_state"].shape == (625,) and state["numpy_state"].shape == (624,)


def test_set_rng_state_missing_keys():
    state = get_rng_state()
    del state["numpy_state"], state["torch_cpu"]
    with pytest.raises(KeyError, match=r"RNG state is missing \['numpy_state', 'torch_cpu'\]"):
        set_rng_state(state)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_cuda_state_without_cuda():
    state = get_rng_state()
    state["torch_cuda"] = [torch.get_rng_state()]
    with pytest.raises(ValueError, match="RNG state has 1 CUDA generator states but 0 CUDA devices are visible"):
        set_rng_state(state)
