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


@pytest.fixture
def fake_api(monkeypatch):
    """Replace HfApi so that the repository lookup answers without a network."""
    hub = pytest.importorskip("huggingface_hub")
    api = mock.Mock()
    api.repo_info.return_value = mock.Mock(sha="0123abcd")
    monkeypatch.setattr(hub, "HfApi", mock.Mock(return_value=api))
    return api


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


@pytest.mark.parametrize("env", ["unreachable", "hanging", "offline"])
def test_unreachable_hub_fails_fast_with_clear_message(env, tmp_path, tune_subprocess):
    pytest.importorskip("huggingface_hub")
    hub_env = {"HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_DISABLE_TELEMETRY": "1"}
    silent = socket.socket()  # accepts connections (kernel backlog) and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    if env == "unreachable":
        hub_env["HF_ENDPOINT"] = f"http://127.0.0.1:{_closed_port()}"
    elif env == "hanging":
        hub_env["HF_ENDPOINT"] = f"http://127.0.0.1:{silent.getsockname()[1]}"
        hub_env["HF_HUB_ETAG_TIMEOUT"] = "1"
    else:
        hub_env["HF_HUB_OFFLINE"] = "1"
    start = time.monotonic()
    with silent:
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
def test_hub_errors_become_one_line(error_name, message, tune, monkeypatch, fake_api):
    hub = pytest.importorskip("huggingface_hub")
    errors = pytest.importorskip("huggingface_hub.errors")
    if error_name == "ValueError":
        error = ValueError("403 gated\nsecond line")
    else:
        error = getattr(errors, error_name)("403 gated", response=mock.Mock(headers={}))
    monkeypatch.setattr(hub, "snapshot_download", mock.Mock(side_effect=error))
    assert tune(["download", "org/model"]) == (1, "", f"tune: error: {message}\n")


def test_download_call_and_timeouts(tune, monkeypatch, tmp_path, fake_api):
    hub = pytest.importorskip("huggingface_hub")
    monkeypatch.chdir(tmp_path)
    fake = mock.Mock(return_value=str(tmp_path / "Model-1B"))
    monkeypatch.setattr(hub, "snapshot_download", fake)
    argv = ["download", "Org/Model-1B", "--hf-token", "tok", "--ignore-patterns", "*.pth"]
    code, out, _ = tune(argv)
    assert (code, out) == (0, f"Downloaded Org/Model-1B to {tmp_path / 'Model-1B'}\n")
    fake_api.repo_info.assert_called_once_with("Org/Model-1B", token="tok", timeout=10.0)
    fake.assert_called_once_with(
        "Org/Model-1B", revision="0123abcd", local_dir=Path("Model-1B"), token="tok",
        ignore_patterns=["*.pth"], etag_timeout=10.0,
    )
    assert os.environ["HF_HUB_ETAG_TIMEOUT"] == os.environ["HF_HUB_DOWNLOAD_TIMEOUT"] == "10"


def test_offline_mode_skips_the_lookup(tune, monkeypatch, tmp_path, fake_api):
    hub = pytest.importorskip("huggingface_hub")
    constants = pytest.importorskip("huggingface_hub.constants")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    fake = mock.Mock(return_value=str(tmp_path / "m"))
    monkeypatch.setattr(hub, "snapshot_download", fake)
    assert tune(["download", "org/m", "--output-dir", str(tmp_path / "m")])[0] == 0
    fake_api.repo_info.assert_not_called()
    assert fake.call_args.kwargs["revision"] is None
    assert fake.call_args.kwargs["local_dir"] == tmp_path / "m"


def test_bad_timeout_setting(tune, monkeypatch):
    monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", "soon")
    assert tune(["download", "org/m"]) == (
        1, "", "tune: error: HF_HUB_ETAG_TIMEOUT='soon' must be a number of seconds\n"
    )
