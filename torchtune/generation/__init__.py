"""Sampling and autoregressive generation."""

from torchtune.generation._generate import generate, generate_text, generation_masks, left_pad_prompts
from torchtune.generation._sampling import sample_next_token, top_k_filter, top_p_filter

__all__ = [
    "generate",
    "generate_text",
    "generation_masks",
    "left_pad_prompts",
    "sample_next_token",
    "top_k_filter",
    "top_p_filter",
]
