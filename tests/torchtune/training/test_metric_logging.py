import io
import json
import sys
import types

import pytest
import torch

from torchtune.training import (
    JsonlLogger,
    MLFlowLogger,
    StdoutLogger,
    TensorBoardLogger,
    WandBLogger,
)


def test_jsonl_one_flushed_object_per_line(tmp_path):
    logger = JsonlLogger(tmp_path / "logs")
    logger.log("loss", torch.tensor(1.5), step=1)
    # flushed: readable before close
    lines = (tmp_path / "logs" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 1
    logger.log_dict({"loss": 0.5, "lr": 1e-4, "tokens": 12, "bad": float("nan")}, step=2)
    logger.close()
    records = [json.loads(line) for line in (tmp_path / "logs" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2]
    assert records[0]["loss"] == 1.5
    assert {k: records[1][k] for k in ("loss", "lr", "tokens", "bad")} == {"loss": 0.5, "lr": 1e-4, "tokens": 12, "bad": "nan"}
    assert all(isinstance(r["time"], float) for r in records)


def test_jsonl_appends_and_errors(tmp_path):
    with JsonlLogger(tmp_path) as logger:
        logger.log("loss", 1.0, 1)
    with JsonlLogger(tmp_path) as logger:
        logger.log("loss", 2.0, 2)
        with pytest.raises(ValueError, match=r"metric 'x' must be a scalar, got a tensor of shape \(2,\)"):
            logger.log("x", torch.ones(2), 3)
        with pytest.raises(TypeError, match="metric 'y' must be a number or scalar tensor, got str"):
            logger.log("y", "high", 3)
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 2
    with pytest.raises(RuntimeError, match="is closed"):
        logger.log("loss", 1.0, 4)


def test_stdout_logger():
    stream = io.StringIO()
    StdoutLogger(stream).log_dict({"loss": torch.tensor(1.23456789), "lr": 1e-4}, step=10)
    assert stream.getvalue() == "Step 10 | loss:1.23457 lr:0.0001\n"


@pytest.mark.parametrize(
    "make, module, extra",
    [
        (lambda p: TensorBoardLogger(p), "tensorboard", "tensorboard"),
        (lambda p: WandBLogger(project="x"), "wandb", "wandb"),
        (lambda p: MLFlowLogger(), "mlflow", "mlflow"),
    ],
)
def test_missing_extra_names_pip_install(monkeypatch, tmp_path, make, module, extra):
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ModuleNotFoundError, match=rf"pip install 'torchtune\[{extra}\]'"):
        make(tmp_path)


def test_wandb_calls(monkeypatch):
    calls = []
    run = types.SimpleNamespace(log=lambda d, step: calls.append(("log", d, step)), finish=lambda: calls.append("finish"))
    fake = types.ModuleType("wandb")
    fake.init = lambda **kw: calls.append(("init", kw)) or run
    monkeypatch.setitem(sys.modules, "wandb", fake)
    with WandBLogger(project="p", name="r") as logger:
        logger.log("loss", torch.tensor(2.0), 3)
    assert calls == [("init", {"project": "p", "name": "r"}), ("log", {"loss": 2.0}, 3), "finish"]


def test_mlflow_calls(monkeypatch):
    calls = []
    fake = types.ModuleType("mlflow")
    fake.set_tracking_uri = lambda uri: calls.append(("uri", uri))
    fake.set_experiment = lambda name: calls.append(("exp", name))
    fake.start_run = lambda run_name: calls.append(("start", run_name))
    fake.log_metrics = lambda d, step: calls.append(("log", d, step))
    fake.end_run = lambda: calls.append("end")
    monkeypatch.setitem(sys.modules, "mlflow", fake)
    with MLFlowLogger(experiment_name="e", tracking_uri="file:/tmp/x", run_name="r") as logger:
        logger.log_dict({"loss": 1.0, "lr": torch.tensor(0.5)}, 7)
    assert calls == [("uri", "file:/tmp/x"), ("exp", "e"), ("start", "r"), ("log", {"loss": 1.0, "lr": 0.5}, 7), "end"]


def test_tensorboard_calls(monkeypatch, tmp_path):
    calls = []

    class FakeWriter:
        def __init__(self, log_dir, **kwargs):
            calls.append(("init", log_dir, kwargs))

        def add_scalar(self, tag, value, global_step):
            calls.append(("scalar", tag, value, global_step))

        def close(self):
            calls.append("close")

    fake_tb = types.ModuleType("torch.utils.tensorboard")
    fake_tb.SummaryWriter = FakeWriter
    monkeypatch.setitem(sys.modules, "tensorboard", types.ModuleType("tensorboard"))
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", fake_tb)
    with TensorBoardLogger(tmp_path, flush_secs=5) as logger:
        logger.log_dict({"loss": torch.tensor(0.5), "lr": 0.1}, 4)
    assert calls == [
        ("init", str(tmp_path), {"flush_secs": 5}),
        ("scalar", "loss", 0.5, 4),
        ("scalar", "lr", 0.1, 4),
        "close",
    ]


@pytest.mark.parametrize("logger,module,extra", [("WandBLogger", "wandb", "wandb"), ("MLFlowLogger", "mlflow", "mlflow"),
                                                 ("TensorBoardLogger", "tensorboard", "tensorboard")])
def test_missing_logger_extra_is_one_config_error(monkeypatch, logger, module, extra):
    import sys

    from torchtune.config import ConfigError
    from torchtune.training import check_metric_loggers

    monkeypatch.setitem(sys.modules, module, None)  # as if not installed
    node = [{"_component_": "torchtune.training.JsonlLogger", "log_dir": "x"}, {"_component_": f"torchtune.training.{logger}"}]
    with pytest.raises(ConfigError, match=rf"^metric_logger torchtune\.training\.{logger}: .*pip install 'torchtune\[{extra}\]'$"):
        check_metric_loggers(node)
    check_metric_loggers(node[:1])
