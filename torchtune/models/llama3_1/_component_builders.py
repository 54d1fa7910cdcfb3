"""Llama 3.1 builders: Llama 3 with RoPE frequency scaling."""

import logging
from typing import Any

from torchtune.models._lora_settings import lora_builder
from torchtune.models.llama3._component_builders import llama3
from torchtune.modules import TransformerDecoder

logger = logging.getLogger(__name__)


def llama3_1(**sizes: Any) -> TransformerDecoder:
    """Llama 3.1 (also 3.2 and 3.3): :func:`~torchtune.models.llama3.llama3` with
    ``scale_factor=8.0`` unless given.

    Args:
        **sizes (Any): the keyword arguments of :func:`~torchtune.models.llama3.llama3`.

    Returns:
        TransformerDecoder: the model.
    """
    sizes.setdefault("scale_factor", 8.0)
    return llama3(**sizes)


lora_llama3_1 = lora_builder(llama3_1, "lora_llama3_1", __name__)
