"""Training utilities used by the recipes.

Device, dtype and precision choice, compile, schedulers, gradient clipping, activation
checkpointing and offloading, seeding and RNG state, throughput and memory meters, the NaN/inf
guard, metric loggers, validation loss, a loss plot, a progress bar and the end of a run
(:func:`finish_run`): what every recipe shares.
Gradient accumulation and the loss step are written out in the recipes (see :func:`scale_grads`);
:class:`OptimizerInBackward` moves the optimizer step into backward. Checkpointers live in
:mod:`torchtune.training.checkpointing`.
"""

from torchtune.training._activation_checkpointing import (
    apply_activation_checkpointing,
    is_checkpointed,
)
from torchtune.training._activation_offloading import OffloadActivations, activation_offloading
from torchtune.training._compile import check_compile, compile_model
from torchtune.training._device import (
    DTYPES,
    PrecisionPlan,
    bf16_supported,
    get_device,
    get_dtype,
    precision_plan,
)
from torchtune.training._distributed import (
    gather_full_optimizer_state_dict,
    gather_full_state_dict,
    get_world_size_and_rank,
    init_distributed,
    is_distributed,
    load_full_optimizer_state_dict,
    load_full_state_dict,
    shard_model,
)
from torchtune.training._finish import finish_run
from torchtune.training._grad import clip_grad_norm, scale_grads
from torchtune.training._loop import steps_per_epoch
from torchtune.training._lr_schedulers import (
    get_cosine_schedule_with_warmup,
    get_linear_schedule_with_warmup,
)
from torchtune.training._memory import max_rss_bytes, peak_memory_stats, release_freed_memory, reset_peak_memory_stats
from torchtune.training._metric_logging import (
    JsonlLogger,
    MetricLogger,
    MLFlowLogger,
    RunLog,
    StdoutLogger,
    TensorBoardLogger,
    WandBLogger,
    build_metric_loggers,
    check_metric_loggers,
    trim_metric_log,
)
from torchtune.training._nan_guard import TrainingDivergedError, check_finite
from torchtune.training._optimizer_in_backward import OptimizerInBackward, check_optimizer_in_bwd
from torchtune.training._plot import plot_loss, read_metric
from torchtune.training._progress import progress_bar
from torchtune.training._rewards import (
    AnswerInPromptReward,
    ExactAnswerReward,
    FormatReward,
    RewardError,
    reward_name,
    score_completions,
)
from torchtune.training._seed import get_rng_state, set_rng_state, set_seed
from torchtune.training._throughput import TokensPerSecond, count_tokens
from torchtune.training._validation import validation_loss
from torchtune.utils import deprecated_aliases

__all__ = [
    "AnswerInPromptReward",
    "DTYPES",
    "ExactAnswerReward",
    "FormatReward",
    "JsonlLogger",
    "MLFlowLogger",
    "MetricLogger",
    "OffloadActivations",
    "OptimizerInBackward",
    "PrecisionPlan",
    "RewardError",
    "RunLog",
    "StdoutLogger",
    "TensorBoardLogger",
    "TokensPerSecond",
    "TrainingDivergedError",
    "WandBLogger",
    "activation_offloading",
    "apply_activation_checkpointing",
    "bf16_supported",
    "build_metric_loggers",
    "check_compile",
    "check_metric_loggers",
    "check_finite",
    "check_optimizer_in_bwd",
    "clip_grad_norm",
    "compile_model",
    "count_tokens",
    "finish_run",
    "gather_full_optimizer_state_dict",
    "gather_full_state_dict",
    "get_cosine_schedule_with_warmup",
    "get_device",
    "get_dtype",
    "get_linear_schedule_with_warmup",
    "get_rng_state",
    "get_world_size_and_rank",
    "init_distributed",
    "is_checkpointed",
    "is_distributed",
    "load_full_optimizer_state_dict",
    "load_full_state_dict",
    "max_rss_bytes",
    "peak_memory_stats",
    "plot_loss",
    "precision_plan",
    "progress_bar",
    "read_metric",
    "release_freed_memory",
    "reset_peak_memory_stats",
    "reward_name",
    "scale_grads",
    "score_completions",
    "set_rng_state",
    "set_seed",
    "shard_model",
    "steps_per_epoch",
    "trim_metric_log",
    "validation_loss",
]

# Moved in 0.2 to torchtune.training.checkpointing, beside the atomic-save code they use.
__getattr__ = deprecated_aliases(__name__, {
    "dcp_load": "torchtune.training.checkpointing.dcp_load",
    "dcp_save": "torchtune.training.checkpointing.dcp_save",
})
