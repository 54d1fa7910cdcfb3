import pytest
import torch
import transformers

from torchtune.training import get_cosine_schedule_with_warmup, get_linear_schedule_with_warmup


def _lrs(make, steps, **kwargs):
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=0.3)
    sched = make(opt, **kwargs)
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


@pytest.mark.parametrize(
    "warmup, total, cycles",
    [(0, 10, 0.5), (3, 10, 0.5), (4, 12, 1.5), (10, 10, 0.5), (2, 7, 0.25)],
)
def test_cosine_matches_transformers(warmup, total, cycles):
    kwargs = dict(num_warmup_steps=warmup, num_training_steps=total, num_cycles=cycles)
    ours = _lrs(get_cosine_schedule_with_warmup, total + 3, **kwargs)
    ref = _lrs(transformers.get_cosine_schedule_with_warmup, total + 3, **kwargs)
    assert ours == pytest.approx(ref, abs=1e-12)


@pytest.mark.parametrize("warmup, total", [(0, 5), (2, 9), (9, 9)])
def test_linear_matches_transformers(warmup, total):
    kwargs = dict(num_warmup_steps=warmup, num_training_steps=total)
    ours = _lrs(get_linear_schedule_with_warmup, total + 3, **kwargs)
    ref = _lrs(transformers.get_linear_schedule_with_warmup, total + 3, **kwargs)
    assert ours == pytest.approx(ref, abs=1e-12)


@pytest.mark.parametrize("make", [get_cosine_schedule_with_warmup, get_linear_schedule_with_warmup])
def test_state_dict_round_trip(make, tmp_path):
    def build():
        param = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.SGD([param], lr=0.3)
        return opt, make(opt, num_warmup_steps=2, num_training_steps=10)

    opt, sched = build()
    for _ in range(4):
        opt.step()
        sched.step()
    torch.save({"opt": opt.state_dict(), "sched": sched.state_dict()}, tmp_path / "s.pt")
    expected = []
    for _ in range(4):
        opt.step()
        sched.step()
        expected.append(opt.param_groups[0]["lr"])

    state = torch.load(tmp_path / "s.pt", weights_only=True)
    opt2, sched2 = build()
    opt2.load_state_dict(state["opt"])
    sched2.load_state_dict(state["sched"])
    resumed = []
    for _ in range(4):
        opt2.step()
        sched2.step()
        resumed.append(opt2.param_groups[0]["lr"])
    assert resumed == expected


@pytest.mark.parametrize(
    "warmup, total, message",
    [(-1, 10, r"num_warmup_steps=-1 must be >= 0"), (0, 0, r"num_training_steps=0 must be >= 1")],
)
@pytest.mark.parametrize("make", [get_cosine_schedule_with_warmup, get_linear_schedule_with_warmup])
def test_bad_arguments(make, warmup, total, message):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(ValueError, match=message):
        make(opt, num_warmup_steps=warmup, num_training_steps=total)
