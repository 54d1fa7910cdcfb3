"""Recipe state: exact round trips without pickle."""

import json
import random

import numpy as np
import pytest
import torch

from torchtune.training import get_rng_state, set_rng_state
from torchtune.training.checkpointing import (
    load_recipe_state,
    save_recipe_state,
)


def _trained_optimizer(cls, **kwargs):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    optim = cls([{"params": model[0].parameters()}, {"params": model[1].parameters(), "lr": 0.5}], **kwargs)
    sched = torch.optim.lr_scheduler.StepLR(optim, step_size=2, gamma=0.5)
    for _ in range(3):
        model(torch.randn(5, 3)).square().mean().backward()
        optim.step()
        sched.step()
    return model, optim, sched


def _assert_equal_nested(a, b):
    assert type(a) is type(b), (a, b)
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            _assert_equal_nested(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_equal_nested(x, y)
    else:
        assert a == b


@pytest.mark.parametrize(
    "cls, kwargs",
    [(torch.optim.AdamW, {"lr": 0.1, "betas": (0.8, 0.9)}), (torch.optim.SGD, {"lr": 0.1, "momentum": 0.9})],
)
def test_optimizer_and_scheduler_round_trip_exactly(tmp_path, cls, kwargs):
    model, optim, sched = _trained_optimizer(cls, **kwargs)
    save_recipe_state(tmp_path, step=3, epoch=1, seed=5, samples_seen=12, optimizer=optim,
                      lr_scheduler=sched, loss_history=[0.1, float("nan"), 1 / 3], extra={"tokens": 99})
    state = load_recipe_state(tmp_path)
    _assert_equal_nested(state["optimizer"], optim.state_dict())
    _assert_equal_nested(state["lr_scheduler"], sched.state_dict())
    assert (state["step"], state["epoch"], state["seed"], state["samples_seen"]) == (3, 1, 5, 12)
    assert state["loss_history"][0] == 0.1 and state["loss_history"][2] == 1 / 3
    assert np.isnan(state["loss_history"][1])
    assert state["extra"] == {"tokens": 99}
    # the loaded state drives a fresh optimizer to the same next step
    _, fresh, _ = _trained_optimizer(cls, **kwargs)
    fresh.load_state_dict(state["optimizer"])
    _assert_equal_nested(fresh.state_dict(), optim.state_dict())


def test_files_hold_no_pickle(tmp_path):
    _, optim, sched = _trained_optimizer(torch.optim.AdamW, lr=0.1)
    save_recipe_state(tmp_path, step=1, epoch=0, optimizer=optim, lr_scheduler=sched)
    json.loads((tmp_path / "recipe_state.json").read_text())
    raw = (tmp_path / "recipe_state.safetensors").read_bytes()
    header_len = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + header_len])  # a safetensors file: JSON header, raw tensor bytes
    assert "state.optimizer.state.0.exp_avg" in header and "state.rng.torch_cpu" in header


def test_rng_state_round_trip(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    np.random.normal()  # populate NumPy's cached gaussian
    save_recipe_state(tmp_path, step=0, epoch=0)
    expected = (random.random(), np.random.normal(), torch.rand(3))
    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    set_rng_state(load_recipe_state(tmp_path)["rng"])
    got = (random.random(), np.random.normal(), torch.rand(3))
    assert got[0] == expected[0] and got[1] == expected[1] and torch.equal(got[2], expected[2])
    rng = get_rng_state()
    assert rng["torch_cpu"].dtype == torch.uint8 and rng["torch_cuda"] == []


def test_colliding_paths_and_odd_keys_round_trip(tmp_path):
    extra = {"a.b": torch.ones(2), "a": {"b": torch.zeros(2)}, "__tensor__": 1, (1, 2): [None, True]}
    save_recipe_state(tmp_path, step=0, epoch=0, extra=extra)
    _assert_equal_nested(load_recipe_state(tmp_path)["extra"], extra)


def test_unsupported_value_is_rejected(tmp_path):
    with pytest.raises(TypeError, match=r"recipe state at 'state.extra.fn' has type function"):
        save_recipe_state(tmp_path, step=0, epoch=0, extra={"fn": lambda: 0})


def test_missing_files_and_unknown_version(tmp_path):
    with pytest.raises(FileNotFoundError, match="recipe_state.json not found in"):
        load_recipe_state(tmp_path)
    save_recipe_state(tmp_path, step=0, epoch=0)
    path = tmp_path / "recipe_state.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "version": 7}))
    with pytest.raises(ValueError, match="recipe state version=7 is not supported"):
        load_recipe_state(tmp_path)


def test_only_torchao_optimizer_states_are_rebuilt_from_a_class_name(tmp_path):
    save_recipe_state(tmp_path, step=0, epoch=0, extra={"dtype": torch.bfloat16})
    assert load_recipe_state(tmp_path)["extra"]["dtype"] is torch.bfloat16
    path = tmp_path / "recipe_state.json"
    state = json.loads(path.read_text())
    state["extra"] = {"x": {"__subclass__": "torch.nn.parameter.Parameter", "tensors": {}, "attrs": [],
                            "shape": [1], "stride": [1]}}
    path.write_text(json.dumps(state))
    with pytest.raises(ValueError, match=r"tensor class 'torch.nn.parameter.Parameter'; only classes under torchao.optim."):
        load_recipe_state(tmp_path)
