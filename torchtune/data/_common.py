"""Constants shared by the data pipeline."""

CROSS_ENTROPY_IGNORE_IDX = -100
"""Label value that ``torch.nn.functional.cross_entropy(ignore_index=-100)`` skips."""
