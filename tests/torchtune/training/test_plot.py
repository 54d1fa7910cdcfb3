import sys

import pytest

from torchtune.training import JsonlLogger, plot_loss, read_metric


def _log(tmp_path):
    with JsonlLogger(tmp_path) as logger:
        for step in range(1, 6):
            logger.log_dict({"loss": 2.0 / step, "lr": 0.1}, step)
        logger.log("tokens_per_second", 10.0, 6)
    return tmp_path / "metrics.jsonl"


def test_read_metric_skips_lines_without_key(tmp_path):
    steps, values = read_metric(_log(tmp_path))
    assert steps == [1, 2, 3, 4, 5] and values == [2.0, 1.0, 2.0 / 3, 0.5, 0.4]


def test_plot_writes_png(tmp_path):
    out = plot_loss(_log(tmp_path), tmp_path / "loss.png")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(data[16:20], "big") == 600 and int.from_bytes(data[20:24], "big") == 400


def test_missing_metric(tmp_path):
    path = _log(tmp_path)
    with pytest.raises(ValueError, match=rf"{path} has no 'accuracy' values to plot"):
        plot_loss(path, tmp_path / "x.png", key="accuracy")


def test_bad_line(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"step": 1, "loss": 1.0}\nnot json\n')
    with pytest.raises(ValueError, match=rf"{path}:2: not a JSON object"):
        read_metric(path)


def test_missing_matplotlib(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'torchtune\[recipes\]'"):
        plot_loss(_log(tmp_path), tmp_path / "x.png")
