"""Periodic step checkpoints under an output directory: when to save, what to keep, where to resume."""

import logging
import os
import re
import shutil
from pathlib import Path
from typing import Callable

from torchtune.training.checkpointing._atomic import (
    OLD_PREFIX,
    TMP_PREFIX,
    atomic_directory,
    is_complete_checkpoint,
    remove_dir,
)

logger = logging.getLogger(__name__)

_STEP_RE = re.compile(r"^step_(\d+)$")
_TEMP_RE = re.compile(rf"^(?:{re.escape(TMP_PREFIX)}|{re.escape(OLD_PREFIX)}).*-(\d+)$")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class CheckpointManager:
    """Step checkpoints ``<output_dir>/step_<N>``, written atomically, pruned, found for resume.

    Single-process saves go through :meth:`save`. Sharded (distributed) saves write
    :meth:`step_dir` with :func:`~torchtune.training.checkpointing.dcp_save` on every rank, then rank 0 calls
    :meth:`prune`.

    Args:
        output_dir (str | Path): directory holding the ``step_<N>`` checkpoints.
        save_every_n_steps (int | None): save when ``step % save_every_n_steps == 0``; None never
            saves by step. Default None.
        keep_last_n (int | None): keep at most this many whole step checkpoints (the newest);
            None keeps all. Default None.

    Raises:
        ValueError: if ``save_every_n_steps`` or ``keep_last_n`` is not a positive integer.
    """

    def __init__(
        self,
        output_dir: str | Path,
        *,
        save_every_n_steps: int | None = None,
        keep_last_n: int | None = None,
    ) -> None:
        if save_every_n_steps is not None and save_every_n_steps < 1:
            raise ValueError(f"save_every_n_steps={save_every_n_steps} must be a positive integer or None")
        if keep_last_n is not None and keep_last_n < 1:
            raise ValueError(f"keep_last_n={keep_last_n} must be a positive integer or None")
        self.output_dir = Path(output_dir)
        self.save_every_n_steps = save_every_n_steps
        self.keep_last_n = keep_last_n

    def should_save(self, step: int) -> bool:
        """Whether ``step`` (counted from 1) is a save step."""
        return self.save_every_n_steps is not None and step > 0 and step % self.save_every_n_steps == 0

    def step_dir(self, step: int) -> Path:
        """The directory of the checkpoint for ``step``."""
        return self.output_dir / f"step_{step}"

    def list_checkpoints(self) -> list[tuple[int, Path]]:
        """Whole step checkpoints as ``(step, path)``, oldest first; partial ones are skipped."""
        if not self.output_dir.is_dir():
            return []
        found = []
        for path in self.output_dir.iterdir():
            match = _STEP_RE.match(path.name)
            if match and path.is_dir() and is_complete_checkpoint(path):
                found.append((int(match.group(1)), path))
        return sorted(found)

    def latest(self) -> Path | None:
        """The newest whole step checkpoint, or None when there is none."""
        checkpoints = self.list_checkpoints()
        return checkpoints[-1][1] if checkpoints else None

    def resolve_resume(self, resume: bool | str | Path | None) -> Path | None:
        """Turn a ``resume`` setting into a checkpoint directory.

        Args:
            resume (bool | str | Path | None): ``"auto"`` or True: the latest whole checkpoint if
                any (else None); False/None/``"never"``: None; otherwise a checkpoint path.

        Returns:
            Path | None: the directory to resume from.

        Raises:
            ValueError: if an explicit path is not a whole checkpoint.
        """
        if resume is None or resume is False or resume == "never":
            return None
        if resume is True or resume == "auto":
            latest = self.latest()
            logger.info("resume=auto: %s", f"resuming from {latest}" if latest else "starting fresh")
            return latest
        path = Path(resume)
        if not is_complete_checkpoint(path):
            raise ValueError(
                f"resume={str(resume)!r} is not a whole checkpoint (no valid CHECKPOINT_COMPLETE marker)"
            )
        return path

    def clean_temp(self) -> list[Path]:
        """Remove leftover ``.tmp-``/``.old-`` directories whose writing process is gone.

        Returns:
            list[Path]: the removed directories.
        """
        removed = []
        if not self.output_dir.is_dir():
            return removed
        for path in self.output_dir.iterdir():
            match = _TEMP_RE.match(path.name)
            if match and path.is_dir() and not _pid_alive(int(match.group(1))):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
        return removed

    def prune(self, keep: Path | None = None) -> list[Path]:
        """Delete the oldest whole checkpoints beyond ``keep_last_n``; never deletes ``keep``.

        Args:
            keep (Path | None): a checkpoint that must survive (the one just written).

        Returns:
            list[Path]: the deleted checkpoint directories.
        """
        if self.keep_last_n is None:
            return []
        paths = [path for _, path in self.list_checkpoints()]
        budget = self.keep_last_n
        if keep is not None and Path(keep) in paths:
            paths.remove(Path(keep))
            budget -= 1
        doomed = paths[: max(len(paths) - budget, 0)]
        for path in doomed:
            remove_dir(path)
            logger.info("Pruned checkpoint %s", path)
        return doomed

    def save(self, step: int, write: Callable[[Path], None], *, overwrite: bool = True) -> Path:
        """Write the checkpoint for ``step`` atomically, then prune old ones.

        Args:
            step (int): the training step the checkpoint records.
            write (Callable[[Path], None]): writes all files into the directory it is given.
            overwrite (bool): replace an existing ``step_<step>``. Default True.

        Returns:
            Path: the finished checkpoint directory.
        """
        final = self.step_dir(step)
        with atomic_directory(final, overwrite=overwrite) as tmp:
            write(tmp)
        self.prune(keep=final)
        return final
