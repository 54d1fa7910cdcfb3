"""Validation loss over a held-out set, on one process or split across several."""

from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from torchtune.training._distributed import is_distributed


@torch.no_grad()
def validation_loss(
    model: nn.Module,
    loss_step: Callable[[Any], tuple[torch.Tensor, int]],
    batches: Iterable[Any],
    *,
    max_batches: int | None = None,
) -> float:
    """Mean token loss over held-out batches, with the model in eval mode.

    When distributed, each process passes its own share of the batches (e.g. a loader over
    :func:`torchtune.data.epoch_sample_order` with ``shuffle=False``); the sums are added over
    processes, so the result is the mean over every process's tokens. Every process must then
    see the same number of batches.

    Args:
        model (nn.Module): the model (put in eval mode, then back in train mode).
        loss_step (Callable[[Any], tuple[torch.Tensor, int]]): batch -> (summed token loss, token
            count), the recipe's own forward (e.g. its ``forward_loss``).
        batches (Iterable[Any]): this process's validation batches.
        max_batches (int | None): stop after this many batches per process. Default None.

    Returns:
        float: the mean token loss (0 when there are no tokens).
    """
    was_training = model.training
    model.eval()
    total = torch.zeros(2, dtype=torch.float64)  # summed loss, token count
    for i, batch in enumerate(batches):
        if max_batches is not None and i >= max_batches:
            break
        loss_sum, count = loss_step(batch)
        total += torch.tensor([float(loss_sum), float(count)], dtype=torch.float64)
    if is_distributed():
        device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
        total = total.to(device)
        dist.all_reduce(total)
    model.train(was_training)
    return float(total[0] / total[1].clamp(min=1))
