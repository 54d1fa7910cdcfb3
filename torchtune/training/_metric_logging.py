"""Metric loggers with one interface: ``log``, ``log_dict``, ``close``.

Create loggers on rank 0 only. Values may be Python numbers or scalar tensors.
Backends other than stdout and JSONL need an extra: ``pip install 'torchtune[tensorboard]'``,
``'torchtune[wandb]'`` or ``'torchtune[mlflow]'``.
"""

import json
import logging
import math
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

import torch

from torchtune.config import ConfigError, instantiate
from torchtune.utils import require

logger = logging.getLogger(__name__)

Scalar = int | float | torch.Tensor


def _to_number(name: str, value: Scalar) -> int | float:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"metric '{name}' must be a scalar, got a tensor of shape {tuple(value.shape)}")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"metric '{name}' must be a number or scalar tensor, got {type(value).__name__}")
    return value


class MetricLogger(ABC):
    """Interface of every metric logger; also a context manager that closes itself."""

    def log(self, name: str, value: Scalar, step: int) -> None:
        """Log one scalar ``value`` under ``name`` at ``step``."""
        self.log_dict({name: value}, step)

    @abstractmethod
    def log_dict(self, payload: Mapping[str, Scalar], step: int) -> None:
        """Log several scalars at ``step``."""

    def close(self) -> None:
        """Flush and release resources; further logging is an error for file backends."""

    def __enter__(self) -> "MetricLogger":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class StdoutLogger(MetricLogger):
    """Write ``Step 10 | loss:1.2345 lr:0.0001`` lines to a stream.

    Args:
        stream (TextIO | None): where to write; None means ``sys.stdout`` at call time.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    def log_dict(self, payload: Mapping[str, Scalar], step: int) -> None:
        parts = " ".join(f"{k}:{_to_number(k, v):.6g}" for k, v in payload.items())
        stream = self._stream or sys.stdout
        stream.write(f"Step {step} | {parts}\n")
        stream.flush()


class JsonlLogger(MetricLogger):
    """Append one JSON object per call to ``log_dir/filename``, flushed at once.

    Each line is ``{"step": 10, "time": 1700000000.0, "loss": 1.2, ...}``; NaN and
    infinities are written as the strings ``"nan"``, ``"inf"``, ``"-inf"`` so every line
    stays valid JSON.

    Args:
        log_dir (str | Path): directory, created if missing.
        filename (str): file name. Default: ``"metrics.jsonl"``.
    """

    def __init__(self, log_dir: str | Path, filename: str = "metrics.jsonl") -> None:
        self.path = Path(log_dir) / filename
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: TextIO | None = open(self.path, "a", encoding="utf-8")

    def log_dict(self, payload: Mapping[str, Scalar], step: int) -> None:
        if self._file is None:
            raise RuntimeError(f"JsonlLogger for {self.path} is closed")
        record: dict[str, Any] = {"step": int(step), "time": time.time()}
        for k, v in payload.items():
            num = _to_number(k, v)
            record[k] = num if math.isfinite(num) else str(num)
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def drop_after(self, step: int) -> None:
        """Remove the lines logged after ``step`` (a resumed run repeats those steps).

        Args:
            step (int): the last step to keep.
        """
        if self._file is not None:
            self._file.close()
        trim_metric_log(self.path, step)
        self._file = open(self.path, "a", encoding="utf-8")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class TensorBoardLogger(MetricLogger):
    """Write scalars with ``torch.utils.tensorboard.SummaryWriter`` (extra ``tensorboard``).

    Args:
        log_dir (str | Path): the event-file directory.
        **kwargs (Any): passed to ``SummaryWriter``.
    """

    def __init__(self, log_dir: str | Path, **kwargs: Any) -> None:
        require("tensorboard", extra="tensorboard")
        from torch.utils.tensorboard import SummaryWriter

        self._writer = SummaryWriter(log_dir=str(log_dir), **kwargs)

    def log_dict(self, payload: Mapping[str, Scalar], step: int) -> None:
        for k, v in payload.items():
            self._writer.add_scalar(k, _to_number(k, v), global_step=step)

    def close(self) -> None:
        self._writer.close()


class WandBLogger(MetricLogger):
    """Log to Weights & Biases (extra ``wandb``).

    Args:
        project (str): the W&B project.
        **kwargs (Any): passed to ``wandb.init`` (entity, name, dir, config, mode, ...).
    """

    def __init__(self, project: str, **kwargs: Any) -> None:
        self._wandb = require("wandb", extra="wandb")
        self._run = self._wandb.init(project=project, **kwargs)

    def log_dict(self, payload: Mapping[str, Scalar], step: int) -> None:
        self._run.log({k: _to_number(k, v) for k, v in payload.items()}, step=step)

    def close(self) -> None:
        self._run.finish()


class MLFlowLogger(MetricLogger):
    """Log to MLflow (extra ``mlflow``).

    Args:
        experiment_name (str | None): experiment to log under; None uses MLflow's default.
        tracking_uri (str | None): MLflow server or ``file:`` URI; None uses MLflow's default.
        run_name (str | None): name of the new run. Default: None.
    """

    def __init__(
        self,
        experiment_name: str | None = None,
        tracking_uri: str | None = None,
        run_name: str | None = None,
    ) -> None:
        self._mlflow = require("mlflow", extra="mlflow")
        if tracking_uri is not None:
            self._mlflow.set_tracking_uri(tracking_uri)
        if experiment_name is not None:
            self._mlflow.set_experiment(experiment_name)
        self._run = self._mlflow.start_run(run_name=run_name)

    def log_dict(self, payload: Mapping[str, Scalar], step: int) -> None:
        self._mlflow.log_metrics({k: _to_number(k, v) for k, v in payload.items()}, step=step)

    def close(self) -> None:
        self._mlflow.end_run()


# logger class -> (module it needs, torchtune extra that installs it)
_LOGGER_EXTRAS = {"TensorBoardLogger": ("tensorboard", "tensorboard"), "WandBLogger": ("wandb", "wandb"),
                  "MLFlowLogger": ("mlflow", "mlflow")}


def check_metric_loggers(node: Any) -> None:
    """Stop before any work when a ``metric_logger`` entry needs a package that is not installed.

    Args:
        node (Any): the config's ``metric_logger`` (a node, a list of them, or None).

    Raises:
        ConfigError: naming the logger and the ``pip install 'torchtune[<extra>]'`` that fixes it.
    """
    for n in (node if isinstance(node, list) else [node] if node is not None else []):
        component = str(n.get("_component_", "")) if hasattr(n, "get") else ""
        needs = _LOGGER_EXTRAS.get(component.rpartition(".")[2])
        if needs is None:
            continue
        try:
            require(needs[0], extra=needs[1])
        except ModuleNotFoundError as e:
            raise ConfigError(f"metric_logger {component}: {e}") from None


def build_metric_loggers(node: Any) -> list[MetricLogger]:
    """One logger per ``_component_`` node of a config's ``metric_logger`` (a node or a list).

    Args:
        node (Any): a config node with ``_component_`` (e.g. ``torchtune.training.JsonlLogger``),
            a list of them, or None for no logger.

    Returns:
        list[MetricLogger]: the loggers, in config order.
    """
    if node is None:
        return []
    nodes = node if isinstance(node, list) else [node]
    return [instantiate(n) for n in nodes]


def trim_metric_log(path: str | Path, last_step: int) -> None:
    """Keep only the lines of a :class:`JsonlLogger` file up to ``last_step``.

    A resumed run calls it with the step of its checkpoint, so that what a crashed run logged
    after that checkpoint does not appear twice; a fresh run (step 0) empties the file.

    Args:
        path (str | Path): the JSONL metrics file (nothing happens when it does not exist).
        last_step (int): the last step to keep.
    """
    path = Path(path)
    if path.exists():
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        path.write_text("".join(line for line in lines if json.loads(line)["step"] <= last_step), encoding="utf-8")


class RunLog:
    """A run's metric loggers and progress bar: what a training loop reports, on process 0.

    On a resumed run the JSONL metric files are first cut back to ``initial_step``
    (:func:`trim_metric_log`), so what a crashed run logged after its checkpoint is not repeated.

    Args:
        node (Any): the config's ``metric_logger`` (a ``_component_`` node, a list, or None).
        total_steps (int): steps of the whole run.
        initial_step (int): the step the run starts from (0, or the resumed step).
        desc (str): the progress bar's label.
        rank (int): this process; only process 0 logs and shows the bar. Default: 0.
    """

    def __init__(self, node: Any, *, total_steps: int, initial_step: int, desc: str, rank: int = 0) -> None:
        from torchtune.training._progress import progress_bar

        self.loggers = build_metric_loggers(node) if rank == 0 else []
        for logger_ in self.loggers:
            if isinstance(logger_, JsonlLogger):
                logger_.drop_after(initial_step)
        self.bar = progress_bar(total=total_steps, initial=initial_step, desc=desc, rank=rank)

    @property
    def jsonl_path(self) -> Path | None:
        """Path | None: the first JSONL logger's file, if any (for the loss plot)."""
        return next((lg.path for lg in self.loggers if isinstance(lg, JsonlLogger)), None)

    def log(self, payload: Mapping[str, Scalar], step: int) -> None:
        """Send ``payload`` to every logger, keeping printed lines off the progress bar's line."""
        with self.bar.external_write_mode():
            for logger_ in self.loggers:
                logger_.log_dict(payload, step)

    def step(self, loss: float) -> None:
        """Advance the progress bar by one optimizer step, showing ``loss``."""
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{loss:.4f}")

    def close(self) -> None:
        """Close the bar and every logger."""
        self.bar.close()
        for logger_ in self.loggers:
            logger_.close()

    def plot(self, path: str | Path) -> str:
        """Plot the JSONL loss curve into ``path``; returns a line saying where, or why not."""
        from torchtune.training._plot import plot_loss

        if self.jsonl_path is None or not self.jsonl_path.exists():
            return "No loss plot: no JsonlLogger in metric_logger"
        try:
            return f"Loss plot: {plot_loss(self.jsonl_path, path)}"
        except (ModuleNotFoundError, ValueError) as e:
            return f"No loss plot: {e}"
