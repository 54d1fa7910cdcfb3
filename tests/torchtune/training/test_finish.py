import re
import time

import pytest
import torch.distributed as dist

from torchtune.training import RunLog, finish_run

JSONL = {"_component_": "torchtune.training.JsonlLogger", "log_dir": None}


def _run_log(tmp_path, node=JSONL, steps=3):
    if node is JSONL:
        node = dict(JSONL, log_dir=str(tmp_path / "logs"))
    run_log = RunLog(node, total_steps=steps, initial_step=0, desc="test")
    for step in range(1, steps + 1):
        run_log.step(1.0 / step)
        run_log.log({"loss": 1.0 / step}, step)
    return run_log


def test_report_lines_and_loss_plot(tmp_path):
    run_log = _run_log(tmp_path)
    final = (tmp_path / "step_3").resolve()
    report = finish_run(run_log, final, output_dir=tmp_path, started=time.perf_counter() - 2.0, steps=3)
    lines = report.split("\n")
    assert len(lines) == 5
    took = re.fullmatch(r"Training took (\d+\.\d)s for 3 steps", lines[0])
    assert took and 2.0 <= float(took.group(1)) < 60.0, lines[0]
    assert lines[1] == f"Loss plot: {tmp_path / 'loss.png'}"
    assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert lines[2] == f"Checkpoints are in {tmp_path.resolve()}; the final model is {final}"
    assert lines[3:] == ["Generate from it with:", f"  tune run generate --config tiny/generate checkpoint_dir={final}"]


def test_closes_the_loggers_and_names_what_was_saved(tmp_path):
    run_log = _run_log(tmp_path)
    report = finish_run(run_log, "out/step_3", output_dir=tmp_path, started=time.perf_counter(), steps=3,
                        what="student (every weight)")
    assert "; the final student (every weight) is out/step_3\n" in report
    with pytest.raises(RuntimeError, match="is closed"):
        run_log.loggers[0].log("loss", 1.0, 4)
    assert (tmp_path / "logs" / "metrics.jsonl").read_text().count("\n") == 3


def test_without_jsonl_logger_says_why_there_is_no_plot(tmp_path):
    report = finish_run(_run_log(tmp_path, node=None), tmp_path, output_dir=tmp_path, started=time.perf_counter(),
                        steps=3)
    assert report.split("\n")[1] == "No loss plot: no JsonlLogger in metric_logger"
    assert not (tmp_path / "loss.png").exists()


def test_destroys_the_process_group(tmp_path):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        finish_run(_run_log(tmp_path, node=None), tmp_path, output_dir=tmp_path, started=time.perf_counter(), steps=3)
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
