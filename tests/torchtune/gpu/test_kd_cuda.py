"""GPU checks of the distillation loss: equal to full-logit references on CUDA, and its peak CUDA
memory far below that of materialising both models' logits.

Tagged `gpu`; every test skips cleanly on a machine without CUDA.
"""

import pytest
import torch
import torch.nn.functional as F

from torchtune.modules import distillation_loss

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _inputs(n: int, d: int, d_t: int, v: int, device: str):
    gen = torch.Generator(device).manual_seed(0)
    w_s = (torch.randn(v, d, generator=gen, device=device) * 0.05).requires_grad_(True)
    w_t = torch.randn(v, d_t, generator=gen, device=device) * 0.05
    hidden = torch.randn(1, n, d, generator=gen, device=device).requires_grad_(True)
    teacher_hidden = torch.randn(1, n, d_t, generator=gen, device=device)
    labels = torch.randint(0, v, (1, n), generator=gen, device=device)
    return w_s, w_t, hidden, teacher_hidden, labels


def _full_logits_loss(w_s, w_t, hidden, teacher_hidden, labels) -> torch.Tensor:
    s = (hidden @ w_s.T)[0].float()  # [n, v]
    with torch.no_grad():
        t = (teacher_hidden @ w_t.T)[0].float()  # [n, v]
    kd = F.kl_div(F.log_softmax(s, -1), F.log_softmax(t, -1), log_target=True, reduction="batchmean")
    return 0.5 * F.cross_entropy(s, labels[0]) + 0.5 * kd


def _chunked_loss(w_s, w_t, hidden, teacher_hidden, labels, num_chunks: int = 8) -> torch.Tensor:
    return distillation_loss(hidden, teacher_hidden, labels, student_project=lambda h: h @ w_s.T,
                             teacher_project=lambda h: h @ w_t.T, kd_ratio=0.5, num_chunks=num_chunks).loss


def test_chunked_loss_and_gradients_equal_full_logits_on_cuda():
    w_s, w_t, hidden, teacher_hidden, labels = _inputs(1024, 64, 96, 4096, "cuda")
    got = _chunked_loss(w_s, w_t, hidden, teacher_hidden, labels)
    got.backward()
    got_grads = (w_s.grad.clone(), hidden.grad.clone())
    w_s.grad = hidden.grad = None
    expected = _full_logits_loss(w_s, w_t, hidden, teacher_hidden, labels)
    expected.backward()
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got_grads[0], w_s.grad, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(got_grads[1], hidden.grad, rtol=1e-4, atol=1e-7)


def _peak_bytes(loss_fn, *inputs) -> int:
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    loss_fn(*inputs).backward()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - base


def test_chunked_peak_memory_is_far_below_full_logits_on_cuda():
    n, v = 8192, 32000
    inputs = _inputs(n, 256, 384, v, "cuda")
    logits_bytes = n * v * 4  # one [n, v] fp32 tensor: 1 GiB
    chunked = _peak_bytes(lambda *x: _chunked_loss(*x, num_chunks=32), *inputs)  # 256-row chunks: 33 MB logits
    for t in (inputs[0], inputs[2]):
        t.grad = None
    full = _peak_bytes(_full_logits_loss, *inputs)
    assert full > 2 * logits_bytes
    assert chunked < logits_bytes / 2 and chunked < full / 4, (chunked, full, logits_bytes)
