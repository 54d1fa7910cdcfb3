"""The main job as packaged: `pip install 'torchtune[recipes,gguf]'`, then LoRA on SmolLM2 via `tune`.

Drives ``tune run lora_finetune_single_device --config smollm2/135M_lora_single_device`` on the
real SmolLM2-135M-Instruct GGUF for a few steps and checks its outputs with the reference
libraries: the Hugging Face directory in transformers, the GGUF file through transformers' GGUF
loader, the peft adapter in peft on the source GGUF. Needs TORCHTUNE_SMOLLM2_GGUF, the path of
``SmolLM2-135M-Instruct.Q4_1.gguf`` (Bazel passes the hash-pinned @smollm2 file).
"""

import json
import os
from pathlib import Path

import pytest
import torch

from recipe_tests._installed import InstalledTorchtune

GGUF_PATH = os.environ.get("TORCHTUNE_SMOLLM2_GGUF")
pytestmark = pytest.mark.skipif(not GGUF_PATH, reason="set TORCHTUNE_SMOLLM2_GGUF to SmolLM2-135M-Instruct.Q4_1.gguf")
CONFIG = ("lora_finetune_single_device", "--config", "smollm2/135M_lora_single_device")
# A few short steps: 8 optimizer steps of 2 samples, short sample answers.
FAST = ("max_steps_per_epoch=8", "batch_size=2", "log_every_n_steps=1", "sample_max_new_tokens=8")
QUESTION = [{"role": "user", "content": "Write the text in capital letters: mango river. And what is the capital of France?"}]


@pytest.fixture(scope="module")
def tt(tmp_path_factory) -> InstalledTorchtune:
    return InstalledTorchtune(tmp_path_factory.mktemp("venv") / "venv", extras=("recipes", "gguf"))


@pytest.fixture(scope="module")
def gguf() -> str:
    return str(Path(GGUF_PATH).absolute())


def short_run(tt, gguf, tmp_path_factory, dtype: str) -> tuple[str, Path]:
    work = tmp_path_factory.mktemp(f"work_{dtype}")
    out = work / "out"
    proc = tt.run("tune", "run", *CONFIG, f"checkpointer.checkpoint_path={gguf}", f"output_dir={out}", *FAST,
                  f"dtype={dtype}", cwd=work)
    return proc.stdout, out / "step_8"


@pytest.fixture(scope="module")
def run(tt, gguf, tmp_path_factory):
    """One short fp32 run of the main job (exact output checks); returns (stdout, final step directory)."""
    return short_run(tt, gguf, tmp_path_factory, "fp32")


def final_losses(step_dir: Path) -> list[float]:
    rows = [json.loads(line) for line in (step_dir.parent / "logs" / "metrics.jsonl").read_text().splitlines()]
    return [row["loss"] for row in rows if "loss" in row]


def test_bf16_learns_as_fp32_and_answers_alike(run, tt, gguf, tmp_path_factory):
    """The main job in bf16 (the default on CPUs with bf16 units): losses within a few percent of fp32's."""
    stdout16, final16 = short_run(tt, gguf, tmp_path_factory, "bf16")
    stdout32, final32 = run
    a, b = final_losses(final32), final_losses(final16)
    assert len(a) == len(b) == 8
    assert b[0] == pytest.approx(a[0], rel=0.01), (a, b)  # the same weights: only rounding differs
    # then the runs part (batches of 2 at lr 2e-3 are noisy); on average they learn alike
    # (the full main job's final losses in both dtypes are in docs/benchmarks.md)
    assert sum(b) / 8 == pytest.approx(sum(a) / 8, rel=0.08), (a, b)
    for stdout in (stdout16, stdout32):
        block = stdout[stdout.index("Prompt: What is the capital of France?"):]
        assert "Paris" in block.splitlines()[1], block  # the untrained model's greedy answer
    assert (final16 / "model.safetensors").exists() and (final16 / "adapter" / "adapter_model.safetensors").exists()


def logits(model, tokens: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(tokens).logits


def test_prints_answers_before_and_after(run):
    stdout, _ = run
    block = stdout[stdout.index("Answers before / after fine-tuning"):]
    assert block.count("Prompt: ") == 3 and block.count("before: ") == 3 and block.count("after:  ") == 3
    assert "What is the capital of France?" in block


def test_hf_directory_loads_in_transformers_and_matches_the_gguf(run):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _, final = run
    tokenizer = AutoTokenizer.from_pretrained(final)
    tokens = torch.tensor([tokenizer.apply_chat_template(QUESTION, add_generation_prompt=True, return_dict=False)])
    # The same tokens as the source GGUF's tokenizer read by transformers. (Not for digits after
    # whitespace: transformers' GGUF reader drops SmolLM's digit pre-split, which llama.cpp and
    # the original tokenizer.json apply, e.g. "a\n\n42" -> "\n\n" one token there, two here.)
    reference = AutoTokenizer.from_pretrained(Path(GGUF_PATH).parent, gguf_file=Path(GGUF_PATH).name)
    expected = reference.apply_chat_template(QUESTION, add_generation_prompt=True, return_dict=False)
    assert tokens[0].tolist() == list(expected)
    hf = logits(AutoModelForCausalLM.from_pretrained(final, dtype=torch.float32), tokens)
    ours_gguf = AutoModelForCausalLM.from_pretrained(final, gguf_file="model-F16.gguf", dtype=torch.float32)
    # F16 storage of weights: differences of a few hundredths on logits of magnitude ~30.
    torch.testing.assert_close(logits(ours_gguf, tokens), hf, atol=0.15, rtol=0.0)
    assert hf[0, -1].argmax() == logits(ours_gguf, tokens)[0, -1].argmax()


def test_peft_adapter_on_the_source_gguf_equals_the_merged_model(run, gguf):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _, final = run
    base = AutoModelForCausalLM.from_pretrained(Path(gguf).parent, gguf_file=Path(gguf).name, dtype=torch.float32)
    adapted = PeftModel.from_pretrained(base, final / "adapter")
    tokens = torch.tensor([AutoTokenizer.from_pretrained(final).encode("Sort 42, 7 and 19.")])
    merged = logits(AutoModelForCausalLM.from_pretrained(final, dtype=torch.float32), tokens)
    torch.testing.assert_close(logits(adapted, tokens), merged, atol=5e-3, rtol=1e-4)
    assert any(v.abs().sum() > 0 for k, v in adapted.state_dict().items() if "lora_B" in k)  # it trained


def test_missing_gguf_is_named_with_its_key(tt, tmp_path):
    proc = tt.run("tune", "run", *CONFIG, f"checkpointer.checkpoint_path={tmp_path / 'none.gguf'}", cwd=tmp_path,
                  check=False)
    assert proc.returncode != 0
    assert "config key 'checkpointer._component_'" in proc.stderr
    assert f"checkpoint_path='{tmp_path / 'none.gguf'}' does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "checkpointer.checkpoint_path=<file.gguf>" in proc.stderr


def test_unknown_output_format_is_refused(tt, gguf, tmp_path):
    proc = tt.run("tune", "run", *CONFIG, f"checkpointer.checkpoint_path={gguf}", "output_formats=[hf,onnx]",
                  cwd=tmp_path, check=False)
    assert proc.returncode != 0
    assert "output_formats holds 'onnx'; each entry must be one of ['hf', 'gguf']" in proc.stderr
