"""Sampling: greedy, top-k and top-p filters against direct references, and draws."""

import pytest
import torch

from torchtune.generation import sample_next_token, top_k_filter, top_p_filter


def _reference_top_k(logits: torch.Tensor, k: int) -> torch.Tensor:
    out = torch.full_like(logits, float("-inf"))
    for row in range(logits.shape[0]):
        keep = sorted(range(logits.shape[1]), key=lambda j: -logits[row, j].item())[:k]
        out[row, keep] = logits[row, keep]
    return out


def _reference_top_p(logits: torch.Tensor, p: float) -> torch.Tensor:
    out = torch.full_like(logits, float("-inf"))
    probs = torch.softmax(logits.double(), dim=-1)
    for row in range(logits.shape[0]):
        order = sorted(range(logits.shape[1]), key=lambda j: -probs[row, j].item())
        mass = 0.0
        for j in order:
            out[row, j] = logits[row, j]
            mass += probs[row, j].item()
            if mass >= p:
                break
    return out


def test_top_k_filter_matches_reference() -> None:
    torch.manual_seed(0)
    logits = torch.randn(4, 11)
    for k in (1, 3, 11, 20):
        torch.testing.assert_close(top_k_filter(logits, k), _reference_top_k(logits, min(k, 11)))


def test_top_p_filter_matches_reference() -> None:
    torch.manual_seed(1)
    logits = torch.randn(5, 9) * 2
    for p in (0.05, 0.3, 0.75, 0.95, 1.0):
        torch.testing.assert_close(top_p_filter(logits, p), _reference_top_p(logits, p))


def test_greedy_is_argmax() -> None:
    torch.manual_seed(2)
    logits = torch.randn(6, 13)
    assert torch.equal(sample_next_token(logits, temperature=0.0), logits.argmax(-1))


def test_sampling_respects_filters_and_distribution() -> None:
    torch.manual_seed(3)
    logits = torch.randn(1, 8)
    gen = torch.Generator().manual_seed(0)
    draws = torch.stack(
        [sample_next_token(logits, temperature=0.7, top_k=3, generator=gen) for _ in range(3000)]
    ).flatten()
    allowed = set(torch.topk(logits[0], 3).indices.tolist())
    assert set(draws.tolist()) == allowed
    expected = torch.softmax(_reference_top_k(logits / 0.7, 3)[0], dim=-1)
    freq = torch.bincount(draws, minlength=8).float() / draws.numel()
    torch.testing.assert_close(freq, expected, atol=0.03, rtol=0)


def test_top_p_sampling_stays_in_nucleus() -> None:
    torch.manual_seed(4)
    logits = torch.randn(2, 10) * 3
    gen = torch.Generator().manual_seed(1)
    allowed = torch.isfinite(_reference_top_p(logits, 0.6))
    for _ in range(200):
        tok = sample_next_token(logits, top_p=0.6, generator=gen)
        assert allowed[torch.arange(2), tok].all()


def test_same_generator_seed_same_draws() -> None:
    logits = torch.randn(3, 50, generator=torch.Generator().manual_seed(5))
    a = sample_next_token(logits, generator=torch.Generator().manual_seed(7))
    b = sample_next_token(logits, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(temperature=-0.1), "temperature=-0.1 must be >= 0"),
        (dict(top_k=0), "top_k=0 must be a positive int"),
        (dict(top_p=0.0), r"top_p=0.0 must be in \(0, 1\]"),
        (dict(top_p=1.5), r"top_p=1.5 must be in \(0, 1\]"),
    ],
)
def test_bad_sampling_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sample_next_token(torch.zeros(1, 4), **kwargs)


def test_logits_must_be_2d() -> None:
    with pytest.raises(ValueError, match=r"logits must be \[b, v\], got shape \[4\]"):
        sample_next_token(torch.zeros(4))


def test_per_row_generators_make_each_row_independent_of_the_batch() -> None:
    torch.manual_seed(2)
    logits = torch.randn(4, 50)
    seeds = [11, 12, 13, 14]
    together = sample_next_token(logits, temperature=1.0, top_p=0.9,
                                 generator=[torch.Generator().manual_seed(s) for s in seeds])
    # each row alone, with its own generator, and a direct draw from that row's filtered softmax
    for i, s in enumerate(seeds):
        alone = sample_next_token(logits[i : i + 1], temperature=1.0, top_p=0.9,
                                  generator=[torch.Generator().manual_seed(s)])
        probs = torch.softmax(_reference_top_p(logits[i : i + 1], 0.9), dim=-1)
        direct = torch.multinomial(probs, 1, generator=torch.Generator().manual_seed(s))
        assert int(together[i]) == int(alone[0]) == int(direct[0, 0])


def test_per_row_generators_must_match_the_rows() -> None:
    with pytest.raises(ValueError, match="got 2 generators for 3 rows"):
        sample_next_token(torch.zeros(3, 5), generator=[torch.Generator(), torch.Generator()])
