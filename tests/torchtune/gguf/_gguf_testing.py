"""Tiny GGUF files written the way llama.cpp's convert_hf_to_gguf.py writes them.

Everything here is test-side and independent of the library's GGUF code: names come from a
table written out below, the q/k permutation is llama.cpp's, quantisation is gguf.quants'.
"""

import json
import math

import numpy as np
import torch

TOKENIZER_CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Hello world! How are you today? I am fine, thank you.",
    "Ünïcödé wörds: café, naïve, façade, Straße, größer.",
    "日本語のテキストと中文文本 mixed with English words.",
    "Emoji too: 🙂 🚀 and symbols like € £ ¥ © ®.",
    "Numbers 0123456789 and 2024 and code: def f(x): return x * 2",
    "What is the capital of France? Paris is the capital of France.",
    "   leading spaces, trailing spaces   and\ttabs\nand new lines\n",
    "I'm sure they'll say it's fine; we've done what you'd do.",
]
MIXED_TEXTS = TOKENIZER_CORPUS + [
    "unseen wörds ünd ∂ifferent çharacters ✓ — “quotes” 12345",
    "<|im_start|>user\nhi<|im_end|>",
    " ",
    "a",
    "\n\n\nnewlines\n  ",
]

_LAYER_NAMES = {  # HF module inside model.layers.{i} -> GGUF stem
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "self_attn.q_norm": "attn_q_norm",
    "self_attn.k_norm": "attn_k_norm",
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
_GEMMA2_LAYER_NAMES = {
    **_LAYER_NAMES,
    "post_attention_layernorm": "post_attention_norm",
    "pre_feedforward_layernorm": "ffn_norm",
    "post_feedforward_layernorm": "post_ffw_norm",
}


def tiny_config(model_type: str, vocab_size: int = 96, tie: bool = False, rope_scaling: dict | None = None,
                **sizes):
    """A transformers config of a 2-layer model with GQA (``sizes`` override e.g. ``hidden_size``)."""
    from transformers import AutoConfig

    kwargs = dict(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        rms_norm_eps=1e-5,
        rope_theta=5000.0,
        tie_word_embeddings=tie,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
    )
    kwargs.update(sizes)
    if rope_scaling is not None:
        kwargs["rope_scaling"] = dict(rope_scaling)  # transformers adds keys to the dict it gets
    if model_type in ("qwen3", "gemma2"):
        kwargs["head_dim"] = 32  # differs from hidden_size // heads
    if model_type == "qwen3_moe":
        # moe_intermediate_size: transformers' GGUF loader ignores expert_feed_forward_length and keeps its 768
        kwargs.update(head_dim=32, moe_intermediate_size=768, num_experts=4, num_experts_per_tok=2, norm_topk_prob=True)
    if model_type == "gemma3_text":  # layer 5 global; windows of 4 inside the 8-token test rows
        kwargs.update(num_hidden_layers=6, head_dim=32, query_pre_attn_scalar=32, sliding_window=4)
    if model_type == "smollm3":
        kwargs["num_hidden_layers"] = 4  # layer 3 is llama.cpp's (and the default) NoPE layer
    if model_type == "gemma2":
        kwargs.update(query_pre_attn_scalar=32, sliding_window=64, attn_logit_softcapping=50.0,
                      final_logit_softcapping=30.0)
    return AutoConfig.for_model(model_type, **kwargs)


def tiny_model(model_type: str, seed: int = 0, tie: bool = False, rope_scaling: dict | None = None, **sizes):
    """A transformers causal LM with random weights (norms and biases not at their defaults)."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    config = tiny_config(model_type, tie=tie, rope_scaling=rope_scaling, **sizes)
    config._attn_implementation = "eager"
    model = AutoModelForCausalLM.from_config(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            elif name.endswith(".bias"):
                p.copy_(0.1 * torch.randn_like(p))
            else:
                p.normal_(0.0, 0.1)
    return model


def llama_cpp_rope_factors(cfg) -> np.ndarray:
    """The ``rope_freqs`` tensor llama.cpp's converter writes for Llama 3.x RoPE scaling."""
    rope = cfg.rope_parameters
    dim = cfg.hidden_size // cfg.num_attention_heads
    old_context, low, high = rope["original_max_position_embeddings"], rope["low_freq_factor"], rope["high_freq_factor"]
    factors = []
    for i in range(0, dim, 2):
        wavelen = 2 * math.pi * rope["rope_theta"] ** (i / dim)
        if wavelen < old_context / high:
            factors.append(1.0)
        elif wavelen > old_context / low:
            factors.append(rope["factor"])
        else:
            smooth = (old_context / wavelen - low) / (high - low)
            factors.append(1 / ((1 - smooth) / rope["factor"] + smooth))
    return np.array(factors, dtype=np.float32)


def _permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's LlamaModel.permute (rotate-half rows -> interleaved pairs)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def gguf_tensors_like_llama_cpp(model) -> dict[str, np.ndarray]:
    """GGUF name -> float32 array, with the converter's per-architecture changes."""
    cfg = model.config
    arch = cfg.model_type
    layer_names = _GEMMA2_LAYER_NAMES if arch in ("gemma2", "gemma3_text") else _LAYER_NAMES
    out = {}
    for name, p in model.state_dict().items():
        w = p.detach().float().numpy().copy()
        if name == "lm_head.weight" and cfg.tie_word_embeddings:
            continue
        if arch in ("llama", "smollm3") and ".q_proj." in name:  # SmolLM3Model(LlamaModel) in the converter
            w = _permute(w, cfg.num_attention_heads)
        if arch in ("llama", "smollm3") and ".k_proj." in name:
            w = _permute(w, cfg.num_key_value_heads)
        if arch in ("gemma2", "gemma3_text") and name.endswith("norm.weight"):  # q/k norms too
            w = w + 1
        parts = name.split(".")
        if arch == "qwen3_moe" and ".mlp." in name and "experts" in name or name.endswith("mlp.gate.weight"):
            # the converter writes the router as ffn_gate_inp and each projection's experts stacked
            block = f"blk.{parts[2]}"
            if name.endswith("mlp.gate.weight"):
                out[f"{block}.ffn_gate_inp.weight"] = w
            elif name.endswith("gate_up_proj"):
                gate, up = np.split(w, 2, axis=1)
                out[f"{block}.ffn_gate_exps.weight"], out[f"{block}.ffn_up_exps.weight"] = gate.copy(), up.copy()
            else:
                out[f"{block}.ffn_down_exps.weight"] = w
            continue
        if name.startswith("model.layers."):
            stem = layer_names[".".join(parts[3:-1])]
            gguf_name = f"blk.{parts[2]}.{stem}.{parts[-1]}"
        else:
            gguf_name = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
                         "lm_head.weight": "output.weight"}[name]
        out[gguf_name] = w
    return out


def write_tiny_gguf(model, path, out_type: str = "F32", tokenizer_kv: dict | None = None, arch: str | None = None):
    """Write ``model`` as llama.cpp's converter would (F32, F16 or Q8_0 2-D weights)."""
    import gguf
    from gguf.quants import quantize

    cfg = model.config
    arch = arch or {"qwen3_moe": "qwen3moe", "gemma3_text": "gemma3"}.get(cfg.model_type, cfg.model_type)
    w = gguf.GGUFWriter(str(path), arch)
    w.add_name("tiny")
    w.add_block_count(cfg.num_hidden_layers)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    rope = cfg.rope_parameters.get("full_attention", cfg.rope_parameters)  # gemma3: per layer type
    w.add_rope_freq_base(rope["rope_theta"])
    w.add_vocab_size(cfg.vocab_size)
    if getattr(cfg, "head_dim", None) and cfg.head_dim * cfg.num_attention_heads != cfg.hidden_size:
        w.add_key_length(cfg.head_dim)
        w.add_value_length(cfg.head_dim)
    if cfg.model_type == "gemma2":
        w.add_attn_logit_softcapping(cfg.attn_logit_softcapping)
        w.add_final_logit_softcapping(cfg.final_logit_softcapping)
        w.add_sliding_window(cfg.sliding_window)
    if cfg.model_type == "gemma3_text":
        w.add_sliding_window(cfg.sliding_window)
        if rope.get("rope_type") == "linear":
            w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
            w.add_rope_scaling_factor(rope["factor"])
    if cfg.model_type == "qwen3_moe":
        w.add_expert_count(cfg.num_experts)
        w.add_expert_used_count(cfg.num_experts_per_tok)
        w.add_expert_feed_forward_length(cfg.moe_intermediate_size)
    for key, (value, vtype, sub) in (tokenizer_kv or {}).items():
        w.add_key_value(key, value, vtype, sub_type=sub)
    if rope.get("rope_type", "default") == "llama3":
        w.add_tensor("rope_freqs.weight", llama_cpp_rope_factors(cfg))
    for name, arr in gguf_tensors_like_llama_cpp(model).items():
        if arr.ndim == 1 or out_type == "F32":
            w.add_tensor(name, arr)
        elif out_type == "F16":
            w.add_tensor(name, arr.astype(np.float16))
        elif out_type in ("IQ4_NL", "Q8_1"):  # types without a reference quantiser: random block bytes
            qtype = gguf.GGMLQuantizationType[out_type]
            byte_shape = gguf.quant_shape_to_byte_shape(arr.shape, qtype)
            w.add_tensor(name, np.random.default_rng(0).integers(0, 256, byte_shape, dtype=np.uint8), raw_dtype=qtype)
        elif out_type == "Q4_K":  # no reference quantiser: random blocks with small f16 scales d, dmin
            qtype = gguf.GGMLQuantizationType.Q4_K
            blocks = np.random.default_rng(0).integers(0, 256, (arr.size // 256, 144), dtype=np.uint8)
            blocks[:, 0:4] = np.array([0.002, 0.001], dtype=np.float16).view(np.uint8)
            w.add_tensor(name, blocks.reshape(gguf.quant_shape_to_byte_shape(arr.shape, qtype)), raw_dtype=qtype)
        else:
            qtype = gguf.GGMLQuantizationType[out_type]
            w.add_tensor(name, quantize(arr, qtype), raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def train_byte_level_bpe(pre: str, vocab_size: int = 400, special_tokens=("<|endoftext|>", "<|im_start|>", "<|im_end|>")):
    """Train a tiny byte-level BPE ``tokenizers.Tokenizer`` whose pre-tokenizer is llama.cpp's ``pre``."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    if pre == "gpt2":
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    elif pre == "smollm":
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ])
    else:
        pattern = {
            "qwen2": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
            "llama-bpe": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
        }[pre]
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=list(special_tokens),
        show_progress=False,
    )
    tok.train_from_iterator(TOKENIZER_CORPUS * 3, trainer=trainer)
    return tok


def bpe_tokenizer_kv(tok, pre: str, chat_template: str | None = None, bos: str | None = None, eos: str = "<|im_end|>"):
    """GGUF ``tokenizer.*`` key -> (value, type, array element type), as llama.cpp's _set_vocab_gpt2 writes."""
    import gguf

    vt = gguf.GGUFValueType
    data = json.loads(tok.to_str())
    vocab = data["model"]["vocab"]
    added = {t["content"]: t for t in data["added_tokens"]}
    tokens = [None] * (max(vocab.values()) + 1)
    for t, i in vocab.items():
        tokens[i] = t
    types = [3 if t in added and added[t]["special"] else 1 for t in tokens]
    merges = [m if isinstance(m, str) else " ".join(m) for m in data["model"]["merges"]]
    kv = {
        "tokenizer.ggml.model": ("gpt2", vt.STRING, None),
        "tokenizer.ggml.pre": (pre, vt.STRING, None),
        "tokenizer.ggml.tokens": (tokens, vt.ARRAY, vt.STRING),
        "tokenizer.ggml.token_type": (types, vt.ARRAY, vt.INT32),
        "tokenizer.ggml.merges": (merges, vt.ARRAY, vt.STRING),
        "tokenizer.ggml.eos_token_id": (tokens.index(eos), vt.UINT32, None),
        "tokenizer.ggml.padding_token_id": (tokens.index(eos), vt.UINT32, None),
        "tokenizer.ggml.add_bos_token": (bos is not None, vt.BOOL, None),
    }
    if bos is not None:
        kv["tokenizer.ggml.bos_token_id"] = (tokens.index(bos), vt.UINT32, None)
    if chat_template is not None:
        kv["tokenizer.chat_template"] = (chat_template, vt.STRING, None)
    return kv


def kv_to_metadata(kv: dict) -> dict:
    """The Python values of a ``tokenizer_kv`` dict, as ``read_metadata`` returns them."""
    return {k: v for k, (v, _, _) in kv.items()}
