"""The end of a training run, after its loop: close the loggers, leave the process group, say where the result is."""

import time
from pathlib import Path

import torch.distributed as dist

from torchtune.training._distributed import is_distributed
from torchtune.training._metric_logging import RunLog


def finish_run(
    run_log: RunLog,
    final: str | Path,
    *,
    output_dir: str | Path,
    started: float,
    steps: int,
    what: str = "model",
) -> str:
    """Close a run's progress bar and loggers, leave the process group, and write the closing report.

    When a process group is initialized (a distributed recipe), every process first waits for the
    others at a barrier, so that none tears the group (gloo on CPU) down while another still uses
    it, and then the group is destroyed. The report is built on every process; the recipe prints
    it on process 0 only. It reads, line by line::

        Training took 12.3s for 40 steps
        Loss plot: <output_dir>/loss.png      (or "No loss plot: <why>", see RunLog.plot)
        Checkpoints are in <output_dir>; the final <what> is <final>
        Generate from it with:
          tune run generate --config tiny/generate checkpoint_dir=<final>

    Args:
        run_log (RunLog): the run's loggers and progress bar; closed here, then asked for the loss
            plot (``<output_dir>/loss.png``, drawn from its JSONL logger).
        final (str | Path): the final checkpoint directory, as the report names it (the recipe
            passes it resolved).
        output_dir (str | Path): the directory holding the run's checkpoints and ``loss.png``.
        started (float): ``time.perf_counter()`` when the loop began; the report gives the
            seconds from then to the end of the teardown.
        steps (int): optimizer steps this process ran (those of a resumed run's earlier part
            excluded).
        what (str): what the final checkpoint holds, after "the final": e.g.
            ``"model (merged weights and peft adapter)"``. Default: ``"model"``.

    Returns:
        str: the report, five lines without a trailing newline.
    """
    run_log.close()
    if is_distributed():
        dist.barrier()  # no process tears gloo down while another still uses it
        dist.destroy_process_group()
    output_dir = Path(output_dir)
    return "\n".join([
        f"Training took {time.perf_counter() - started:.1f}s for {steps} steps",
        run_log.plot(output_dir / "loss.png"),
        f"Checkpoints are in {output_dir.resolve()}; the final {what} is {final}",
        "Generate from it with:",
        f"  tune run generate --config tiny/generate checkpoint_dir={final}",
    ])
