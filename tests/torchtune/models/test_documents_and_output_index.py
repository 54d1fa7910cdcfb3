"""Padding-free rows (``BlockCausalMask``) and ``output_index`` against transformers.

transformers runs each document alone (no padding, no mask); our model runs the documents laid
end to end in one row, or computes only selected positions in its last layer.
"""

import copy
import json

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from torchtune.models import hf_to_tune, model_from_hf_config
from torchtune.modules import BlockCausalMask, LinearCrossEntropyLoss, bind_loss

_TINY = dict(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=64)
CONFIGS = {
    "llama_tied": dict(_TINY, model_type="llama", tie_word_embeddings=True, rope_theta=500000.0),
    "mistral_window": dict(_TINY, model_type="mistral", sliding_window=4),
    "qwen3_qk_norm": dict(_TINY, model_type="qwen3", head_dim=16, tie_word_embeddings=False),
    "gemma2_softcap_window": dict(_TINY, model_type="gemma2", num_hidden_layers=3, head_dim=16,
                                  query_pre_attn_scalar=24, sliding_window=3, attn_logit_softcapping=2.0,
                                  final_logit_softcapping=3.0),
    "gemma3_local_global": dict(_TINY, model_type="gemma3_text", num_hidden_layers=3, head_dim=16,
                                query_pre_attn_scalar=24, sliding_window=3, sliding_window_pattern=2),
    "smollm3_nope": dict(_TINY, model_type="smollm3", no_rope_layer_interval=2, pad_token_id=0, bos_token_id=1,
                         eos_token_id=2),
    "qwen3_moe": dict(_TINY, model_type="qwen3_moe", head_dim=16, moe_intermediate_size=16, num_experts=4,
                      num_experts_per_tok=2, norm_topk_prob=True),
}


def _pair(name):
    torch.manual_seed(0)
    hf_config = AutoConfig.for_model(**copy.deepcopy(CONFIGS[name]))
    hf = AutoModelForCausalLM.from_config(hf_config, attn_implementation="eager").eval()
    with torch.no_grad():
        for p in hf.parameters():
            p.normal_(0, 0.2)
    config = json.loads(hf_config.to_json_string())
    ours = model_from_hf_config(config).eval()
    ours.load_state_dict(hf_to_tune(hf.state_dict(), config), strict=True)
    return hf, ours


def _docs(lens, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 64, (n,), generator=g) for n in lens]


def _hf_alone(hf, docs):
    with torch.no_grad():
        return [hf(input_ids=d[None]).logits[0] for d in docs]  # each [n, v]


def _positions(rows):
    return torch.stack([torch.cat([torch.arange(n) for n in lens]) for lens in rows])  # [b, s]


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_documents_end_to_end_match_each_document_alone(name):
    hf, ours = _pair(name)
    rows = [[5, 9, 3], [9, 6, 2]]  # windows of 3 and 4 cut inside the 9-token documents
    docs = _docs([n for lens in rows for n in lens])
    tokens = torch.stack([torch.cat(docs[:3]), torch.cat(docs[3:])])  # [2, 17]
    with torch.no_grad():
        got = ours(tokens, mask=BlockCausalMask(rows), input_pos=_positions(rows))  # [2, 17, v]
    expected = torch.stack([torch.cat(_hf_alone(hf, docs[:3])), torch.cat(_hf_alone(hf, docs[3:]))])
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_output_index_matches_transformers_at_the_selected_positions(name):
    hf, ours = _pair(name)
    g = torch.Generator().manual_seed(2)
    # two full causal rows of 10, and one padding-free row of documents 4 + 10 + 6
    tokens = torch.randint(0, 64, (2, 10), generator=g)
    with torch.no_grad():
        expected = hf(input_ids=tokens).logits.reshape(20, -1)
    rows = [[4, 10, 6]]
    docs = _docs(rows[0], seed=3)
    expected_docs = torch.cat(_hf_alone(hf, docs))  # [20, v]
    for index in (torch.tensor([0, 3, 9, 10, 11, 19]), torch.tensor([12, 13, 14]), torch.tensor([7])):
        with torch.no_grad():
            got = ours(tokens, output_index=index)
            got_mask = ours(tokens, mask=torch.tril(torch.ones(10, 10, dtype=torch.bool)).expand(2, 10, 10),
                            output_index=index)
            got_docs = ours(torch.cat(docs)[None], mask=BlockCausalMask(rows), input_pos=_positions(rows),
                            output_index=index)
        assert got.shape == (1, index.numel(), 64)
        torch.testing.assert_close(got[0], expected[index], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(got_mask[0], expected[index], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(got_docs[0], expected_docs[index], atol=1e-5, rtol=1e-5)


def test_output_index_gives_the_gradients_of_transformers():
    hf, ours = _pair("llama_tied")
    hf.train(), ours.train()
    rows = [[6, 11, 7]]
    docs = _docs(rows[0], seed=4)
    labels = torch.full((24,), -100)
    labels[[3, 4, 5, 14, 15, 16, 20, 21]] = torch.randint(0, 64, (8,), generator=torch.Generator().manual_seed(5))
    keep = torch.nonzero(labels != -100).squeeze(1)
    loss_fn = LinearCrossEntropyLoss(num_output_chunks=3)
    bind_loss(loss_fn, ours)
    hidden = ours(torch.cat(docs)[None], mask=BlockCausalMask(rows), input_pos=_positions(rows), output_index=keep,
                  output="hidden")
    loss = loss_fn(hidden, labels[keep][None])
    loss.backward()
    # transformers: each document alone, summed token losses over all 8 labels
    label_docs = labels.split(rows[0])
    total = sum(torch.nn.functional.cross_entropy(hf(input_ids=d[None]).logits[0], y, reduction="sum")
                for d, y in zip(docs, label_docs))
    (total / 8).backward()
    torch.testing.assert_close(loss, total.detach() / 8, atol=1e-5, rtol=1e-5)
    ours_grads = {k: v for k, v in hf_to_tune_grads(ours).items()}
    for name, p in hf.named_parameters():
        if name == "lm_head.weight":  # tied: same tensor as the embeddings
            continue
        torch.testing.assert_close(ours_grads[name], p.grad, atol=1e-5, rtol=1e-4, msg=name)


def hf_to_tune_grads(ours):
    """Our gradients under transformers' parameter names."""
    from torchtune.models import tune_to_hf

    config = json.loads(AutoConfig.for_model(**copy.deepcopy(CONFIGS["llama_tied"])).to_json_string())
    grads = {n: p.grad for n, p in ours.named_parameters()}
    return tune_to_hf(grads, config)


def test_no_selected_positions_and_bad_indices():
    _, ours = _pair("llama_tied")
    tokens = torch.randint(0, 64, (2, 5))
    out = ours(tokens, output_index=torch.zeros(0, dtype=torch.long))
    assert out.shape == (1, 0, 64)
    for bad in (torch.tensor([3, 1]), torch.tensor([2, 2]), torch.tensor([10]), torch.tensor([-1]),
                torch.tensor([[1]]), torch.tensor([1.0])):
        with pytest.raises(ValueError, match="output_index"):
            ours(tokens, output_index=bad)


def test_block_causal_mask_checks_and_dense_form():
    mask = BlockCausalMask([[2, 1], [3]])
    expected = torch.tensor([[[1, 0, 0], [1, 1, 0], [0, 0, 1]], [[1, 0, 0], [1, 1, 0], [1, 1, 1]]], dtype=torch.bool)
    assert torch.equal(mask.dense(), expected)
    assert (mask.batch_size, mask.seq_len, mask.max_document_len) == (2, 3, 3)
    assert torch.equal(mask.document_starts(), torch.tensor([[0, 0, 2], [0, 0, 0]]))
    assert mask.to("cpu") is mask and mask == BlockCausalMask([(2, 1), (3,)])
    with pytest.raises(ValueError, match="same length"):
        BlockCausalMask([[2, 1], [2]])
    with pytest.raises(ValueError, match="positive"):
        BlockCausalMask([[2, 0]])
    with pytest.raises(ValueError, match="at least one"):
        BlockCausalMask([])
    _, ours = _pair("llama_tied")
    with pytest.raises(ValueError, match=r"covers \[2, 3\] but tokens are \[1, 3\]"):
        ours(torch.zeros(1, 3, dtype=torch.long), mask=mask)
    long_doc = BlockCausalMask([[65, 5]])
    with pytest.raises(ValueError, match="a document of 65 tokens exceeds max_seq_len=64"):
        ours(torch.zeros(1, 70, dtype=torch.long), mask=long_doc)
    # a row longer than max_seq_len is fine when every document fits
    rows = [[40, 40]]
    out = ours(torch.zeros(1, 80, dtype=torch.long), mask=BlockCausalMask(rows), input_pos=_positions(rows))
    assert out.shape == (1, 80, 64)
