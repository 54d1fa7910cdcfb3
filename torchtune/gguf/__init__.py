"""The GGUF file format (llama.cpp): reading and writing files, block dequantisation, tensor-name
and architecture mapping to Hugging Face's layout, and vocabularies as ``tokenizers`` objects.

The checkpointer that loads and writes models through it is
:class:`torchtune.training.checkpointing.GGUFCheckpointer`; the tokenizer is
:class:`torchtune.modules.tokenizers.GGUFTokenizer`.
"""

from torchtune.gguf._arch import (
    SUPPORTED_ARCHITECTURES,
    gguf_to_hf_name,
    hf_config_from_metadata,
    hf_to_gguf_name,
    permute_qk,
    unpermute_qk,
)
from torchtune.gguf._io import (
    OUT_TYPES,
    TensorInfo,
    load_gguf,
    open_gguf,
    read_gguf_header,
    read_hf_state_dict,
    read_metadata,
    write_gguf,
)
from torchtune.gguf._quants import BLOCK_LAYOUT, SUPPORTED_TYPES, dequantize, dequantize_blocks, quantize_q8_0
from torchtune.gguf._tensor import GGUFQuantizedTensor
from torchtune.gguf._rope import llama3_rope_divisors, rope_scaling_from_divisors
from torchtune.gguf._vocab import gguf_tokenizer_metadata_from_hf, space_prefix, tokenizer_from_gguf_metadata

__all__ = [
    "BLOCK_LAYOUT",
    "GGUFQuantizedTensor",
    "OUT_TYPES",
    "SUPPORTED_ARCHITECTURES",
    "SUPPORTED_TYPES",
    "TensorInfo",
    "dequantize",
    "dequantize_blocks",
    "gguf_to_hf_name",
    "gguf_tokenizer_metadata_from_hf",
    "hf_config_from_metadata",
    "hf_to_gguf_name",
    "llama3_rope_divisors",
    "load_gguf",
    "open_gguf",
    "permute_qk",
    "quantize_q8_0",
    "read_gguf_header",
    "read_hf_state_dict",
    "read_metadata",
    "rope_scaling_from_divisors",
    "space_prefix",
    "tokenizer_from_gguf_metadata",
    "unpermute_qk",
    "write_gguf",
]
