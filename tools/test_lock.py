"""The locks match their inputs: editing a .in file without regenerating its lock fails here."""

from pathlib import Path

import pytest

from tools import lock

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("src,lock_file,_", lock.LOCKS)
def test_lock_records_its_input(src, lock_file, _):
    recorded = lock.recorded_digest(ROOT / lock_file)
    assert recorded == lock.input_digest(ROOT / src), (
        f"{lock_file} is stale against {src}: run ./bazelw run //tools:lock"
    )


@pytest.mark.parametrize("src,lock_file,_", lock.LOCKS)
def test_every_input_requirement_is_pinned(src, lock_file, _):
    pins = lock.pinned(ROOT / lock_file)
    for line in (ROOT / src).read_text().splitlines():
        line = line.split("#")[0].strip()
        if not line:
            continue
        name = line.split("==")[0].split(">")[0].split("<")[0].split("[")[0].strip()
        assert lock.normalise(name) in pins, f"{name} from {src} is not pinned in {lock_file}"
        if "==" in line:
            want = line.split("==")[1].strip()
            got = pins[lock.normalise(name)].split("==")[1]
            assert got == want or got.startswith(want + "+"), f"{name}: {src} asks {want}, lock has {got}"


def test_hashes_on_every_pin():
    for _, lock_file, _ in lock.LOCKS:
        text = (ROOT / lock_file).read_text()
        assert text.count("==") == text.count("--hash=sha256:"), f"{lock_file}: a pin lacks its hash"


def test_stale_lock_is_detected(tmp_path):
    src = tmp_path / "requirements.in"
    src.write_text("numpy\n")
    out = tmp_path / "requirements_lock.txt"
    out.write_text(lock.HEADER.format(src=src.name, digest=lock.input_digest(src)))
    assert lock.recorded_digest(out) == lock.input_digest(src)
    src.write_text("numpy\nscipy\n")
    assert lock.recorded_digest(out) != lock.input_digest(src)
