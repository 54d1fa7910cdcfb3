"""Turning next-token logits into token ids: temperature, top-k, top-p and greedy decoding.

Notation: b batch, v vocab.
"""

from collections.abc import Sequence

import torch


def _check_sampling_args(temperature: float, top_k: int | None, top_p: float | None) -> None:
    if temperature < 0:
        raise ValueError(f"temperature={temperature} must be >= 0 (0 means greedy)")
    if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k={top_k} must be a positive int or None")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p={top_p} must be in (0, 1] or None")


def top_k_filter(logits: torch.Tensor, top_k: int) -> torch.Tensor:
    """Keep the ``top_k`` largest logits of each row and set the others to ``-inf``.

    Ties with the k-th largest value are kept.

    Args:
        logits (torch.Tensor): ``[b, v]``.
        top_k (int): number of logits to keep per row (clipped to ``v``).

    Returns:
        torch.Tensor: filtered logits ``[b, v]``.
    """
    k = min(top_k, logits.shape[-1])
    kth = torch.topk(logits, k, dim=-1).values[:, -1:]  # [b, 1]
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Nucleus filtering: keep the smallest set of most likely tokens whose mass reaches ``top_p``.

    A token is kept when the probability mass of the tokens strictly more likely than it (in
    sorted order) is below ``top_p``; the most likely token is therefore always kept.

    Args:
        logits (torch.Tensor): ``[b, v]``.
        top_p (float): probability mass in ``(0, 1]``.

    Returns:
        torch.Tensor: filtered logits ``[b, v]``.
    """
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)  # [b, v]
    sorted_probs = torch.softmax(sorted_logits.float(), dim=-1)
    mass_before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs  # [b, v]
    drop_sorted = mass_before >= top_p
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)  # back to vocab order
    return logits.masked_fill(drop, float("-inf"))


def sample_next_token(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | Sequence[torch.Generator] | None = None,
) -> torch.Tensor:
    """Pick one token per row from next-token logits.

    The logits are divided by ``temperature``, then filtered by top-k, then by top-p, and a
    token is drawn from the softmax of what remains. ``temperature == 0`` is greedy decoding
    (argmax, filters irrelevant).

    Args:
        logits (torch.Tensor): ``[b, v]`` float.
        temperature (float): softmax temperature, >= 0. Default: 1.0.
        top_k (int | None): keep only the k most likely tokens. Default: None.
        top_p (float | None): keep the smallest set of tokens with this much mass, in
            ``(0, 1]``. Default: None.
        generator (torch.Generator | Sequence[torch.Generator] | None): random source for
            reproducible draws, on the device of ``logits``; or one generator per row, so that
            each row's draw depends only on its own logits and generator, not on the other rows
            of the batch (batches split across processes then sample alike). Default: None.

    Returns:
        torch.Tensor: token ids ``[b]`` long.

    Raises:
        ValueError: when ``logits`` is not 2-D, a sampling argument is out of range, or the
            number of per-row generators is not the number of rows.
    """
    if logits.dim() != 2:
        raise ValueError(f"logits must be [b, v], got shape {list(logits.shape)}")
    _check_sampling_args(temperature, top_k, top_p)
    if temperature == 0:
        return torch.argmax(logits, dim=-1)
    scaled = logits.float() / temperature
    if top_k is not None:
        scaled = top_k_filter(scaled, top_k)
    if top_p is not None:
        scaled = top_p_filter(scaled, top_p)
    probs = torch.softmax(scaled, dim=-1)  # [b, v]
    if generator is None or isinstance(generator, torch.Generator):
        return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(-1)
    if len(generator) != probs.shape[0]:
        raise ValueError(f"got {len(generator)} generators for {probs.shape[0]} rows; pass one per row")
    rows = [torch.multinomial(probs[i : i + 1], num_samples=1, generator=g) for i, g in enumerate(generator)]
    return torch.cat(rows, dim=0).squeeze(-1)  # [b]
