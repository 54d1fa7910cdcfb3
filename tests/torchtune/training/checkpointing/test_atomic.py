"""Atomic checkpoint directories and the step-checkpoint manager."""

import json
import os
import random
import signal
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from torchtune.training.checkpointing import (
    COMPLETE_MARKER,
    CheckpointManager,
    atomic_directory,
    is_complete_checkpoint,
    load_recipe_state,
    save_recipe_state,
)
from torchtune.training.checkpointing._atomic import commit_temp_dir, prepare_temp_dir, temp_dir_for


def _write_files(directory: Path, value: int) -> None:
    (directory / "sub").mkdir()
    save_file({"w": torch.full((4,), float(value))}, directory / "a.safetensors")
    (directory / "sub" / "b.txt").write_text("x" * value)


def test_atomic_directory_writes_marker_with_every_file(tmp_path):
    with atomic_directory(tmp_path / "ckpt") as tmp:
        assert tmp.name.startswith(".tmp-ckpt-") and tmp.parent == tmp_path
        _write_files(tmp, 3)
        assert not (tmp_path / "ckpt").exists()
    marker = json.loads((tmp_path / "ckpt" / COMPLETE_MARKER).read_text())
    assert marker["files"] == {"a.safetensors": (tmp_path / "ckpt/a.safetensors").stat().st_size, "sub/b.txt": 3}
    assert is_complete_checkpoint(tmp_path / "ckpt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_atomic_directory_failure_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_directory(tmp_path / "ckpt") as tmp:
            _write_files(tmp, 1)
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_atomic_directory_refuses_existing_unless_overwrite(tmp_path):
    with atomic_directory(tmp_path / "ckpt") as tmp:
        _write_files(tmp, 1)
    with pytest.raises(FileExistsError, match="already exists; pass overwrite=True"):
        with atomic_directory(tmp_path / "ckpt"):
            pass
    with atomic_directory(tmp_path / "ckpt", overwrite=True) as tmp:
        _write_files(tmp, 5)
    assert (tmp_path / "ckpt" / "sub" / "b.txt").read_text() == "xxxxx"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_commit_with_a_shared_token_refuses_existing(tmp_path):
    tmp = prepare_temp_dir(tmp_path / "step_2", token=77)
    assert tmp == temp_dir_for(tmp_path / "step_2", 77) == tmp_path / ".tmp-step_2-77"
    _write_files(tmp, 1)
    (tmp_path / "step_2").mkdir()
    with pytest.raises(FileExistsError, match="step_2' already exists; pass overwrite=True"):
        commit_temp_dir(tmp, tmp_path / "step_2")
    assert commit_temp_dir(tmp, tmp_path / "step_2", overwrite=True) == tmp_path / "step_2"
    assert is_complete_checkpoint(tmp_path / "step_2") and not tmp.exists()


@pytest.mark.parametrize("damage", ["no_marker", "bad_json", "missing_file", "size_changed"])
def test_damaged_checkpoint_is_not_trusted(tmp_path, damage):
    with atomic_directory(tmp_path / "step_1") as tmp:
        _write_files(tmp, 2)
    ckpt = tmp_path / "step_1"
    if damage == "no_marker":
        (ckpt / COMPLETE_MARKER).unlink()
    elif damage == "bad_json":
        (ckpt / COMPLETE_MARKER).write_text("{not json")
    elif damage == "missing_file":
        (ckpt / "sub" / "b.txt").unlink()
    else:
        (ckpt / "sub" / "b.txt").write_text("xxx")
    assert not is_complete_checkpoint(ckpt)
    manager = CheckpointManager(tmp_path)
    assert manager.latest() is None
    with pytest.raises(ValueError, match="is not a whole checkpoint"):
        manager.resolve_resume(ckpt)


def test_manager_schedule_listing_pruning_and_resume(tmp_path):
    manager = CheckpointManager(tmp_path, save_every_n_steps=5, keep_last_n=2)
    assert [s for s in range(1, 16) if manager.should_save(s)] == [5, 10, 15]
    assert manager.resolve_resume("auto") is None
    (tmp_path / "step_99").mkdir()  # partial, ignored
    (tmp_path / "notes").mkdir()
    for step in (5, 10, 15):
        manager.save(step, lambda d, s=step: _write_files(d, s))
    assert [s for s, _ in manager.list_checkpoints()] == [10, 15]
    assert manager.resolve_resume("auto") == tmp_path / "step_15"
    assert manager.resolve_resume(True) == tmp_path / "step_15"
    assert manager.resolve_resume(False) is None and manager.resolve_resume("never") is None
    assert manager.resolve_resume(tmp_path / "step_10") == tmp_path / "step_10"
    # an older step written last (e.g. overwritten on rerun) survives pruning
    manager.save(5, lambda d: _write_files(d, 1))
    assert [s for s, _ in manager.list_checkpoints()] == [5, 15]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes", "step_15", "step_5", "step_99"]


def test_manager_rejects_bad_settings():
    with pytest.raises(ValueError, match="save_every_n_steps=0 must be a positive integer"):
        CheckpointManager("x", save_every_n_steps=0)
    with pytest.raises(ValueError, match="keep_last_n=-1 must be a positive integer"):
        CheckpointManager("x", keep_last_n=-1)


def test_clean_temp_removes_only_dead_writers(tmp_path):
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    dead = tmp_path / f".tmp-step_3-{pid}"
    alive = tmp_path / f".tmp-step_4-{os.getpid()}"
    old = tmp_path / f".old-step_1-{pid}"
    for path in (dead, alive, old):
        path.mkdir()
    assert sorted(CheckpointManager(tmp_path).clean_temp()) == sorted([dead, old])
    assert [p.name for p in tmp_path.iterdir()] == [alive.name]


def _saver(out_dir: Path) -> None:
    """Child process: write step checkpoints forever (until killed)."""
    manager = CheckpointManager(out_dir, save_every_n_steps=1, keep_last_n=2)
    latest = manager.list_checkpoints()
    step = latest[-1][0] + 1 if latest else 1

    def write(directory: Path) -> None:
        for i in range(3):
            save_file({"w": torch.full((32768,), float(step))}, directory / f"model-{i}.safetensors")
        save_recipe_state(directory, step=step, epoch=0, loss_history=[float(step)] * step)

    while True:
        manager.save(step, write)
        step += 1


def test_saves_killed_at_random_points_never_leave_a_bad_latest(tmp_path):
    rng = random.Random(0)
    manager = CheckpointManager(tmp_path)
    killed_mid_write, last_step = 0, 0
    for _ in range(20):
        pid = os.fork()
        if pid == 0:
            try:
                _saver(tmp_path)
            finally:
                os._exit(1)
        time.sleep(rng.uniform(0.02, 0.25))
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        killed_mid_write += any(p.name.startswith((".tmp-", ".old-")) for p in tmp_path.iterdir())
        # every visible step_N is whole, and the latest one loads with consistent contents
        for path in tmp_path.glob("step_*"):
            assert is_complete_checkpoint(path), path
        latest = manager.latest()
        if latest is not None:
            step = int(latest.name.split("_")[1])
            assert step >= last_step
            last_step = step
            for i in range(3):
                assert torch.equal(load_file(latest / f"model-{i}.safetensors")["w"], torch.full((32768,), float(step)))
            state = load_recipe_state(latest)
            assert state["step"] == step and state["loss_history"] == [float(step)] * step
        manager.clean_temp()
        assert not any(p.name.startswith((".tmp-", ".old-")) for p in tmp_path.iterdir())
    assert last_step > 0
    assert killed_mid_write > 0


def test_atomic_file_replaces_whole_or_not_at_all(tmp_path):
    from torchtune.training.checkpointing import atomic_file

    path = tmp_path / "model.bin"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="interrupted"):
        with atomic_file(path) as f:
            f.write(b"half of the new")
            raise RuntimeError("interrupted")
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["model.bin"]
    old_umask = os.umask(0o022)
    try:
        with atomic_file(path) as f:
            f.write(b"new")
    finally:
        os.umask(old_umask)
    assert path.read_bytes() == b"new" and os.listdir(tmp_path) == ["model.bin"]
    assert path.stat().st_mode & 0o777 == 0o644  # as a plain open() makes it, not a private temp file's 0o600
