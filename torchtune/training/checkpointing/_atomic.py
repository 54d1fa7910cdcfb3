"""Crash-safe checkpoint directories: a directory is either whole or absent.

A checkpoint is written into a hidden sibling directory ``.tmp-<name>-<token>`` on the same
filesystem. When the writer is done, every file and the directory are fsynced, a marker file
``CHECKPOINT_COMPLETE`` listing every file and its size is written last, and the directory is
renamed into place (then the parent directory is fsynced). Readers trust only directories that
carry a marker whose file list matches what is on disk. Single files written outside such a
directory go through :func:`atomic_file` (a temporary sibling renamed into place).
"""

import contextlib
import json
import logging
import os
import secrets
import shutil
import warnings
from pathlib import Path
from typing import IO, Any, Callable, Iterator

logger = logging.getLogger(__name__)

COMPLETE_MARKER = "CHECKPOINT_COMPLETE"
TMP_PREFIX = ".tmp-"
OLD_PREFIX = ".old-"
_MARKER_VERSION = 1


def _fsync_path(path: Path) -> None:
    """Flush a file or a directory to stable storage."""
    flags = os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0)
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _list_files(root: Path) -> dict[str, int]:
    """Relative POSIX path -> size in bytes of every regular file below ``root``."""
    files = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.name != COMPLETE_MARKER:
            files[path.relative_to(root).as_posix()] = path.stat().st_size
    return files


def write_complete_marker(directory: str | Path) -> dict[str, int]:
    """Fsync every file under ``directory`` and write the ``CHECKPOINT_COMPLETE`` marker last.

    Args:
        directory (str | Path): a fully written checkpoint directory.

    Returns:
        dict[str, int]: the recorded files (relative path -> size in bytes).
    """
    root = Path(directory)
    files = _list_files(root)
    for rel in files:
        _fsync_path(root / rel)
    for sub in sorted({p.parent for p in root.rglob("*") if p.is_file()}, reverse=True):
        _fsync_path(sub)
    marker = root / COMPLETE_MARKER
    with open(marker, "w", encoding="utf-8") as f:
        json.dump({"version": _MARKER_VERSION, "files": files}, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    _fsync_path(root)
    return files


def is_complete_checkpoint(directory: str | Path) -> bool:
    """Whether ``directory`` holds a whole checkpoint.

    It must contain a readable ``CHECKPOINT_COMPLETE`` marker and every file that the marker
    lists, each with the recorded size.

    Args:
        directory (str | Path): the directory to check.

    Returns:
        bool: True when the checkpoint may be trusted.
    """
    root = Path(directory)
    try:
        with open(root / COMPLETE_MARKER, encoding="utf-8") as f:
            marker = json.load(f)
        files = marker["files"]
        return all((root / rel).stat().st_size == size for rel, size in files.items())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def temp_dir_for(final_path: str | Path, token: str | int | None = None) -> Path:
    """The hidden sibling directory a checkpoint for ``final_path`` is written into.

    Args:
        final_path (str | Path): where the checkpoint ends up.
        token (str | int | None): a tag that makes the name unique to the writer; defaults to the
            current process id. Distributed writers pass the same token on every rank.

    Returns:
        Path: ``<parent>/.tmp-<name>-<token>``.
    """
    final = Path(final_path)
    token = os.getpid() if token is None else token
    return final.parent / f"{TMP_PREFIX}{final.name}-{token}"


def prepare_temp_dir(final_path: str | Path, token: str | int | None = None) -> Path:
    """Create an empty temporary directory for ``final_path`` (removing a stale one)."""
    tmp = temp_dir_for(final_path, token)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    return tmp


def remove_dir(path: str | Path) -> None:
    """Delete a directory so that no half-deleted copy keeps its name.

    The directory is first renamed to a hidden ``.old-`` sibling, then removed.
    """
    path = Path(path)
    if not path.exists():
        return
    doomed = path.parent / f"{OLD_PREFIX}{path.name}-{os.getpid()}"
    if doomed.exists():
        shutil.rmtree(doomed)
    os.rename(path, doomed)
    _fsync_path(path.parent)
    shutil.rmtree(doomed, ignore_errors=True)


def commit_temp_dir(tmp_dir: str | Path, final_path: str | Path, *, overwrite: bool = False) -> Path:
    """Mark ``tmp_dir`` complete and rename it to ``final_path``.

    Args:
        tmp_dir (str | Path): the fully written temporary directory.
        final_path (str | Path): the destination; must be on the same filesystem.
        overwrite (bool): replace an existing ``final_path``. Default False.

    Returns:
        Path: ``final_path``.

    Raises:
        FileExistsError: if ``final_path`` exists and ``overwrite`` is False.
    """
    tmp, final = Path(tmp_dir), Path(final_path)
    write_complete_marker(tmp)
    if final.exists():
        if not overwrite:
            raise FileExistsError(
                f"final_path={str(final)!r} already exists; pass overwrite=True to replace it"
            )
        remove_dir(final)
    os.rename(tmp, final)
    _fsync_path(final.parent)
    logger.info("Checkpoint written to %s", final)
    return final


@contextlib.contextmanager
def atomic_directory(final_path: str | Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Write a directory that appears at ``final_path`` whole or not at all.

    Example:
        >>> with atomic_directory("out/step_100") as tmp:
        ...     save_file(weights, tmp / "model.safetensors")

    Args:
        final_path (str | Path): where the finished directory should appear.
        overwrite (bool): replace an existing directory at ``final_path``. Default False.

    Yields:
        Path: the temporary directory to write into.

    Raises:
        FileExistsError: if ``final_path`` exists and ``overwrite`` is False (checked before
            anything is written).
    """
    final = Path(final_path)
    if final.exists() and not overwrite:
        raise FileExistsError(
            f"final_path={str(final)!r} already exists; pass overwrite=True to replace it"
        )
    tmp = prepare_temp_dir(final)
    try:
        yield tmp
        commit_temp_dir(tmp, final, overwrite=overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[IO[bytes]]:
    """Write a file that appears at ``path`` whole or not at all.

    The file is written as a hidden sibling ``.<name>.<pid>.<token>.tmp``; when the ``with`` block
    ends it is flushed, fsynced and renamed over ``path`` (then the directory is fsynced). On an
    error it is deleted and ``path`` is left as it was.

    Example:
        >>> with atomic_file("out/model.safetensors") as f:
        ...     f.write(data)

    Args:
        path (str | Path): the destination; its directory must exist.

    Yields:
        IO[bytes]: the temporary file, open for binary writing.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_path(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save_with(
    checkpointer: Any,
    final_path: Path,
    state_dict: dict[str, Any],
    *,
    write_extra: Callable[[Path], None] | None = None,
    overwrite: bool = True,
    **write_kwargs: Any,
) -> Path:
    """The body of the checkpointers' deprecated ``save_checkpoint``: ``write_checkpoint`` inside
    :func:`atomic_directory`, then ``write_extra``. Recipes use :class:`CheckpointManager` instead."""
    warnings.warn(
        f"{type(checkpointer).__name__}.save_checkpoint is deprecated; save through CheckpointManager.save "
        "with checkpointer.write_checkpoint",
        DeprecationWarning,
        stacklevel=3,
    )
    with atomic_directory(final_path, overwrite=overwrite) as tmp:
        checkpointer.write_checkpoint(tmp, state_dict, **{k: v for k, v in write_kwargs.items() if v})
        if write_extra is not None:
            write_extra(tmp)
    return final_path
