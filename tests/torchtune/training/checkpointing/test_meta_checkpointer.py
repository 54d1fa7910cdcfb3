"""MetaCheckpointer: a Meta-layout file made from a transformers Llama gives the same logits."""

import json

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from peft import PeftModel

from torchtune.models import model_from_hf_config
from torchtune.modules.peft import get_adapter_specs
from torchtune.training.checkpointing import (
    Checkpointer,
    MetaCheckpointer,
    atomic_directory,
    hf_to_meta_rotary,
    meta_to_hf_rotary,
)

HEADS, KV_HEADS, DIM, LAYERS = 4, 2, 32, 2
TOKENS = torch.randint(0, 96, (2, 9), generator=torch.Generator().manual_seed(0))


def _interleave_rows(weight: torch.Tensor, heads: int) -> torch.Tensor:
    """Reference Hugging Face -> Meta row order, by explicit indices: meta (h, 2i+j) = hf (h, j*h_d/2+i)."""
    head_dim = weight.shape[0] // heads
    index = [h * head_dim + j * (head_dim // 2) + i for h in range(heads) for i in range(head_dim // 2) for j in range(2)]
    return weight[torch.tensor(index)]


def _write_meta(hf: LlamaForCausalLM, directory) -> None:
    names = {"self_attn.q_proj": "attention.wq", "self_attn.k_proj": "attention.wk", "self_attn.v_proj": "attention.wv",
             "self_attn.o_proj": "attention.wo", "mlp.gate_proj": "feed_forward.w1", "mlp.down_proj": "feed_forward.w2",
             "mlp.up_proj": "feed_forward.w3", "input_layernorm": "attention_norm", "post_attention_layernorm": "ffn_norm"}
    sd = hf.state_dict()
    meta = {"tok_embeddings.weight": sd["model.embed_tokens.weight"], "norm.weight": sd["model.norm.weight"],
            "output.weight": sd["lm_head.weight"], "rope.freqs": torch.ones(4)}
    for layer in range(LAYERS):
        for hf_name, meta_name in names.items():
            weight = sd[f"model.layers.{layer}.{hf_name}.weight"]
            if meta_name in ("attention.wq", "attention.wk"):
                weight = _interleave_rows(weight, HEADS if meta_name == "attention.wq" else KV_HEADS)
            meta[f"layers.{layer}.{meta_name}.weight"] = weight.clone()
    directory.mkdir()
    torch.save(meta, directory / "consolidated.00.pth")
    params = {"dim": DIM, "n_layers": LAYERS, "n_heads": HEADS, "n_kv_heads": KV_HEADS, "vocab_size": 96,
              "norm_eps": 1e-5, "rope_theta": 10000.0}
    (directory / "params.json").write_text(json.dumps(params))


@pytest.fixture
def hf_llama():
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=96, hidden_size=DIM, intermediate_size=48, num_hidden_layers=LAYERS,
                         num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, rms_norm_eps=1e-5,
                         rope_theta=10000.0, tie_word_embeddings=False)
    return LlamaForCausalLM(config).eval()


def _write(checkpointer, directory, state_dict, **kwargs):
    with atomic_directory(directory) as tmp:
        checkpointer.write_checkpoint(tmp, state_dict, **kwargs)
    return directory


def test_meta_file_loads_with_hf_logits_and_round_trips(tmp_path, hf_llama):
    _write_meta(hf_llama, tmp_path / "meta")
    checkpointer = MetaCheckpointer(tmp_path / "meta", tmp_path / "out")
    assert isinstance(checkpointer, Checkpointer)
    model = model_from_hf_config(checkpointer.config).eval()  # the architecture from params.json + shapes
    model.load_state_dict(checkpointer.load_checkpoint())
    with torch.no_grad():
        torch.testing.assert_close(model(TOKENS), hf_llama(TOKENS).logits, rtol=1e-5, atol=1e-5)
    out = _write(checkpointer, tmp_path / "out" / "epoch_0", model.state_dict())
    original = torch.load(tmp_path / "meta" / "consolidated.00.pth", weights_only=True)
    written = torch.load(out / "consolidated.00.pth", weights_only=True)
    del original["rope.freqs"]
    assert written.keys() == original.keys()
    assert all(torch.equal(written[k], original[k]) for k in original)
    assert json.loads((out / "params.json").read_text())["n_kv_heads"] == KV_HEADS
    resumed = checkpointer.load_checkpoint(out)
    assert all(torch.equal(resumed[k], v) for k, v in model.state_dict().items())


def test_meta_lora_writes_a_peft_adapter_and_merged_weights(tmp_path, hf_llama):
    _write_meta(hf_llama, tmp_path / "meta")
    checkpointer = MetaCheckpointer(tmp_path / "meta", tmp_path / "out")
    model = model_from_hf_config(checkpointer.config, lora_attn_modules=["q_proj", "v_proj"], lora_rank=2, lora_alpha=4.0)
    model.load_state_dict(checkpointer.load_checkpoint(), strict=False)
    torch.manual_seed(3)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_" in name:
                param.copy_(0.3 * torch.randn_like(param))
    out = _write(checkpointer, tmp_path / "out" / "s", model.state_dict(), adapter_specs=get_adapter_specs(model))
    with torch.no_grad():
        expected = model.eval()(TOKENS)
        peft_model = PeftModel.from_pretrained(hf_llama, out / "adapter").eval()
        torch.testing.assert_close(peft_model(TOKENS).logits, expected, rtol=1e-5, atol=1e-5)
        merged = model_from_hf_config(checkpointer.config).eval()
        merged.load_state_dict(checkpointer.load_checkpoint(out))
        torch.testing.assert_close(merged(TOKENS), expected, rtol=1e-4, atol=1e-4)
    adapter = checkpointer.load_adapter(out)
    assert all(torch.equal(adapter[k], v) for k, v in model.state_dict().items() if "lora_" in k)


def test_rotary_permutations_are_inverse_and_match_the_index_reference():
    weight = torch.randn(HEADS * 8, 5)
    bias = torch.randn(HEADS * 8)
    assert torch.equal(hf_to_meta_rotary(weight, HEADS), _interleave_rows(weight, HEADS))
    assert torch.equal(meta_to_hf_rotary(hf_to_meta_rotary(weight, HEADS), HEADS), weight)
    assert torch.equal(hf_to_meta_rotary(meta_to_hf_rotary(bias, HEADS), HEADS), bias)


def test_bad_inputs(tmp_path, hf_llama):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="params.json not found in checkpoint_dir="):
        MetaCheckpointer(tmp_path / "empty", tmp_path / "out")
    (tmp_path / "empty" / "params.json").write_text(json.dumps({"n_heads": 4}))
    with pytest.raises(FileNotFoundError, match=r"checkpoint files consolidated.\*.pth not found"):
        MetaCheckpointer(tmp_path / "empty", tmp_path / "out")
    for i in range(2):
        torch.save({}, tmp_path / "empty" / f"consolidated.0{i}.pth")
    with pytest.raises(ValueError, match="model-parallel shards are not supported"):
        MetaCheckpointer(tmp_path / "empty", tmp_path / "out")
    torch.save({"layers.0.attention.wz.weight": torch.ones(1)}, tmp_path / "empty" / "consolidated.00.pth")
    checkpointer = MetaCheckpointer(tmp_path / "empty", tmp_path / "out", checkpoint_files=["consolidated.00.pth"])
    with pytest.raises(ValueError, match="no torchtune name for Meta key 'layers.0.attention.wz.weight'"):
        checkpointer.load_checkpoint()
    with pytest.raises(ValueError, match="no Meta name for torchtune key 'layers.0.attn.q_norm.scale'"):
        _write(checkpointer, tmp_path / "out" / "x", {"layers.0.attn.q_norm.scale": torch.ones(2)})
    lora = {"norm.scale": torch.ones(2), "layers.0.attn.q_proj.weight": torch.ones(2, 2),
            "layers.0.attn.q_proj.lora_a.weight": torch.ones(1, 2), "layers.0.attn.q_proj.lora_b.weight": torch.ones(2, 1)}
    with pytest.raises(ValueError, match=r"the checkpoint has no \['tok_embeddings.weight'.*not a Meta Llama"):
        _write(checkpointer, tmp_path / "out" / "y", lora)  # naming the adapter's modules needs the config
    _write_meta(hf_llama, tmp_path / "meta")
    with pytest.raises(ValueError, match="no alpha for the adapter of 'layers.0.attn.q_proj'"):
        _write(MetaCheckpointer(tmp_path / "meta", tmp_path / "out"), tmp_path / "out" / "y", lora)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
