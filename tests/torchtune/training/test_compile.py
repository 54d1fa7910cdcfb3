"""compile: a bounded number of compiles over steps of varying lengths, the uncompiled losses,
and the compiler check before any work.

The compiled runs use the ``aot_eager`` backend: it traces forward and backward through
dynamo and AOTAutograd exactly as inductor does (so recompiles are counted the same), but skips
inductor's C++ code generation, which takes minutes on one CPU core.
"""

import json

import pytest
import torch
import torch.nn.functional as F
from torch._dynamo.utils import counters
from transformers import AutoConfig

from torchtune.config import ConfigError
from torchtune.data import CROSS_ENTROPY_IGNORE_IDX, padding_free_collate_sft
from torchtune.models import model_from_hf_config
from torchtune.training import _compile, check_compile, compile_model

_TINY = dict(model_type="llama", vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128, head_dim=8)
STEPS = 10


def _batches(pad_to_multiple_of):
    g = torch.Generator().manual_seed(3)
    out = []
    for _ in range(STEPS):
        lens = torch.randint(3, 20, (int(torch.randint(2, 5, (1,), generator=g)),), generator=g).tolist()
        samples = []
        for n in lens:
            tokens = torch.randint(1, 64, (n,), generator=g)
            labels = torch.cat([tokens[1:], torch.tensor([CROSS_ENTROPY_IGNORE_IDX])])
            labels[: n // 3] = CROSS_ENTROPY_IGNORE_IDX  # a prompt without labels
            samples.append({"tokens": tokens.tolist(), "labels": labels.tolist()})
        out.append(padding_free_collate_sft(samples, pad_to_multiple_of=pad_to_multiple_of))
    return out


def _train(compiled, batches):
    torch.manual_seed(0)
    model = model_from_hf_config(json.loads(AutoConfig.for_model(**_TINY).to_json_string()))
    if compiled:
        compile_model(model, torch.device("cpu"), backend="aot_eager")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for batch in batches:
        labels = batch["labels"].reshape(-1)
        keep = torch.nonzero(labels != CROSS_ENTROPY_IGNORE_IDX).squeeze(1)  # [n]
        logits = model(batch["tokens"], mask=batch["mask"], input_pos=batch["input_pos"], output_index=keep)
        loss = F.cross_entropy(logits[0], labels[keep])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return losses


def test_padded_rows_compile_a_bounded_number_of_times_and_give_the_eager_losses():
    batches = _batches(pad_to_multiple_of=16)
    assert len({b["tokens"].shape[1] for b in batches}) >= 3  # the row length does vary
    assert len({b["mask"].seq_lens for b in batches}) == STEPS  # and so does the document layout
    eager = _train(False, batches)
    torch._dynamo.reset()
    counters.clear()
    compiled = _train(True, batches)
    graphs = counters["stats"]["unique_graphs"]
    # layers share one graph; the last layer (selected outputs) has its own: each compiled once
    # for the first shape and once more with a dynamic length, whatever the ten layouts are
    assert graphs <= 4, graphs
    torch.testing.assert_close(torch.tensor(compiled), torch.tensor(eager), atol=1e-5, rtol=1e-5)


def test_compile_uses_the_dense_mask_off_cuda_and_keeps_an_explicit_choice():
    model = model_from_hf_config(json.loads(AutoConfig.for_model(**_TINY).to_json_string()))
    assert compile_model(model, torch.device("cpu"), backend="aot_eager") == 2
    assert model.document_attention == "dense"
    model = model_from_hf_config(json.loads(AutoConfig.for_model(**_TINY).to_json_string()))
    model.set_document_attention("sdpa")
    compile_model(model, torch.device("cpu"), backend="aot_eager")
    assert model.document_attention == "sdpa"


def test_compile_without_a_cpu_compiler_is_a_config_error(monkeypatch):
    monkeypatch.setattr(_compile, "_cpp_compiler", lambda: None)
    with pytest.raises(ConfigError, match="compile=true on CPU needs a C\\+\\+ compiler.*compile=false"):
        check_compile(torch.device("cpu"))
    check_compile(torch.device("cpu"), backend="aot_eager")  # other backends need no C++ compiler


def test_compile_on_cuda_without_triton_is_a_config_error(monkeypatch):
    monkeypatch.setattr(_compile, "_has_triton", lambda: False)
    with pytest.raises(ConfigError, match="compile=true on CUDA needs Triton.*compile=false"):
        check_compile(torch.device("cuda"))


def test_cpu_compiler_is_found_here():
    assert _compile._cpp_compiler() is not None  # the test machine has g++ (inductor's default)
    check_compile(torch.device("cpu"))
