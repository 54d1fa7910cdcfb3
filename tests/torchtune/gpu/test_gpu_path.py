"""The GPU training path on CUDA: flex document attention, compile, offloading, FSDP2 mixed precision.

Tagged `gpu`; every test skips cleanly without CUDA. Run by tools/benchmarks/gpu_check.sh.
"""

import copy
import json
import socket

import pytest
import torch
import torch.nn.functional as F
from torch._dynamo.utils import counters
from transformers import AutoConfig, AutoModelForCausalLM

from torchtune.data import CROSS_ENTROPY_IGNORE_IDX, padding_free_collate_sft
from torchtune.models import hf_to_tune, model_from_hf_config
from torchtune.modules import BlockCausalMask
from torchtune.training import OffloadActivations, compile_model, peak_memory_stats, precision_plan

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

_TINY = dict(vocab_size=128, hidden_size=64, intermediate_size=96, num_attention_heads=4, num_key_value_heads=2,
             max_position_embeddings=256, head_dim=16)
CONFIGS = {
    "llama_gqa": dict(_TINY, model_type="llama", num_hidden_layers=2),
    "gemma2_softcap_window": dict(_TINY, model_type="gemma2", num_hidden_layers=3, query_pre_attn_scalar=24,
                                  sliding_window=8, attn_logit_softcapping=2.0, final_logit_softcapping=3.0),
}
LENS = [37, 120, 5, 64, 30]


def _pair(name):
    torch.manual_seed(0)
    hf_config = AutoConfig.for_model(**copy.deepcopy(CONFIGS[name]))
    hf = AutoModelForCausalLM.from_config(hf_config, attn_implementation="eager").eval()
    config = json.loads(hf_config.to_json_string())
    ours = model_from_hf_config(config)
    ours.load_state_dict(hf_to_tune(hf.state_dict(), config))
    return hf.cuda(), ours.cuda()


def _row():
    g = torch.Generator().manual_seed(1)
    docs = [torch.randint(0, 128, (n,), generator=g).cuda() for n in LENS]
    return docs, torch.cat(docs)[None], torch.cat([torch.arange(n) for n in LENS])[None].cuda()


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_flex_kernel_matches_transformers_and_per_document_gradients(name):
    hf, ours = _pair(name)
    docs, tokens, input_pos = _row()
    with torch.no_grad():
        expected = torch.cat([hf(input_ids=d[None]).logits[0] for d in docs])[None]
    results = {}
    for how in ("flex", "sdpa"):
        ours.zero_grad(set_to_none=True)
        ours.set_document_attention(how)
        logits = ours(tokens, mask=BlockCausalMask([LENS]), input_pos=input_pos)
        logits.square().mean().backward()
        results[how] = (logits.detach(), {n: p.grad.clone() for n, p in ours.named_parameters()})
    # loose enough for TF32 in the generated kernel, far below what a wrong mask gives (~1e-1)
    torch.testing.assert_close(results["flex"][0], expected, atol=2e-3, rtol=2e-3)
    for n, g in results["sdpa"][1].items():
        torch.testing.assert_close(results["flex"][1][n], g, atol=2e-3, rtol=1e-2, msg=lambda m: f"{n}: {m}")


@pytest.mark.parametrize("name", ["llama_gqa", "mistral_window"])
def test_varlen_kernel_in_bf16_matches_per_document_sdpa(name):
    config = dict(CONFIGS["llama_gqa"], model_type="mistral", sliding_window=16) if name == "mistral_window" else \
        CONFIGS[name]
    torch.manual_seed(0)
    ours = model_from_hf_config(json.loads(AutoConfig.for_model(**config).to_json_string())).cuda().bfloat16()
    _, tokens, input_pos = _row()
    results = {}
    for how in ("varlen", "sdpa"):
        ours.zero_grad(set_to_none=True)
        ours.set_document_attention(how)
        logits = ours(tokens, mask=BlockCausalMask([LENS]), input_pos=input_pos)
        logits.float().square().mean().backward()
        results[how] = (logits.float(), {n: p.grad.float() for n, p in ours.named_parameters()})
    torch.testing.assert_close(results["varlen"][0], results["sdpa"][0], atol=3e-2, rtol=3e-2)
    for n, g in results["sdpa"][1].items():
        torch.testing.assert_close(results["varlen"][1][n], g, atol=3e-2, rtol=5e-2, msg=lambda m: f"{n}: {m}")


def test_compiled_flex_training_recompiles_a_bounded_number_of_times():
    torch.manual_seed(0)
    config = json.loads(AutoConfig.for_model(**CONFIGS["llama_gqa"]).to_json_string())
    eager = model_from_hf_config(config).cuda()
    compiled = copy.deepcopy(eager)
    eager.set_document_attention("sdpa")  # the reference: per-document SDPA, nothing compiled
    torch._dynamo.reset()
    counters.clear()
    compile_model(compiled, torch.device("cuda"))
    assert compiled.document_attention == "auto"  # flex on CUDA
    g = torch.Generator().manual_seed(3)
    losses = {"eager": [], "compiled": []}
    for _ in range(10):
        lens = torch.randint(5, 60, (4,), generator=g).tolist()
        samples = []
        for n in lens:
            t = torch.randint(1, 128, (n,), generator=g)
            samples.append({"tokens": t.tolist(), "labels": torch.cat([t[1:], torch.tensor([-100])]).tolist()})
        batch = padding_free_collate_sft(samples, pad_to_multiple_of=64)
        labels = batch["labels"].reshape(-1).cuda()
        keep = torch.nonzero(labels != CROSS_ENTROPY_IGNORE_IDX).squeeze(1)
        for key, model in (("eager", eager), ("compiled", compiled)):
            logits = model(batch["tokens"].cuda(), mask=batch["mask"], input_pos=batch["input_pos"].cuda(),
                           output_index=keep)
            losses[key].append(F.cross_entropy(logits[0], labels[keep]).item())
    assert counters["stats"]["unique_graphs"] <= 6, dict(counters["stats"])
    torch.testing.assert_close(torch.tensor(losses["compiled"]), torch.tensor(losses["eager"]), atol=1e-4, rtol=1e-4)


def test_offloading_on_cuda_moves_activations_and_keeps_gradients():
    _, ours = _pair("llama_gqa")
    tokens = torch.randint(0, 128, (4, 200), device="cuda", generator=torch.Generator("cuda").manual_seed(2))
    ref = copy.deepcopy(ours)
    ref(tokens).float().square().mean().backward()
    hooks = OffloadActivations(min_bytes=0)
    with hooks:
        loss = ours(tokens).float().square().mean()
    loss.backward()
    assert hooks.offloaded > 10
    for (n, p), q in zip(ours.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p.grad, q.grad, atol=0, rtol=0, msg=lambda m: f"{n}: {m}")


def test_peak_memory_stats_come_from_the_cuda_allocator():
    x = torch.empty(64 * 1024**2, dtype=torch.uint8, device="cuda")  # 64 MiB
    stats = peak_memory_stats(torch.device("cuda"))
    assert stats["peak_memory_alloc"] >= 64 / 1024 and stats["peak_memory_reserved"] >= stats["peak_memory_alloc"]
    del x


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_fsdp2_on_nccl_with_fp32_master_weights_matches_autocast(monkeypatch):
    """One NCCL process (one GPU lent): FSDP2 bf16 compute on fp32 shards with fp32 reduce gives
    the losses of the same model under torch.autocast on the same fp32 weights."""
    import torch.distributed as dist
    from torchtune.training import shard_model

    for key, value in dict(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()), RANK="0", WORLD_SIZE="1").items():
        monkeypatch.setenv(key, value)  # restored after the test
    dist.init_process_group("nccl", rank=0, world_size=1)
    try:
        torch.manual_seed(0)
        config = json.loads(AutoConfig.for_model(**CONFIGS["llama_gqa"]).to_json_string())
        reference = model_from_hf_config(config).cuda()
        sharded = copy.deepcopy(reference)
        plan = precision_plan(torch.bfloat16, torch.device("cuda"), fp32_master_weights=True, reduce_dtype="fp32",
                              distributed=True)
        shard_model(sharded, mp_policy=plan.mp_policy())
        single = precision_plan(torch.bfloat16, torch.device("cuda"), fp32_master_weights=True)
        opts = [torch.optim.AdamW(m.parameters(), lr=1e-3) for m in (reference, sharded)]
        tokens = torch.randint(0, 128, (3, 4, 64), device="cuda", generator=torch.Generator("cuda").manual_seed(4))
        for step in range(3):
            got = []
            for model, opt, autocast in ((reference, opts[0], single.autocast), (sharded, opts[1], plan.autocast)):
                with autocast():
                    logits = model(tokens[step])
                    loss = F.cross_entropy(logits[:, :-1].reshape(-1, 128).float(), tokens[step, :, 1:].reshape(-1))
                loss.backward()
                opt.step()
                opt.zero_grad()
                got.append(loss.item())
            assert got[0] == pytest.approx(got[1], rel=2e-2), step
    finally:
        dist.destroy_process_group()
