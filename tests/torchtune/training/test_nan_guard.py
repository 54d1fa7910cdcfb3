import math

import pytest
import torch

from torchtune.training import TrainingDivergedError, check_finite


@pytest.mark.parametrize("value", [torch.tensor(1.5), torch.tensor([0.0, -2.0]), 3.0, torch.tensor(1.0, dtype=torch.bfloat16)])
def test_finite_values_pass(value):
    check_finite(value, step=1)


@pytest.mark.parametrize(
    "value, shown",
    [(torch.tensor(float("nan")), "nan"), (torch.tensor([1.0, float("-inf")]), "-inf"), (math.inf, "inf")],
)
def test_non_finite_raises_with_step_and_advice(value, shown):
    with pytest.raises(TrainingDivergedError) as info:
        check_finite(value, step=42)
    msg = str(info.value)
    assert msg.startswith(f"loss is {shown} at step 42: training diverged.")
    assert "the weights and the last saved checkpoint are unaffected" in msg
    assert "lower learning rate" in msg and "check the data" in msg
    assert isinstance(info.value, FloatingPointError) and info.value.step == 42


def test_custom_name():
    with pytest.raises(TrainingDivergedError, match=r"^grad_norm is nan at step 3"):
        check_finite(torch.tensor(float("nan")), step=3, name="grad_norm")
