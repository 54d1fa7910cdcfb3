"""Building blocks of decoder-only transformers."""

from torchtune.modules._attention import MultiHeadAttention
from torchtune.modules._block_causal_mask import BlockCausalMask
from torchtune.modules._decoder import TransformerDecoder
from torchtune.modules._feed_forward import FeedForward
from torchtune.modules._kv_cache import KVCache
from torchtune.modules._moe import ClampedSwiGLU, GroupedExperts, MoE, TopKRouter, load_balancing_loss
from torchtune.modules._rms_norm import RMSNorm
from torchtune.modules._rope import RotaryPositionalEmbeddings, llama3_scale_frequencies, yarn_frequencies
from torchtune.modules._transformer import TiedLinear, TransformerSelfAttentionLayer
from torchtune.utils import deprecated_aliases
from torchtune.modules._loss import (
    ChunkedCrossEntropyLoss,
    LinearCrossEntropyLoss,
    bind_loss,
    chunked_cross_entropy,
    linear_cross_entropy,
)
from torchtune.modules._kd_loss import DistillationLossOutput, KDLoss, distillation_loss, token_divergence
from torchtune.modules._grpo_loss import GRPOLoss, GRPOLossOutput, group_advantages, token_log_probs
from torchtune.modules._preference_loss import (
    DPOLoss,
    IPOLoss,
    PreferenceLossOutput,
    SequenceLogProbs,
    SimPOLoss,
    reward_metrics,
    reward_sums,
    sequence_log_probs,
)

__all__ = [
    "BlockCausalMask",
    "ChunkedCrossEntropyLoss",
    "ClampedSwiGLU",
    "DPOLoss",
    "DistillationLossOutput",
    "FeedForward",
    "GRPOLoss",
    "GRPOLossOutput",
    "GroupedExperts",
    "IPOLoss",
    "KDLoss",
    "KVCache",
    "LinearCrossEntropyLoss",
    "MoE",
    "MultiHeadAttention",
    "PreferenceLossOutput",
    "RMSNorm",
    "RotaryPositionalEmbeddings",
    "SequenceLogProbs",
    "SimPOLoss",
    "TiedLinear",
    "TopKRouter",
    "TransformerDecoder",
    "TransformerSelfAttentionLayer",
    "bind_loss",
    "chunked_cross_entropy",
    "distillation_loss",
    "group_advantages",
    "linear_cross_entropy",
    "load_balancing_loss",
    "llama3_scale_frequencies",
    "reward_metrics",
    "reward_sums",
    "sequence_log_probs",
    "token_divergence",
    "token_log_probs",
    "yarn_frequencies",
]

# Renamed in 0.2: the loss module is private like its neighbours; import the names from here.
__getattr__ = deprecated_aliases(__name__, {"loss": "torchtune.modules._loss"})
