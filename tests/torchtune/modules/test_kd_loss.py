"""Distillation loss against torch.nn.functional on the full logits (and a float64 Jensen-Shannon
written out here), chunked and projected as the recipes run it."""

import math

import pytest
import torch
import torch.nn.functional as F

from torchtune.models import model_from_hf_config
from torchtune.modules import KDLoss, distillation_loss, token_divergence

V = 40
STUDENT = {"model_type": "llama", "vocab_size": V, "hidden_size": 16, "intermediate_size": 24,
           "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "rms_norm_eps": 1e-5,
           "rope_theta": 10000.0, "max_position_embeddings": 700, "hidden_act": "silu"}
TEACHER = {**STUDENT, "hidden_size": 24, "intermediate_size": 32, "num_hidden_layers": 3}


def _labels(b: int, s: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, V, (b, s), generator=g)
    labels[:, : s // 3] = -100  # a prompt
    labels[0, -2:] = -100  # padding
    return labels


def _reference(student_logits, teacher_logits, labels, divergence, temperature, kd_ratio):
    """The loss from the full [b, s, v] logits with torch.nn.functional (JS written out in float64)."""
    keep = labels.reshape(-1) != -100
    s = student_logits.reshape(-1, V)[keep].float()
    t = teacher_logits.reshape(-1, V)[keep].float()
    ce = F.cross_entropy(s, labels.reshape(-1)[keep])
    log_s, log_t = F.log_softmax(s / temperature, -1), F.log_softmax(t / temperature, -1)
    if divergence == "forward":  # KL(teacher || student): kl_div(input=log q, target=log p) = KL(p || q)
        kd = F.kl_div(log_s, log_t, log_target=True, reduction="sum") / keep.sum()
    elif divergence == "reverse":
        kd = F.kl_div(log_t, log_s, log_target=True, reduction="sum") / keep.sum()
    else:
        p, q = log_t.double().exp(), log_s.double().exp()
        m = (p + q) / 2
        kd = (0.5 * (p * (p / m).log()).sum(-1) + 0.5 * (q * (q / m).log()).sum(-1)).mean().float()
    kd = kd * temperature**2
    return (1 - kd_ratio) * ce + kd_ratio * kd, ce, kd


@pytest.mark.parametrize("recompute", [True, False])
@pytest.mark.parametrize("divergence", ["forward", "reverse", "js"])
@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_loss_and_gradients_equal_full_logit_reference(divergence, temperature, recompute):
    torch.manual_seed(0)
    labels = _labels(3, 300)  # 600 scored rows: three chunks of >= 256 rows
    student = torch.randn(3, 300, V, requires_grad=True)
    teacher = torch.randn(3, 300, V) * 2
    out = distillation_loss(student, teacher, labels, kd_ratio=0.3, divergence=divergence, temperature=temperature,
                            num_chunks=3, recompute=recompute)
    ref_student = student.detach().clone().requires_grad_(True)
    expected, ce, kd = _reference(ref_student, teacher, labels, divergence, temperature, 0.3)
    torch.testing.assert_close(out.loss, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.ce, ce, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.kd, kd, rtol=1e-5, atol=1e-6)
    assert out.num_tokens == int((labels != -100).sum())
    out.loss.backward()
    expected.backward()
    torch.testing.assert_close(student.grad, ref_student.grad, rtol=1e-5, atol=1e-8)


def test_identical_distributions_have_zero_divergence():
    logits = torch.randn(5, V)
    for divergence in ("forward", "reverse", "js"):
        torch.testing.assert_close(token_divergence(logits, logits.clone(), divergence), torch.zeros(5), atol=1e-6,
                                   rtol=0)
    # JS is bounded by log 2, reached for disjoint supports
    far = torch.full((1, V), -1e4)
    far[0, 0], near = 1e4, torch.full((1, V), -1e4)
    near[0, 1] = 1e4
    assert float(token_divergence(far, near, "js")) == pytest.approx(math.log(2), abs=1e-5)


def test_projected_chunks_of_two_models_equal_their_full_logits():
    """As the recipes run it: both models return hidden states at the labelled positions only and
    the loss projects them chunk by chunk; equal to the reference on the models' full logits."""
    torch.manual_seed(0)
    student = model_from_hf_config(STUDENT).float()
    teacher = model_from_hf_config(TEACHER).float().eval().requires_grad_(False)
    tokens = torch.randint(0, V, (2, 320))
    labels = _labels(2, 320, seed=1)
    keep = torch.nonzero(labels.reshape(-1) != -100).squeeze(1)
    hidden = student(tokens, output_index=keep, output="hidden")  # [1, n, d]
    with torch.no_grad():
        teacher_hidden = teacher(tokens, output_index=keep, output="hidden")  # [1, n, d_t]
    loss_fn = KDLoss(kd_ratio=0.5, divergence="forward", num_output_chunks=4)
    out = loss_fn(hidden, teacher_hidden, labels.reshape(1, -1)[:, keep], student_project=student.project,
                  teacher_project=teacher.project)
    out.loss.backward()
    got_grads = {n: p.grad.clone() for n, p in student.named_parameters()}
    student.zero_grad()

    full = student(tokens)  # [b, s, v]
    with torch.no_grad():
        teacher_full = teacher(tokens)
    expected, _, _ = _reference(full, teacher_full, labels, "forward", 1.0, 0.5)
    expected.backward()
    torch.testing.assert_close(out.loss, expected, rtol=1e-5, atol=1e-6)
    for name, p in student.named_parameters():
        torch.testing.assert_close(got_grads[name], p.grad, rtol=1e-4, atol=1e-7, msg=name)
    assert all(p.grad is None for p in teacher.parameters())


def test_teacher_logits_are_never_whole(monkeypatch):
    """The teacher's projection only ever sees one chunk of rows, in forward and in backward."""
    torch.manual_seed(0)
    rows_seen = []
    weight = torch.randn(V, 8)

    def teacher_project(h):
        rows_seen.append(h.shape[0])
        return h @ weight.T

    labels = _labels(1, 1200)
    student = torch.randn(1, 1200, V, requires_grad=True)
    out = distillation_loss(student, torch.randn(1, 1200, 8), labels, teacher_project=teacher_project, num_chunks=2)
    out.loss.backward()
    n = int((labels != -100).sum())
    assert max(rows_seen) == -(-n // 2) < n
    assert sum(rows_seen) == 2 * n  # each chunk once forward, once recomputed in backward


def test_teacher_with_another_vocabulary_is_named():
    labels = _labels(1, 12)
    with pytest.raises(ValueError, match=r"teacher's vocabulary \(v=50\) differs from the student's \(v=40\)"):
        distillation_loss(torch.randn(1, 12, V), torch.randn(1, 12, 8), labels,
                          teacher_project=lambda h: torch.zeros(h.shape[0], 50))


def test_no_scored_position_gives_zero_and_backward_works():
    student = torch.randn(1, 5, V, requires_grad=True)
    out = distillation_loss(student, torch.randn(1, 5, V), torch.full((1, 5), -100))
    assert float(out.loss.detach()) == 0.0 and out.num_tokens == 0
    out.loss.backward()
    assert torch.equal(student.grad, torch.zeros_like(student))


@pytest.mark.parametrize("kwargs, message", [
    ({"kd_ratio": 1.5}, "kd_ratio=1.5 must lie in"),
    ({"divergence": "symmetric"}, "divergence='symmetric' must be one of"),
    ({"temperature": 0.0}, "temperature=0.0 must be > 0"),
    ({"num_output_chunks": 0}, "num_output_chunks=0 must be >= 1"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        KDLoss(**kwargs)


def _saved_bytes(fn) -> int:
    """Bytes of the tensors autograd keeps for backward while ``fn()`` runs forward."""
    sizes = []

    def pack(t):
        sizes.append(t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn().backward()
    return sum(sizes)


def test_memory_kept_for_backward_is_far_below_one_batch_of_logits():
    """Between forward and backward the chunked loss keeps hidden states, not [n, v] logits of
    either model; the full-logit computation keeps several [n, v] tensors."""
    torch.manual_seed(0)
    n, d, v = 1200, 16, 512
    w_s, w_t = torch.randn(v, d, requires_grad=True), torch.randn(v, d)
    hidden, teacher_hidden = torch.randn(1, n, d, requires_grad=True), torch.randn(1, n, d)
    labels = torch.randint(0, v, (1, n))
    logits_bytes = n * v * 4

    chunked = _saved_bytes(lambda: distillation_loss(
        hidden, teacher_hidden, labels, student_project=lambda h: h @ w_s.T, teacher_project=lambda h: h @ w_t.T,
        num_chunks=4).loss)

    def full_logits_loss():
        s, t = (hidden @ w_s.T)[0], (teacher_hidden @ w_t.T)[0]  # [n, v]
        kd = F.kl_div(F.log_softmax(s, -1), F.log_softmax(t, -1), log_target=True, reduction="batchmean")
        return 0.5 * F.cross_entropy(s, labels[0]) + 0.5 * kd

    full = _saved_bytes(full_logits_loss)
    kept = _saved_bytes(lambda: distillation_loss(
        hidden, teacher_hidden, labels, student_project=lambda h: h @ w_s.T, teacher_project=lambda h: h @ w_t.T,
        num_chunks=4, recompute=False).loss)
    assert full >= 2 * logits_bytes and kept >= logits_bytes  # recompute=False keeps every chunk's softmax
    assert chunked < logits_bytes / 8, (chunked, full, logits_bytes)  # measured 0.17 MB vs 9.9 MB (logits 2.5 MB)
