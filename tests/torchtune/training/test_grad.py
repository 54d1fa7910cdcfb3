import math

import pytest
import torch

from torchtune.training import clip_grad_norm, scale_grads


def _model_with_grads():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    model(torch.randn(5, 4)).pow(2).sum().backward()
    return model


@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf])
def test_clip_matches_torch_and_returns_norm(norm_type):
    ours, ref = _model_with_grads(), _model_with_grads()
    norm = clip_grad_norm(ours.parameters(), max_norm=0.1, norm_type=norm_type)
    ref_norm = torch.nn.utils.clip_grad_norm_(ref.parameters(), 0.1, norm_type=norm_type)
    torch.testing.assert_close(norm, ref_norm)
    for a, b in zip(ours.parameters(), ref.parameters()):
        torch.testing.assert_close(a.grad, b.grad)


@pytest.mark.parametrize("norm_type", [2.0, math.inf])
def test_measure_only_leaves_grads(norm_type):
    model, ref = _model_with_grads(), _model_with_grads()
    before = [p.grad.clone() for p in model.parameters()]
    norm = clip_grad_norm(model.parameters(), max_norm=None, norm_type=norm_type)
    ref_norm = torch.nn.utils.clip_grad_norm_(ref.parameters(), float("inf"), norm_type=norm_type)
    torch.testing.assert_close(norm, ref_norm)
    for p, g in zip(model.parameters(), before):
        assert torch.equal(p.grad, g)


def test_measure_without_grads_is_zero():
    assert clip_grad_norm(torch.nn.Linear(2, 2).parameters(), None).item() == 0.0


def test_bad_max_norm():
    with pytest.raises(ValueError, match=r"max_norm=0 must be > 0 \(or None to only measure\)"):
        clip_grad_norm(torch.nn.Linear(2, 2).parameters(), 0)


def test_scale_grads():
    model = _model_with_grads()
    before = [p.grad.clone() for p in model.parameters()]
    scale_grads(model, torch.tensor(0.25))
    for p, g in zip(model.parameters(), before):
        torch.testing.assert_close(p.grad, g * 0.25)
