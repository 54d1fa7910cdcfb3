"""`tune download`: missing extra, unreachable Hub, Hub errors, and the call it makes."""

import os
import socket
import sys
import time
from pathlib import Path
from unittest import mock

import pytest


@pytest.fixture(autouse=True)
def _restore_hub_env(monkeypatch):
    # `tune download` sets default Hub timeouts in os.environ; undo that after each test.
    monkeypatch.delenv("HF_HUB_ETAG_TIMEOUT", raising=False)
    monkeypatch.delenv("HF_HUB_DOWNLOAD_TIMEOUT", raising=False)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # free once the socket closes: nothing listens there


def test_missing_hf_extra(tune, monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import fails as if absent
    code, out, err = tune(["download", "org/model"])
    assert (code, out) == (1, "")
    assert err == (
        "tune: error: tune download needs the Hugging Face Hub client: 'huggingface_hub' is not "
        "installed; it comes with the 'hf' extra: pip install 'torchtune[hf]'\n"
    )


@pytest.mark.parametrize("env", ["unreachable", "offline"])
def test_unreachable_hub_fails_fast_with_clear_message(env, tmp_path, tune_subprocess):
    pytest.importorskip("huggingface_hub")
    hub_env = {"HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_DISABLE_TELEMETRY": "1"}
    if env == "unreachable":
        hub_env["HF_ENDPOINT"] = f"http://127.0.0.1:{_closed_port()}"
    else:
        hub_env["HF_HUB_OFFLINE"] = "1"
    start = time.monotonic()
    proc = tune_subprocess(["download", "org/model"], cwd=tmp_path, env=hub_env, timeout=60)
    assert time.monotonic() - start < 30
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(
        "tune: error: could not reach the Hugging Face Hub to download org/model (offline? "
        "HF_HUB_OFFLINE set?): "
    )
    assert not (tmp_path / "model").exists() or not any((tmp_path / "model").iterdir())


@pytest.mark.parametrize("error_name, message", [
    ("RepositoryNotFoundError",
     "org/model was not found on the Hub, or it is private: pass --hf-token"),
    ("GatedRepoError",
     "org/model is gated: accept its license on huggingface.co and pass --hf-token (403 gated)"),
    ("RevisionNotFoundError", "org/model: revision not found (403 gated)"),
    ("ValueError", "downloading org/model failed: ValueError: 403 gated"),
])
def test_hub_errors_become_one_line(error_name, message, tune, monkeypatch):
    hub = pytest.importorskip("huggingface_hub")
    errors = pytest.importorskip("huggingface_hub.errors")
    if error_name == "ValueError":
        error = ValueError("403 gated\nsecond line")
    else:
        error = getattr(errors, error_name)("403 gated", response=mock.Mock(headers={}))
    monkeypatch.setattr(hub, "snapshot_download", mock.Mock(side_effect=error))
    assert tune(["download", "org/model"]) == (1, "", f"tune: error: {message}\n")


def test_download_call_and_timeouts(tune, monkeypatch, tmp_path):
    hub = pytest.importorskip("huggingface_hub")
    monkeypatch.chdir(tmp_path)
    fake = mock.Mock(return_value=str(tmp_path / "Model-1B"))
    monkeypatch.setattr(hub, "snapshot_download", fake)
    argv = ["download", "Org/Model-1B", "--hf-token", "tok", "--ignore-patterns", "*.pth"]
    code, out, _ = tune(argv)
    assert (code, out) == (0, f"Downloaded Org/Model-1B to {tmp_path / 'Model-1B'}\n")
    fake.assert_called_once_with(
        "Org/Model-1B", local_dir=Path("Model-1B"), token="tok", ignore_patterns=["*.pth"],
        etag_timeout=10.0,
    )
    assert os.environ["HF_HUB_ETAG_TIMEOUT"] == os.environ["HF_HUB_DOWNLOAD_TIMEOUT"] == "10"
