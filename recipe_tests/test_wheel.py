"""The wheel as published: exact contents, metadata, extras, reproducible bytes."""

import base64
import hashlib
import re
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from recipe_tests._installed import runfile, wheel_path

MANIFEST = "recipe_tests/wheel_manifest.txt"
EXTRAS = {"recipes", "gguf", "hf", "datasets", "wandb", "tensorboard", "mlflow", "eval", "quant", "dev"}


@pytest.fixture(scope="module")
def wheel() -> zipfile.ZipFile:
    with zipfile.ZipFile(wheel_path()) as zf:
        yield zf


def _dist_info(wheel: zipfile.ZipFile) -> str:
    (info,) = {n.split("/")[0] for n in wheel.namelist() if n.split("/")[0].endswith(".dist-info")}
    return info


def test_exact_file_list(wheel):
    expected = runfile(MANIFEST).read_text().split()
    got = [n for n in wheel.namelist() if not n.split("/")[0].endswith(".dist-info")]
    missing, extra = sorted(set(expected) - set(got)), sorted(set(got) - set(expected))
    assert not missing and not extra, (
        f"wheel contents differ from {MANIFEST}: missing {missing}, unexpected {extra}. "
        "If the change is intended, run tools/update_wheel_manifest.sh and review its diff."
    )


def test_version_matches_the_library(wheel):
    init = wheel.read("torchtune/__init__.py").decode()
    version = re.search(r'__version__ = "([^"]+)"', init).group(1)
    assert wheel_path().name == f"torchtune-{version}-py3-none-any.whl"


def test_metadata_requires_and_extras(wheel):
    meta = Parser().parsestr(wheel.read(f"{_dist_info(wheel)}/METADATA").decode())
    assert meta["Name"] == "torchtune"
    assert set(meta.get_all("Provides-Extra")) == EXTRAS
    requires = meta.get_all("Requires-Dist")
    plain = {r.split(";")[0].strip() for r in requires if "extra ==" not in r}
    assert any(r.startswith("torch") for r in plain)
    assert not any(r.startswith(("matplotlib", "transformers", "peft")) for r in plain), plain
    assert any(r.startswith("matplotlib") and 'extra == "recipes"' in r for r in requires)
    assert any(r.startswith("gguf") and 'extra == "gguf"' in r for r in requires)
    assert any(r.startswith("torchao") and 'extra == "quant"' in r for r in requires)


def test_console_script(wheel):
    entry_points = wheel.read(f"{_dist_info(wheel)}/entry_points.txt").decode()
    assert "[console_scripts]" in entry_points
    assert re.search(r"^tune\s*=\s*torchtune\._cli\.tune:main$", entry_points, re.M)


def test_recipes_are_data_not_a_package(wheel):
    names = wheel.namelist()
    assert not any(n.startswith("recipes/") for n in names), "recipes must not be a top-level package"
    assert "torchtune/_recipes/lora_finetune_single_device.py" in names
    assert any(n.startswith("torchtune/_recipes/configs/tiny/") for n in names)
    guard = wheel.read("torchtune/_recipes/__init__.py").decode()
    assert "raise ImportError" in guard and "tune cp" in guard


def test_record_hashes(wheel):
    record = wheel.read(f"{_dist_info(wheel)}/RECORD").decode().splitlines()
    listed = {}
    for row in record:
        path, digest, size = row.rsplit(",", 2)
        listed[path] = (digest, size)
    for name in wheel.namelist():
        assert name in listed, f"{name} missing from RECORD"
        if name.endswith("/RECORD"):
            continue
        data = wheel.read(name)
        want = "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        assert listed[name] == (want, str(len(data))), name


def test_reproducible_entries(wheel):
    infos = wheel.infolist()
    names = [i.filename for i in infos]
    body = [n for n in names if not n.split("/")[0].endswith(".dist-info")]
    assert body == sorted(body), "entries must be sorted"
    for info in infos:
        assert info.date_time == (1980, 1, 1, 0, 0, 0), info.filename
        assert (info.external_attr >> 16) & 0o777 == 0o644, info.filename
