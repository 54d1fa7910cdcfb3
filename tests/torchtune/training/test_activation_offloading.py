"""Activation offloading: forced through its hooks on CPU, the losses and gradients of a tiny
model are those of a plain run (and of a run under activation checkpointing)."""

import copy
import json
import logging

import torch
import torch.nn.functional as F
from transformers import AutoConfig

from torchtune.models import model_from_hf_config
from torchtune.modules import TransformerSelfAttentionLayer
from torchtune.training import OffloadActivations, activation_offloading, apply_activation_checkpointing

_TINY = dict(model_type="llama", vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64, head_dim=8)


def _model():
    torch.manual_seed(0)
    return model_from_hf_config(json.loads(AutoConfig.for_model(**_TINY).to_json_string()))


def _loss_and_grads(model, context):
    tokens = torch.randint(0, 64, (2, 24), generator=torch.Generator().manual_seed(1))
    with context:
        logits = model(tokens)  # [2, 24, v]
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, 64), tokens[:, 1:].reshape(-1))
    loss.backward()
    return loss.detach(), {n: p.grad for n, p in model.named_parameters()}


def test_forced_offloading_gives_the_same_loss_and_gradients():
    model = _model()
    ref_loss, ref_grads = _loss_and_grads(copy.deepcopy(model), torch.enable_grad())
    hooks = OffloadActivations(min_bytes=0, force=True)
    loss, grads = _loss_and_grads(model, hooks)
    assert hooks.offloaded > 20  # the saved activations did go through pack and unpack
    assert torch.equal(loss, ref_loss)
    for name, grad in ref_grads.items():
        assert torch.equal(grads[name], grad), name


def test_offloading_with_checkpointing_offloads_layer_inputs_only():
    model = _model()
    ref_loss, ref_grads = _loss_and_grads(copy.deepcopy(model), torch.enable_grad())
    apply_activation_checkpointing(model, auto_wrap_policy={TransformerSelfAttentionLayer})
    plain = OffloadActivations(min_bytes=0, force=True)
    _loss_and_grads(_model(), plain)
    hooks = OffloadActivations(min_bytes=0, force=True)
    loss, grads = _loss_and_grads(model, hooks)
    assert 0 < hooks.offloaded < plain.offloaded
    torch.testing.assert_close(loss, ref_loss, rtol=0, atol=0)
    for name, grad in ref_grads.items():
        torch.testing.assert_close(grads[name], grad, rtol=1e-6, atol=1e-7)


def test_parameters_and_small_tensors_stay_put():
    weight = torch.nn.Parameter(torch.randn(4, 4))
    hooks = OffloadActivations(min_bytes=0, force=True)
    with hooks:
        (weight * 2.0).sum().backward()  # mul saves only the parameter
    assert hooks.offloaded == 0
    big = OffloadActivations(force=True)  # 1 MiB threshold
    x = torch.randn(8, requires_grad=True)
    with big:
        (x * x).sum().backward()
    assert big.offloaded == 0


def test_on_cpu_the_recipe_context_is_a_no_op_with_a_note(caplog):
    with caplog.at_level(logging.INFO, logger="torchtune.training._activation_offloading"):
        context = activation_offloading(torch.device("cpu"), enabled=True)
    assert not isinstance(context, OffloadActivations)
    assert "does nothing" in caplog.text
    assert not isinstance(activation_offloading(torch.device("cuda"), enabled=False), OffloadActivations)
    assert isinstance(activation_offloading(torch.device("cuda"), enabled=True), OffloadActivations)
