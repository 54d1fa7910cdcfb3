"""DPO, IPO and SimPO losses and per-sequence log-probabilities, against independent references.

TRL 1.16 cannot be a test dependency here: it needs ``datasets`` and ``pandas``, which are not in
the test lock. The references below are therefore the published formulas, re-derived from first
principles in float64 with their gradients written out by hand (not by autograd):

- DPO (Rafailov et al. 2023, eq. 7), with the label smoothing of conservative DPO (cDPO,
  Mitchell 2023; TRL 1.16's ``sigmoid`` loss is the e = 0 case, its ``aot`` losses smooth the
  same way): ``L = -(1-e) log s(b h) - e log s(-b h)``, ``h = (pc - rc) - (pr - rr)``.
- IPO (Azar et al. 2023, eq. 17; per-token averaged log-probabilities as TRL's ``ipo``):
  ``L = (h - 1/(2 t))^2``.
- SimPO (Meng et al. 2024, eq. 6): ``L = -log s(b (pc/|yc| - pr/|yr|) - g)``.

Log-probabilities are checked against transformers' logits on the same tiny model. Against TRL
itself, tools/reference_checks/trl_preference_losses.py runs TRL 1.16's own loss code in a
scratch venv (by hand): losses and gradients agree to 1e-15.
"""

import copy
import json
import math

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from torchtune.data import CROSS_ENTROPY_IGNORE_IDX, padded_collate_dpo, padding_free_collate_dpo
from torchtune.models import hf_to_tune, model_from_hf_config
from torchtune.modules import (
    DPOLoss,
    IPOLoss,
    SequenceLogProbs,
    SimPOLoss,
    reward_metrics,
    reward_sums,
    sequence_log_probs,
)
from torchtune.modules.peft import disable_adapter


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))


def _inputs(seed: int = 0, b: int = 5):
    g = torch.Generator().manual_seed(seed)
    vals = [(-30 * torch.rand(b, generator=g, dtype=torch.float64)) for _ in range(4)]
    counts = [torch.randint(1, 20, (b,), generator=g) for _ in range(2)]
    return vals, counts


def _ours(loss, vals, counts):
    pc, pr, rc, rr = [v.clone().float().requires_grad_(True) for v in vals]
    policy = SequenceLogProbs(pc, pr, counts[0], counts[1])
    reference = SequenceLogProbs(rc, rr, counts[0], counts[1])
    out = loss(policy, reference)
    out.losses.sum().backward()
    return out, pc.grad, pr.grad


def _reference(kind, params, vals, counts):
    """Per pair: loss, dL/d(policy chosen), dL/d(policy rejected), chosen and rejected rewards."""
    rows = []
    for i in range(vals[0].shape[0]):
        pc, pr, rc, rr = (float(v[i]) for v in vals)
        nc, nr = int(counts[0][i]), int(counts[1][i])
        if kind == "dpo":
            beta, eps = params
            h = (pc - rc) - (pr - rr)
            loss = -(1 - eps) * _log_sigmoid(beta * h) - eps * _log_sigmoid(-beta * h)
            dh = -(1 - eps) * beta * _sigmoid(-beta * h) + eps * beta * _sigmoid(beta * h)
            rows.append((loss, dh, -dh, beta * (pc - rc), beta * (pr - rr)))
        elif kind == "ipo":
            tau, = params
            h = (pc - rc) / nc - (pr - rr) / nr
            dh = 2 * (h - 1 / (2 * tau))
            rows.append(((h - 1 / (2 * tau)) ** 2, dh / nc, -dh / nr, tau * (pc - rc), tau * (pr - rr)))
        else:
            beta, gamma = params
            z = beta * (pc / nc - pr / nr) - gamma
            dz = -_sigmoid(-z)
            rows.append((-_log_sigmoid(z), dz * beta / nc, -dz * beta / nr, beta * pc / nc, beta * pr / nr))
    return [torch.tensor(col, dtype=torch.float32) for col in zip(*rows)]


@pytest.mark.parametrize(("kind", "params"), [
    ("dpo", (0.1, 0.0)), ("dpo", (0.5, 0.2)), ("ipo", (0.1,)), ("ipo", (1.0,)), ("simpo", (2.0, 0.5)),
    ("simpo", (2.5, 0.0)),
])
def test_losses_rewards_and_gradients_match_the_published_formulas(kind, params):
    vals, counts = _inputs()
    loss = {"dpo": DPOLoss, "ipo": IPOLoss, "simpo": SimPOLoss}[kind](*params)
    out, grad_c, grad_r = _ours(loss, vals, counts)
    exp_loss, exp_gc, exp_gr, exp_rc, exp_rr = _reference(kind, params, vals, counts)
    torch.testing.assert_close(out.losses.detach(), exp_loss, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad_c, exp_gc, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(grad_r, exp_gr, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(out.chosen_rewards, exp_rc, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.rejected_rewards, exp_rr, rtol=1e-5, atol=1e-5)
    assert not out.chosen_rewards.requires_grad


def test_ipo_on_whole_answer_sums_and_dpo_at_zero_margin():
    vals, counts = _inputs(seed=3)
    pc, pr, rc, rr = vals
    out = IPOLoss(tau=0.25, average_log_probs=False)(SequenceLogProbs(pc, pr, *counts), SequenceLogProbs(rc, rr, *counts))
    h = (pc - rc) - (pr - rr)
    torch.testing.assert_close(out.losses, (h - 2.0) ** 2)
    # policy == reference: h = 0, so plain DPO is log 2 per pair whatever beta is
    same = SequenceLogProbs(pc, pr, *counts)
    torch.testing.assert_close(DPOLoss(beta=0.3)(same, same).losses, torch.full((5,), math.log(2), dtype=pc.dtype))


def test_reward_metrics_from_accumulated_sums():
    from torchtune.modules import PreferenceLossOutput

    a = PreferenceLossOutput(torch.zeros(2), torch.tensor([1.0, -1.0]), torch.tensor([0.0, 0.0]))
    b = PreferenceLossOutput(torch.zeros(1), torch.tensor([3.0]), torch.tensor([1.0]))
    metrics = reward_metrics(reward_sums(a) + reward_sums(b))
    assert metrics == pytest.approx({"rewards/chosen": 1.0, "rewards/rejected": 1 / 3, "rewards/margin": 2 / 3,
                                     "rewards/accuracy": 2 / 3})


def test_bad_arguments_name_the_value():
    with pytest.raises(ValueError, match=r"beta=0 must be > 0"):
        DPOLoss(beta=0)
    with pytest.raises(ValueError, match=r"label_smoothing=0.5 must lie in \[0, 0.5\)"):
        DPOLoss(label_smoothing=0.5)
    with pytest.raises(ValueError, match=r"tau=-1 must be > 0"):
        IPOLoss(tau=-1)
    with pytest.raises(ValueError, match=r"gamma=-0.1 must be >= 0"):
        SimPOLoss(gamma=-0.1)
    lp = SequenceLogProbs(torch.zeros(1), torch.zeros(1), torch.ones(1), torch.ones(1))
    with pytest.raises(ValueError, match=r"DPOLoss compares against a reference model"):
        DPOLoss()(lp)
    with pytest.raises(ValueError, match=r"must both be \[2b\]"):
        SequenceLogProbs.from_sequences(torch.zeros(3), torch.zeros(3))
    assert SimPOLoss.reference_free and not DPOLoss.reference_free and not IPOLoss.reference_free


# ----- log-probabilities against transformers ----------------------------------------------------

_CONFIG = dict(model_type="llama", vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
               num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64, tie_word_embeddings=False)


def _pair():
    torch.manual_seed(0)
    hf_config = AutoConfig.for_model(**copy.deepcopy(_CONFIG))
    hf = AutoModelForCausalLM.from_config(hf_config, attn_implementation="eager").eval()
    with torch.no_grad():
        for p in hf.parameters():
            p.normal_(0, 0.2)
    config = json.loads(hf_config.to_json_string())
    return hf, config


def _samples():
    """Three pairs of random lengths; the first few tokens of each sequence are the prompt."""
    g = torch.Generator().manual_seed(7)
    samples = []
    for _ in range(3):
        sample = {}
        for key in ("chosen", "rejected"):
            n, prompt = int(torch.randint(6, 14, (1,), generator=g)), int(torch.randint(2, 5, (1,), generator=g))
            tokens = torch.randint(0, 64, (n,), generator=g).tolist()
            labels = [CROSS_ENTROPY_IGNORE_IDX if t + 1 < prompt else tokens[t + 1] for t in range(n - 1)]
            sample[f"{key}_input_ids"], sample[f"{key}_labels"] = tokens, labels + [CROSS_ENTROPY_IGNORE_IDX]
        samples.append(sample)
    return samples


def _hf_sums(hf, samples):
    """Each sequence alone through transformers: sum over scored t of log softmax(logits[t])[tokens[t+1]]."""
    sums, counts = [], []
    for key in ("chosen", "rejected"):
        for s in samples:
            tokens, labels = torch.tensor([s[f"{key}_input_ids"]]), torch.tensor(s[f"{key}_labels"])
            with torch.no_grad():
                logp = hf(input_ids=tokens).logits[0].double().log_softmax(-1)  # [s, v]
            scored = labels != CROSS_ENTROPY_IGNORE_IDX
            sums.append(float(logp[scored].gather(1, labels[scored][:, None]).sum()))
            counts.append(int(scored.sum()))
    return torch.tensor(sums, dtype=torch.float32), torch.tensor(counts)


def _ours_sums(model, batch, output):
    labels = batch["labels"].reshape(1, -1)  # [1, b * s]
    keep = torch.nonzero(labels[0] != CROSS_ENTROPY_IGNORE_IDX).squeeze(1)  # [n]
    with torch.no_grad():
        out = model(batch["tokens"], mask=batch.get("mask"), input_pos=batch.get("input_pos"), output_index=keep,
                    output=output)  # [1, n, ...]
    project = model.project if output == "hidden" else None
    return sequence_log_probs(out, labels[:, keep], batch["sequence_ids"].reshape(1, -1)[:, keep],
                              int(batch["sequence_ids"].max()) + 1, project=project, num_chunks=3)


@pytest.mark.parametrize("output", ["hidden", "logits"])
@pytest.mark.parametrize("collate", [padding_free_collate_dpo, padded_collate_dpo])
def test_sequence_log_probs_equal_transformers(collate, output):
    hf, config = _pair()
    ours = model_from_hf_config(config).eval()
    ours.load_state_dict(hf_to_tune(hf.state_dict(), config), strict=True)
    samples = _samples()
    expected_sums, expected_counts = _hf_sums(hf, samples)
    sums, counts = _ours_sums(ours, collate(samples), output)
    torch.testing.assert_close(sums, expected_sums, rtol=1e-5, atol=1e-4)
    assert counts.tolist() == expected_counts.tolist()
    lp = SequenceLogProbs.from_sequences(sums, counts)
    assert lp.chosen.shape == (3,) and torch.equal(lp.rejected, sums[3:])


def test_disabled_lora_adapters_give_the_base_log_probs():
    hf, config = _pair()
    lora = model_from_hf_config(config, lora_attn_modules=["q_proj", "v_proj", "output_proj"], apply_lora_to_mlp=True,
                                apply_lora_to_output=True, lora_rank=4, lora_alpha=8).eval()
    lora.load_state_dict(hf_to_tune(hf.state_dict(), config), strict=False)
    with torch.no_grad():
        for name, p in lora.named_parameters():
            if "lora_" in name:
                p.normal_(0, 0.3)  # adapters that change the outputs
    samples = _samples()
    expected_sums, _ = _hf_sums(hf, samples)
    batch = padding_free_collate_dpo(samples)
    adapted, _ = _ours_sums(lora, batch, "hidden")
    assert (adapted - expected_sums).abs().max() > 1e-2  # the adapters are live
    with disable_adapter(lora):
        base, _ = _ours_sums(lora, batch, "hidden")
    torch.testing.assert_close(base, expected_sums, rtol=1e-5, atol=1e-4)
    again, _ = _ours_sums(lora, batch, "hidden")
    torch.testing.assert_close(again, adapted)  # enabled again after the block


def test_sequence_log_probs_gradient_and_bad_shapes():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(1, 5, 7, generator=g, requires_grad=True)
    labels = torch.tensor([[1, -100, 3, 4, 6]])
    seq = torch.tensor([[0, 0, 1, 1, 1]])
    sums, counts = sequence_log_probs(logits, labels, seq, 2)
    sums.sum().backward()
    # d/dz of log softmax(z)[y] is onehot(y) - softmax(z); zero at the unscored position
    soft = logits.detach()[0].softmax(-1)
    expected = -soft
    for t, y in enumerate(labels[0].tolist()):
        if y != -100:
            expected[t, y] += 1
    expected[1] = 0
    torch.testing.assert_close(logits.grad[0], expected)
    assert counts.tolist() == [1, 3]
    with pytest.raises(ValueError, match=r"sequence_ids must lie in \[0, num_sequences=1\)"):
        sequence_log_probs(logits, labels, seq, 1)
    with pytest.raises(ValueError, match=r"out \[1, 5, 7\] must be \[b, s, ...\]"):
        sequence_log_probs(logits, labels[:, :4], seq[:, :4], 2)
