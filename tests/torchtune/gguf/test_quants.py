"""Our GGML dequantisers against gguf.quants (the reference implementation), bit for bit."""

import numpy as np
import pytest
import torch

gguf = pytest.importorskip("gguf")
from gguf.quants import dequantize as ref_dequantize  # noqa: E402
from gguf.quants import quantize as ref_quantize  # noqa: E402

from torchtune.gguf._quants import (  # noqa: E402
    BLOCK_LAYOUT,
    dequantize,
    quantize_q8_0,
)

T = gguf.GGMLQuantizationType
SHAPE = (6, 512)  # torch order [rows, cols]; cols a multiple of every block size


def _random(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(SHAPE).astype(np.float32)


@pytest.mark.parametrize("name", ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "MXFP4"])
def test_legacy_quant_matches_gguf(name):
    raw = ref_quantize(_random(1), T[name])  # [rows, bytes per row]
    ours = dequantize(raw, name, SHAPE)
    assert torch.equal(ours, torch.from_numpy(ref_dequantize(raw, T[name])))


def _random_k_blocks(name: str, seed: int) -> np.ndarray:
    """Random bytes for every field; the float16 scale fields are set to finite values."""
    rng = np.random.default_rng(seed)
    block_values, block_bytes = BLOCK_LAYOUT[name]
    n_blocks = SHAPE[0] * SHAPE[1] // block_values
    blocks = rng.integers(0, 256, (n_blocks, block_bytes), dtype=np.uint8)
    halves = rng.uniform(-0.05, 0.05, (n_blocks, 2)).astype(np.float16).view(np.uint8)  # [n, 4]
    if name in ("IQ4_XS", "IQ4_NL"):  # d is the first two bytes
        blocks[:, :2] = halves[:, :2]
    elif name in ("Q6_K", "Q3_K"):  # d is the last two bytes
        blocks[:, -2:] = halves[:, :2]
    elif name == "Q2_K":  # d, dmin are the last four bytes
        blocks[:, -4:] = halves
    else:  # d, dmin are the first four bytes
        blocks[:, :4] = halves
    return blocks.reshape(SHAPE[0], -1)


@pytest.mark.parametrize("name", ["Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ4_XS", "IQ4_NL"])
def test_k_quant_matches_gguf(name):  # and the IQ4 types, which gguf cannot quantise: random bytes
    raw = _random_k_blocks(name, seed=2)
    ours = dequantize(raw, name, SHAPE)
    assert torch.equal(ours, torch.from_numpy(ref_dequantize(raw, T[name])))


@pytest.mark.parametrize("name,np_dtype", [("F32", np.float32), ("F16", np.float16)])
def test_float_types(name, np_dtype):
    values = _random(3).astype(np_dtype)
    ours = dequantize(values, name, SHAPE, dtype=torch.float32)
    assert torch.equal(ours, torch.from_numpy(ref_dequantize(values, T[name]).astype(np.float32)))


def test_bf16_matches_gguf():
    raw = ref_quantize(_random(4), T.BF16)  # stored as 16-bit integers
    ours = dequantize(raw, "BF16", SHAPE)
    assert ours.dtype == torch.float32
    assert torch.equal(ours, torch.from_numpy(ref_dequantize(raw, T.BF16)))


def test_result_dtype():
    raw = ref_quantize(_random(5), T.Q8_0)
    ours = dequantize(raw, "Q8_0", SHAPE, dtype=torch.bfloat16)
    expected = torch.from_numpy(ref_dequantize(raw, T.Q8_0)).to(torch.bfloat16)
    assert ours.dtype == torch.bfloat16 and torch.equal(ours, expected)


def test_quantize_q8_0_matches_gguf():
    values = _random(6)
    values[0, :32] = 0.0  # an all-zero block
    assert np.array_equal(quantize_q8_0(torch.from_numpy(values)), ref_quantize(values, T.Q8_0))


def test_quantize_q8_0_rejects_ragged_rows():
    with pytest.raises(ValueError, match="multiple of 32, got 40"):
        quantize_q8_0(torch.zeros(2, 40))


def test_unsupported_type_names_tensor_and_type():
    with pytest.raises(ValueError, match=r"tensor 'blk\.0\.attn_q\.weight' has GGML type IQ2_XXS"):
        dequantize(np.zeros(66, np.uint8), "IQ2_XXS", (256,), tensor_name="blk.0.attn_q.weight")


def test_wrong_byte_count():
    with pytest.raises(ValueError, match=r"tensor 'x' of type Q8_0 with shape \(64,\) needs 2 blocks"):
        dequantize(np.zeros(34, np.uint8), "Q8_0", (64,), tensor_name="x")


def test_mxfp4_every_scale_byte_matches_gguf():
    """All 256 E8M0 scales (the subnormal halves of 0 and 1, the overflow to inf at 255 too) on random nibbles."""
    rng = np.random.default_rng(7)
    blocks = rng.integers(0, 256, (256, 17), dtype=np.uint8)
    blocks[:, 0] = np.arange(256, dtype=np.uint8)
    raw = blocks.reshape(8, -1)  # 8 rows of 32 blocks
    with np.errstate(over="ignore"):
        expected = ref_dequantize(raw, T.MXFP4)
    assert np.isinf(expected).any() and (expected[np.isfinite(expected)] != 0).any()
    assert torch.equal(dequantize(raw, "MXFP4", (8, 1024)), torch.from_numpy(expected))
