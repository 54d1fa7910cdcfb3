"""Checks shared by the per-family tests: a transformers model made from its own config class and
ours built from that ``config.json``, compared on logits, gradients, padding-free rows, KV-cache
decoding, greedy generation and the state-dict round trip. Every expected value comes from
transformers."""

import json

import torch
from torch import nn

from torchtune.generation import generate, generation_masks
from torchtune.models import hf_to_tune, model_from_hf_config, tune_to_hf
from torchtune.modules import BlockCausalMask

ATOL = RTOL = 1e-5


def make_pair(hf_config, model_cls, *, std: float = 0.2, seed: int = 0) -> tuple[nn.Module, nn.Module, dict]:
    """transformers' model (every parameter random, norms included) and ours on equal weights.

    Returns:
        tuple: ``(hf_model, our_model, config_dict)``, both in eval mode, fp32.
    """
    torch.manual_seed(seed)
    hf_config._attn_implementation = "eager"
    hf = model_cls(hf_config).eval()
    with torch.no_grad():
        for p in hf.parameters():
            p.normal_(0.0, std)
    config = json.loads(hf_config.to_json_string())  # what config.json holds
    ours = model_from_hf_config(config).eval()
    ours.load_state_dict(hf_to_tune(hf.state_dict(), config), strict=True)
    return hf, ours, config


def padded_batch(vocab_size: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Three rows of 11 tokens, two of them left-padded (pad id 0)."""
    tokens = torch.randint(1, vocab_size, (3, 11), generator=torch.Generator().manual_seed(seed))
    is_real = torch.ones_like(tokens, dtype=torch.bool)
    is_real[1, :4] = False
    is_real[2, :7] = False
    return tokens.masked_fill(~is_real, 0), is_real


def hf_logits(hf: nn.Module, tokens: torch.Tensor, is_real: torch.Tensor) -> torch.Tensor:
    position_ids = (is_real.long().cumsum(-1) - 1).clamp(min=0)
    return hf(input_ids=tokens, attention_mask=is_real.long(), position_ids=position_ids).logits


def check_padded_logits(hf: nn.Module, ours: nn.Module, vocab_size: int) -> None:
    tokens, is_real = padded_batch(vocab_size)
    mask, input_pos = generation_masks(is_real, 0)
    with torch.no_grad():
        got = ours(tokens, mask=mask, input_pos=input_pos)
        expected = hf_logits(hf, tokens, is_real)
    torch.testing.assert_close(got[is_real], expected[is_real], atol=ATOL, rtol=RTOL)


def check_gradients(hf: nn.Module, ours: nn.Module, config: dict, vocab_size: int) -> None:
    """Equal loss and equal gradients of every parameter (under transformers' names). Token 0 is
    left out: transformers' embedding has ``padding_idx=pad_token_id`` and gives that row no gradient."""
    tokens = torch.randint(1, vocab_size, (2, 12), generator=torch.Generator().manual_seed(3))
    labels = torch.randint(0, vocab_size, (2, 12), generator=torch.Generator().manual_seed(4))
    loss = nn.functional.cross_entropy(ours(tokens).flatten(0, 1), labels.flatten())
    ref = nn.functional.cross_entropy(hf(input_ids=tokens).logits.flatten(0, 1), labels.flatten())
    loss.backward()
    ref.backward()
    torch.testing.assert_close(loss, ref, atol=ATOL, rtol=RTOL)
    grads = {n: p.grad for n, p in ours.named_parameters()}
    expected = hf_to_tune({n: p.grad for n, p in hf.named_parameters()}, config)  # under our names
    assert grads.keys() == expected.keys()
    for name, grad in grads.items():
        torch.testing.assert_close(grad, expected[name], atol=ATOL, rtol=1e-4, msg=name)


def check_padding_free(hf: nn.Module, ours: nn.Module, vocab_size: int) -> None:
    """Documents laid end to end in one row (BlockCausalMask) give each document's logits alone."""
    rows = [[5, 11, 3], [12, 7]]
    g = torch.Generator().manual_seed(5)
    docs = [torch.randint(0, vocab_size, (n,), generator=g) for lens in rows for n in lens]
    tokens = torch.stack([torch.cat(docs[:3]), torch.cat(docs[3:])])  # [2, 19]
    input_pos = torch.stack([torch.cat([torch.arange(n) for n in lens]) for lens in rows])
    with torch.no_grad():
        got = ours(tokens, mask=BlockCausalMask(rows), input_pos=input_pos)
        alone = [hf(input_ids=d[None]).logits[0] for d in docs]
    expected = torch.stack([torch.cat(alone[:3]), torch.cat(alone[3:])])
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=RTOL)


def check_kv_cache(hf: nn.Module, ours: nn.Module, vocab_size: int) -> None:
    """Prefill then one token at a time with the KV cache equals transformers' full forward."""
    tokens, is_real = padded_batch(vocab_size)
    b, s = tokens.shape
    mask, input_pos = generation_masks(is_real, 0)
    ours.setup_caches(b, torch.float32, decoder_max_seq_len=s)
    try:
        with torch.no_grad():
            steps = [ours(tokens[:, :4], mask=mask[:, :4], input_pos=input_pos[:, :4])]
            for t in range(4, s):
                steps.append(ours(tokens[:, t : t + 1], mask=mask[:, t : t + 1], input_pos=input_pos[:, t : t + 1]))
            expected = hf_logits(hf, tokens, is_real)
    finally:
        ours.delete_caches()
    torch.testing.assert_close(torch.cat(steps, dim=1)[is_real], expected[is_real], atol=ATOL, rtol=RTOL)


def check_greedy_generation(hf: nn.Module, ours: nn.Module) -> None:
    """Greedy decoding of a left-padded batch equals ``hf.generate(do_sample=False)``."""
    prompts = [[5, 17, 3, 44, 9, 21, 8], [70, 2, 11]]
    out, _ = generate(ours, prompts, max_new_tokens=7, pad_id=0, temperature=0.0)
    tokens = torch.tensor([prompts[0], [0] * 4 + prompts[1]])
    attention_mask = (tokens != 0).long()
    attention_mask[0] = 1
    expected = hf.generate(input_ids=tokens, attention_mask=attention_mask, max_new_tokens=7, do_sample=False,
                           pad_token_id=0, eos_token_id=None)
    assert torch.equal(out, expected)


def check_round_trip(hf: nn.Module, config: dict) -> None:
    sd = hf.state_dict()
    back = tune_to_hf(hf_to_tune(sd, config), config)
    if "lm_head.weight" not in back:
        sd = {k: v for k, v in sd.items() if k != "lm_head.weight"}
    assert back.keys() == sd.keys()
    for k in sd:
        assert torch.equal(back[k], sd[k]), k
