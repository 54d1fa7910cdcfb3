"""tools/benchmarks/gpu_check.sh: its CPU rehearsal (--dry-run) runs every stage and prints the
table; without CUDA the real check stops at once with one line."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().with_name("gpu_check.sh")


def _run(*args: str, out: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS="1")
    env.pop("PYTHONPATH", None)
    return subprocess.run(["bash", str(SCRIPT), *args, "--out", str(out), "--wheels", str(out / "no_wheels")],
                          capture_output=True, text=True, env=env, timeout=240)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_without_cuda_it_stops_at_once_with_one_line(tmp_path):
    start = time.perf_counter()
    proc = _run(out=tmp_path)
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == [
        f"gpu_check: no CUDA GPU visible to {sys.executable} here; nothing to check (--dry-run rehearses it on CPU)"]
    assert time.perf_counter() - start < 30
    assert not (tmp_path / "bench.json").exists()  # no work was done


def test_unknown_argument_is_refused(tmp_path):
    proc = _run("--fast", out=tmp_path)
    assert proc.returncode == 2 and "unknown argument --fast" in proc.stderr


def test_dry_run_runs_the_gpu_tests_and_the_benchmark_and_prints_the_table(tmp_path):
    proc = _run("--dry-run", out=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    log = (tmp_path / "pytest.log").read_text()
    assert "test_gpu_path" in proc.stdout and "test_cuda" in proc.stdout  # found through the BUILD tags
    assert "skipped" in log and "error" not in log.lower()
    assert "torchtune 0.6.1 rows are left out" in proc.stdout  # no wheels given
    assert "| sdpa (per document) |" in proc.stdout and "| flex eager |" in proc.stdout
    results = json.loads((tmp_path / "bench.json").read_text())["results"]
    assert sorted((r["size"], r["method"], r["device"]) for r in results) == [("tiny", "full", "cpu"), ("tiny", "lora", "cpu")]
    table = [line for line in proc.stdout.splitlines() if line.startswith("| this torchtune | tiny")]
    assert len(table) == 2
    for line, method in zip(table, ("lora", "full")):
        cells = [c.strip() for c in line.strip("|").split("|")]
        row = next(r for r in results if r["method"] == cells[2])
        assert float(cells[5]) == pytest.approx(row["tokens_per_second"], rel=0.01, abs=1)
        assert cells[7].endswith("RSS")
