"""wheelmaker: reproducible bytes, exact contents, installable by pip, readable metadata."""

import hashlib
import importlib.metadata
import importlib.util
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

WHEELMAKER = Path(__file__).resolve().parent / "wheelmaker.py"


def _load_wheelmaker():
    spec = importlib.util.spec_from_file_location("wheelmaker_under_test", WHEELMAKER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


wm = _load_wheelmaker()

DIST_INFO = "demo_pkg-1.0.dist-info"
FILES = [
    "demo/__init__.py",
    "demo/data/config.yaml",
    f"{DIST_INFO}/METADATA",
    f"{DIST_INFO}/WHEEL",
    f"{DIST_INFO}/entry_points.txt",
    f"{DIST_INFO}/RECORD",
]


@pytest.fixture
def sources(tmp_path):
    src = tmp_path / "src"
    (src / "demo").mkdir(parents=True)
    (src / "demo" / "__init__.py").write_text(
        "import sys\n\ndef main():\n    print('demo says', *sys.argv[1:])\n"
    )
    (src / "demo" / "config.yaml").write_text("lr: 0.1\n")
    (src / "README.md").write_text("# Demo\n\nA demo package.\n")
    return src


def _args(src: Path, out: Path) -> list[str]:
    return [
        "--distribution=demo-pkg",
        "--version=1.0",
        f"--out={out}",
        "--requires=numpy>=1.20",
        "--extra_requires=hf:huggingface_hub>=0.20",
        '--extra_requires=eval:lm_eval; python_version >= "3.9"',
        "--entry_points=console_scripts:demo = demo:main",
        # listed out of order on purpose: the wheel sorts its entries
        f"--input_file=demo/data/config.yaml={src / 'demo' / 'config.yaml'}",
        f"--input_file=demo/__init__.py={src / 'demo' / '__init__.py'}",
        f"--description_file={src / 'README.md'}",
    ]


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(WHEELMAKER), *args],
        cwd=cwd, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def wheel(sources, tmp_path):
    out = tmp_path / "a" / "demo_pkg-1.0-py3-none-any.whl"
    proc = _run(_args(sources, out), tmp_path)
    assert proc.returncode == 0, proc.stderr
    return out


def test_two_builds_are_byte_identical(wheel, sources, tmp_path):
    os.utime(sources / "demo" / "__init__.py", (0, 0))  # mtimes must not leak in
    out = tmp_path / "b" / wheel.name
    assert _run(_args(sources, out), tmp_path).returncode == 0
    assert _sha256(out) == _sha256(wheel)


def test_exact_file_list_modes_and_dates(wheel):
    with zipfile.ZipFile(wheel) as zf:
        infos = zf.infolist()
        assert [i.filename for i in infos] == FILES
        for info in infos:
            assert info.date_time == (1980, 1, 1, 0, 0, 0)
            assert info.external_attr >> 16 == 0o100644
            assert info.compress_type == zipfile.ZIP_DEFLATED
        assert zf.read("demo/data/config.yaml") == b"lr: 0.1\n"
        assert zf.read(f"{DIST_INFO}/WHEEL").decode() == (
            "Wheel-Version: 1.0\nGenerator: torchtune-wheelmaker 1.0\nRoot-Is-Purelib: true\n"
            "Tag: py3-none-any\n"
        )


def test_pip_installs_it_and_the_entry_point_runs(wheel, tmp_path):
    pytest.importorskip("pip")
    target = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--no-compile",
         "--disable-pip-version-check", "--target", str(target), str(wheel)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr  # pip checks RECORD hashes and sizes
    env = {**os.environ, "PYTHONPATH": str(target)}
    script = target / "bin" / "demo"
    proc = subprocess.run([str(script), "hi"], capture_output=True, text=True, env=env)
    assert (proc.returncode, proc.stdout) == (0, "demo says hi\n")

    dist = importlib.metadata.Distribution.at(target / DIST_INFO)
    assert dist.metadata["Name"] == "demo-pkg" and dist.version == "1.0"
    assert dist.metadata.get_all("Provides-Extra") == ["eval", "hf"]
    assert dist.requires == [
        "numpy>=1.20",
        'lm_eval; (python_version >= "3.9") and extra == "eval"',
        'huggingface_hub>=0.20; extra == "hf"',
    ]
    assert dist.metadata["Description-Content-Type"] == "text/markdown"
    assert dist.metadata.get_payload() == "# Demo\n\nA demo package.\n"
    [ep] = dist.entry_points
    assert (ep.group, ep.name, ep.value) == ("console_scripts", "demo", "demo:main")


def test_record_matches_contents(wheel):
    import base64
    import csv
    import io

    with zipfile.ZipFile(wheel) as zf:
        rows = list(csv.reader(io.StringIO(zf.read(f"{DIST_INFO}/RECORD").decode())))
        assert [r[0] for r in rows] == FILES
        assert rows[-1] == [f"{DIST_INFO}/RECORD", "", ""]
        for path, digest, size in rows[:-1]:
            data = zf.read(path)
            expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            assert (digest, int(size)) == ("sha256=" + expected.decode(), len(data))


def test_argfile_and_flagfile_give_the_same_wheel(wheel, sources, tmp_path):
    lines = "\n".join(_args(sources, tmp_path / "c.whl")) + "\n"
    (tmp_path / "args.txt").write_text(lines)
    assert _run(["@args.txt"], tmp_path).returncode == 0
    # Bazel's "multiline" param file: a flag on one line, its value on the next.
    split = "\n".join(part for a in _args(sources, tmp_path / "d.whl") for part in a.split("=", 1))
    (tmp_path / "flags.txt").write_text(split + "\n")
    proc = _run(["--flagfile=flags.txt"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert _sha256(tmp_path / "c.whl") == _sha256(tmp_path / "d.whl") == _sha256(wheel)


@pytest.mark.parametrize("bad, message", [
    ("--input_file=../x.py={src}", "wheel path '../x.py' must be a normalized relative path"),
    ("--input_file=/abs.py={src}", "wheel path '/abs.py' must be a normalized relative path"),
    ("--input_file=" + DIST_INFO + "/x={src}", "lies in demo_pkg-1.0.dist-info, which wheelmaker"),
    ("--input_file=demo/__init__.py={other}", "two inputs for demo/__init__.py"),
    ("--input_file=demo/missing.py={missing}", "does not exist or is not a file"),
    ("--input_file=novalue", "--input_file 'novalue' must look like DEST=SRC"),
    ("--extra_requires=noextra", "--extra_requires 'noextra' must look like EXTRA:REQUIREMENT"),
    ("--entry_points=console_scripts:demo", "entry point 'demo' must look like 'name = package"),
    ("--version=one", "version 'one' is not a PEP 440 version"),
    ("--distribution=-bad", "distribution '-bad' is not a valid project name"),
    ("--extra_requires=b@d:x", "extra 'b@d' is not a valid extra name"),
])
def test_bad_input_exits_with_one_line(bad, message, sources, tmp_path):
    bad = bad.format(
        src=sources / "demo" / "__init__.py",
        other=sources / "demo" / "config.yaml",
        missing=sources / "nope.py",
    )
    proc = _run([*_args(sources, tmp_path / "x.whl"), bad], tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.startswith("wheelmaker: error: ") and message in proc.stderr
    assert len(proc.stderr.splitlines()) == 1
    assert not (tmp_path / "x.whl").exists()


def test_missing_required_flag(tmp_path):
    proc = _run(["--version=1.0", "--out=x.whl"], tmp_path)
    assert proc.returncode != 0 and "--distribution" in proc.stderr


def test_multi_tags_in_wheel_file(sources):
    spec = wm.WheelSpec("demo", "1.0", {}, python_tag="py2.py3", platform="any")
    assert wm.wheel_file(spec).splitlines()[3:] == ["Tag: py2-none-any", "Tag: py3-none-any"]
