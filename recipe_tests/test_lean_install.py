"""The lean install: `pip install torchtune` (no extras) is the component library alone.

The library imports, `tune` answers, and every optional integration that is missing says which
extra brings it instead of failing deep inside.
"""

from pathlib import Path

import pytest

from recipe_tests._installed import InstalledTorchtune


@pytest.fixture(scope="module")
def tt(tmp_path_factory) -> InstalledTorchtune:
    return InstalledTorchtune(tmp_path_factory.mktemp("venv") / "venv", extras=())


def test_library_imports_without_extras(tt, tmp_path):
    code = (
        "import torchtune, torchtune.modules, torchtune.models, torchtune.data, torchtune.datasets, "
        "torchtune.config, torchtune.training, torchtune.training.checkpointing, torchtune.generation\n"
        "from torchtune.models.llama3_2 import lora_llama3_2_1b\n"
        "import importlib.util as u\n"
        "print([m for m in ('matplotlib', 'gguf', 'transformers', 'peft', 'wandb') if u.find_spec(m)])\n"
    )
    assert tt.run("python", "-c", code, cwd=tmp_path).stdout.strip() == "[]"


def test_cli_answers_and_names_the_recipes_extra(tt, tmp_path):
    assert "lora_finetune_single_device" in tt.run("tune", "ls", cwd=tmp_path).stdout
    proc = tt.run("tune", "run", "lora_finetune_single_device", "--config", "tiny/lora_single_device",
                  cwd=tmp_path, check=False)
    assert proc.returncode == 1
    assert "pip install 'torchtune[recipes]'" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "extra,code",
    [
        ("gguf", "from torchtune.training.checkpointing import GGUFCheckpointer; GGUFCheckpointer('{tmp}/x.gguf', '{tmp}')"),
        ("tensorboard", "from torchtune.training import TensorBoardLogger; TensorBoardLogger('{tmp}')"),
        ("wandb", "from torchtune.training import WandBLogger; WandBLogger(project='p')"),
        ("mlflow", "from torchtune.training import MLFlowLogger; MLFlowLogger()"),
        ("datasets", "from torchtune.datasets import instruct_dataset; instruct_dataset(None, source='tatsu-lab/alpaca')"),
        ("recipes", "from torchtune.training import plot_loss; plot_loss('{tmp}/m.jsonl', '{tmp}/p.png')"),
    ],
)
def test_missing_extra_names_itself(tt, tmp_path, extra, code):
    (tmp_path / "m.jsonl").write_text('{"step": 1, "loss": 1.0}\n')
    (tmp_path / "x.gguf").write_bytes(b"GGUF" + bytes(60))
    proc = tt.run("python", "-c", code.format(tmp=tmp_path), cwd=tmp_path, check=False)
    assert proc.returncode != 0
    assert f"pip install 'torchtune[{extra}]'" in proc.stderr, proc.stderr[-2000:]


def test_download_offline_fails_at_once_with_a_clear_message(tt, tmp_path):
    # huggingface_hub arrives with `tokenizers`, so the 'hf' extra is present even in the lean
    # install; without a network the command must still end quickly with one clear line.
    import time

    start = time.monotonic()
    proc = tt.run("tune", "download", "some-org/some-model", cwd=tmp_path, check=False,
                  env={"HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 1 and time.monotonic() - start < 60
    assert "Traceback" not in proc.stderr
    assert "some-org/some-model" in proc.stderr, proc.stderr
