"""Base tokenizers (SentencePiece, tiktoken, tokenizer.json) and chat-template model tokenizers
(from a Hugging Face model directory or a GGUF file)."""

from torchtune.modules.tokenizers._turn_format import TurnFormatTokenizer
from torchtune.modules.tokenizers._chat_template import ChatTemplate, compile_chat_template
from torchtune.modules.tokenizers._hf_model_tokenizer import HFModelTokenizer
from torchtune.modules.tokenizers._gguf_tokenizer import GGUFTokenizer
from torchtune.modules.tokenizers._hf_tokenizer import HuggingFaceBaseTokenizer
from torchtune.modules.tokenizers._sentencepiece import SentencePieceBaseTokenizer
from torchtune.modules.tokenizers._tiktoken import TikTokenBaseTokenizer, load_bpe_ranks
from torchtune.modules.tokenizers._utils import (
    ModelTokenizer,
    encode_parts,
    encode_with_special_tokens,
    split_special_tokens,
    truncate,
)

__all__ = [
    "ChatTemplate",
    "GGUFTokenizer",
    "HFModelTokenizer",
    "HuggingFaceBaseTokenizer",
    "ModelTokenizer",
    "SentencePieceBaseTokenizer",
    "TikTokenBaseTokenizer",
    "TurnFormatTokenizer",
    "compile_chat_template",
    "encode_parts",
    "encode_with_special_tokens",
    "load_bpe_ranks",
    "split_special_tokens",
    "truncate",
]
