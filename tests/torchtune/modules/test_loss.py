import pytest
import torch
import torch.nn.functional as F

from torchtune.models import model_from_hf_config
from torchtune.modules import (
    ChunkedCrossEntropyLoss,
    LinearCrossEntropyLoss,
    bind_loss,
    chunked_cross_entropy,
    linear_cross_entropy,
)


def test_matches_cross_entropy_on_full_logits():
    torch.manual_seed(0)
    logits = torch.randn(2, 9, 11, dtype=torch.bfloat16)
    labels = torch.randint(0, 11, (2, 9))
    labels[0, :3] = -100
    labels[1, 7:] = -100
    expected = F.cross_entropy(logits.float().reshape(-1, 11), labels.reshape(-1), ignore_index=-100)
    got = ChunkedCrossEntropyLoss()(list(logits.chunk(4, dim=1)), labels)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(chunked_cross_entropy(logits, labels), expected)


def test_length_mismatch():
    with pytest.raises(ValueError, match="logits chunks cover 4 positions but labels have 5"):
        chunked_cross_entropy([torch.zeros(1, 4, 3)], torch.zeros(1, 5, dtype=torch.long))


# --- LinearCrossEntropyLoss: projects only the labelled positions -------------------------------

TINY = {"model_type": "llama", "vocab_size": 40, "hidden_size": 16, "intermediate_size": 24,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0, "max_position_embeddings": 32, "hidden_act": "silu"}


def _labels(b=2, s=9, v=40):
    torch.manual_seed(1)
    labels = torch.randint(0, v, (b, s))
    labels[0, :4] = -100  # prompt
    labels[1, :2] = -100
    labels[1, 6:] = -100  # padding
    return labels


@pytest.mark.parametrize("num_chunks", [1, 3, 64])
def test_linear_ce_matches_full_logits_loss_and_grads(num_chunks):
    torch.manual_seed(0)
    hidden = torch.randn(2, 9, 8, requires_grad=True)
    proj = torch.nn.Linear(8, 40, bias=False)
    labels = _labels()
    expected = F.cross_entropy(proj(hidden).reshape(-1, 40), labels.reshape(-1), ignore_index=-100)
    exp_grads = torch.autograd.grad(expected, [hidden, proj.weight])
    got = linear_cross_entropy(hidden, labels, proj, num_chunks=num_chunks)
    grads = torch.autograd.grad(got, [hidden, proj.weight])
    torch.testing.assert_close(got, expected)
    for g, e in zip(grads, exp_grads):
        torch.testing.assert_close(g, e)
    assert grads[0][0, :4].abs().sum() == 0  # prompt positions get no gradient


@pytest.mark.parametrize("n, num_chunks, sizes", [(600, 4, [256, 256, 88]), (2000, 4, [500] * 4), (100, 8, [100])])
def test_linear_ce_chunks_are_not_thinner_than_256_rows(n, num_chunks, sizes):
    torch.manual_seed(0)
    hidden = torch.randn(1, n, 4)
    labels = torch.randint(0, 6, (1, n))
    seen = []
    proj = torch.nn.Linear(4, 6, bias=False)

    def project(h):
        seen.append(h.shape[0])
        return proj(h)

    got = linear_cross_entropy(hidden, labels, project, num_chunks=num_chunks)
    assert seen == sizes
    torch.testing.assert_close(got, F.cross_entropy(proj(hidden[0]), labels[0]))


@pytest.mark.parametrize("tied", [False, True])
def test_module_on_model_matches_full_logits(tied):
    torch.manual_seed(0)
    model = model_from_hf_config({**TINY, "tie_word_embeddings": tied})
    tokens = torch.randint(0, 40, (2, 9))
    labels = _labels()
    logits = model(tokens)  # [b, s, v]
    expected = F.cross_entropy(logits.reshape(-1, 40), labels.reshape(-1), ignore_index=-100)
    params = [p for p in model.parameters() if p.requires_grad]
    exp_grads = torch.autograd.grad(expected, params)
    loss_fn = LinearCrossEntropyLoss(num_output_chunks=2)
    assert bind_loss(loss_fn, model) == "hidden"
    hidden = model(tokens, output="hidden")
    assert hidden.shape == (2, 9, TINY["hidden_size"])
    got = loss_fn(hidden, labels)
    torch.testing.assert_close(got, expected)
    for g, e in zip(torch.autograd.grad(got, params), exp_grads):
        torch.testing.assert_close(g, e)
    torch.testing.assert_close(model.project(hidden), logits)


def test_all_labels_ignored_gives_zero_and_backward_works():
    hidden = torch.randn(1, 3, 4, requires_grad=True)
    loss = linear_cross_entropy(hidden, torch.full((1, 3), -100), torch.nn.Linear(4, 5))
    loss.backward()
    assert loss.item() == 0.0 and hidden.grad.abs().sum() == 0


def test_linear_ce_errors():
    with pytest.raises(ValueError, match="num_chunks=0 must be >= 1"):
        linear_cross_entropy(torch.zeros(1, 2, 3), torch.zeros(1, 2, dtype=torch.long), torch.nn.Linear(3, 4), 0)
    with pytest.raises(ValueError, match=r"hidden \[1, 2, 3\] must be \[b, s, d\] with \[b, s\] = labels \[1, 3\]"):
        linear_cross_entropy(torch.zeros(1, 2, 3), torch.zeros(1, 3, dtype=torch.long), torch.nn.Linear(3, 4))
    with pytest.raises(ValueError, match="num_output_chunks=0 must be >= 1"):
        LinearCrossEntropyLoss(num_output_chunks=0)
    with pytest.raises(RuntimeError, match=r"call torchtune.modules.bind_loss\(loss_fn, model\)"):
        LinearCrossEntropyLoss()(torch.zeros(1, 2, 3), torch.zeros(1, 2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"Linear has no project\(\) for LinearCrossEntropyLoss"):
        bind_loss(LinearCrossEntropyLoss(), torch.nn.Linear(2, 2))


def test_bind_loss_reports_what_each_loss_needs():
    model = model_from_hf_config(TINY)
    assert bind_loss(ChunkedCrossEntropyLoss(), model) == "logits"
    assert bind_loss(torch.nn.CrossEntropyLoss(), model) == "logits"  # any loss without model_output
    tokens = torch.randint(0, 40, (1, 5))
    assert model(tokens).shape[-1] == 40 and model(tokens, output="hidden").shape[-1] == TINY["hidden_size"]
    with pytest.raises(ValueError, match="output='probs' must be 'logits' or 'hidden'"):
        model(tokens, output="probs")


def test_deprecated_set_model_output_still_switches_the_model():
    model = model_from_hf_config(TINY)
    loss_fn = LinearCrossEntropyLoss()
    with pytest.warns(DeprecationWarning, match="set_model_output is deprecated"):
        loss_fn.set_model_output(model)
    assert model(torch.randint(0, 40, (1, 5))).shape[-1] == TINY["hidden_size"]
