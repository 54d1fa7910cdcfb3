"""The knowledge-distillation recipes as packaged: `pip install 'torchtune[recipes]'` from the
wheel, then only `tune`.

The tiny shipped student and teacher make each run take seconds. The losses are checked against
transformers' logits of the shipped models with torch.nn.functional, the outputs with the
reference libraries (the merged model in transformers, the adapter in peft on the shipped base).
"""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from recipe_tests._installed import InstalledTorchtune, clean_env

SHORT = ("max_steps_per_epoch=8", "epochs=1", "log_every_n_steps=1", "save_every_n_steps=4", "dataset_val=null")


@pytest.fixture(scope="module")
def tt(tmp_path_factory) -> InstalledTorchtune:
    return InstalledTorchtune(tmp_path_factory.mktemp("venv") / "venv", extras=("recipes",))


@pytest.fixture(scope="module")
def tiny_dir(tt, tmp_path_factory) -> Path:
    """The installed tiny assets (student in it, teacher in its teacher/)."""
    cwd = tmp_path_factory.mktemp("cwd")
    root = tt.run("python", "-c", "import torchtune; print(torchtune.recipes_root())", cwd=cwd).stdout.strip()
    return Path(root) / "assets" / "tiny"


def tune_run(tt: InstalledTorchtune, *args: str, **kwargs):
    """`tune run ... dtype=fp32`: these tests compare with transformers, peft and other process
    counts at fp32 tolerances (the configs say dtype: auto; the resume tests keep it)."""
    return tt.run("tune", "run", *args, "dtype=fp32", **kwargs)


def metrics(output_dir: Path, key: str) -> list[float]:
    rows = [json.loads(line) for line in (output_dir / "logs" / "metrics.jsonl").read_text().splitlines()]
    return [row[key] for row in rows if key in row]


def final_dir(output_dir: Path) -> Path:
    steps = sorted(output_dir.glob("step_*"), key=lambda p: int(p.name.split("_")[1]))
    assert steps, f"no checkpoint in {output_dir}"
    return steps[-1]


def mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def test_untrained_student_losses_equal_transformers_and_kl_div(tt, tiny_dir, tmp_path):
    """With lr=0 the validation losses are those of the shipped student against the shipped
    teacher: recomputed here from transformers' full logits with cross_entropy and kl_div."""
    from transformers import AutoModelForCausalLM

    out = tmp_path / "frozen"
    tune_run(tt, "knowledge_distillation_single_device", "--config", "tiny/kd_single_device", f"output_dir={out}",
             "max_steps_per_epoch=1", "epochs=1", "run_val_every_n_steps=1", "optimizer.lr=0.0", cwd=tmp_path)
    # the validation samples as the recipe sees them (tokens, shifted labels), from the installed package
    dump = tmp_path / "val.json"
    tt.run("python", "-c", f"""
import json
from torchtune.datasets import alpaca_dataset
from torchtune.modules.tokenizers import HFModelTokenizer
d = {str(tiny_dir)!r}
tok = HFModelTokenizer(tokenizer_json_path=d + '/tokenizer.json', tokenizer_config_json_path=d + '/tokenizer_config.json',
                       max_seq_len=256)
ds = alpaca_dataset(tok, source='json', data_files=d + '/instructions_val.jsonl')
json.dump([{{'tokens': [int(t) for t in ds[i]['tokens']], 'labels': [int(t) for t in ds[i]['labels']]}}
           for i in range(len(ds))], open({str(dump)!r}, 'w'))
""", cwd=tmp_path)
    student = AutoModelForCausalLM.from_pretrained(tiny_dir, torch_dtype=torch.float32).eval()
    teacher = AutoModelForCausalLM.from_pretrained(tiny_dir / "teacher", torch_dtype=torch.float32).eval()
    assert teacher.config.vocab_size == student.config.vocab_size
    assert sum(p.numel() for p in teacher.parameters()) > sum(p.numel() for p in student.parameters())
    ce_sum = kd_sum = 0.0
    count = 0
    with torch.no_grad():
        for sample in json.loads(dump.read_text()):
            tokens, labels = torch.tensor([sample["tokens"]]), torch.tensor(sample["labels"])
            keep = labels != -100
            s, t = student(tokens).logits[0][keep], teacher(tokens).logits[0][keep]  # [n, v]
            ce_sum += float(F.cross_entropy(s, labels[keep], reduction="sum"))
            # forward KL(teacher || student): kl_div(input=log q_student, target=log p_teacher)
            kd_sum += float(F.kl_div(F.log_softmax(s, -1), F.log_softmax(t, -1), log_target=True, reduction="sum"))
            count += int(keep.sum())
    assert metrics(out, "val_ce_loss")[0] == pytest.approx(ce_sum / count, rel=1e-4)
    assert metrics(out, "val_kd_loss")[0] == pytest.approx(kd_sum / count, rel=1e-4)
    assert metrics(out, "val_loss")[0] == pytest.approx(0.5 * (ce_sum + kd_sum) / count, rel=1e-4)


def test_lora_kd_learns_from_the_teacher_and_saves_hf_and_peft(tt, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    listing = tt.run("tune", "ls", cwd=tmp_path).stdout
    assert "tiny/kd_single_device" in listing and "tiny/kd_distributed" in listing
    out = tmp_path / "kd"
    tune_run(tt, "knowledge_distillation_single_device", "--config", "tiny/kd_single_device", f"output_dir={out}",
             "epochs=1", "log_every_n_steps=1", cwd=tmp_path)
    kd, ce, val_kd = metrics(out, "kd_loss"), metrics(out, "ce_loss"), metrics(out, "val_kd_loss")
    assert len(kd) == len(ce) == 50
    assert mean(kd[-10:]) < 0.4 * mean(kd[:10]), kd
    assert mean(ce[-10:]) < 0.6 * mean(ce[:10]), ce
    assert val_kd[-1] < val_kd[0], val_kd
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    final = final_dir(out)
    merged = AutoModelForCausalLM.from_pretrained(final, torch_dtype=torch.float32).eval()
    base_dir = Path(json.loads((final / "adapter" / "adapter_config.json").read_text())["base_model_name_or_path"])
    base = AutoModelForCausalLM.from_pretrained(base_dir, torch_dtype=torch.float32).eval()
    tokens = torch.randint(0, merged.config.vocab_size, (2, 24), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        base_logits = base(tokens).logits
        peft_logits = PeftModel.from_pretrained(base, final / "adapter").eval()(tokens).logits
        merged_logits = merged(tokens).logits
    torch.testing.assert_close(peft_logits, merged_logits, atol=1e-4, rtol=1e-4)
    assert (merged_logits - base_logits).abs().max() > 1e-3  # the adapters learnt something


def test_full_student_reverse_kl_and_js_run(tt, tiny_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    full = tmp_path / "full"
    tune_run(tt, "knowledge_distillation_single_device", "--config", "tiny/kd_single_device", f"output_dir={full}",
             *SHORT, "~model", "loss.divergence=reverse", cwd=tmp_path)
    assert len(metrics(full, "kd_loss")) == 8
    final = final_dir(full)
    assert not (final / "adapter").exists()
    trained = AutoModelForCausalLM.from_pretrained(final, torch_dtype=torch.float32).eval()
    source = AutoModelForCausalLM.from_pretrained(tiny_dir, torch_dtype=torch.float32).eval()
    tokens = torch.randint(0, trained.config.vocab_size, (2, 24), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (trained(tokens).logits - source(tokens).logits).abs().max() > 1e-3  # every weight trained
    js = tmp_path / "js"
    tune_run(tt, "knowledge_distillation_single_device", "--config", "tiny/kd_single_device", f"output_dir={js}",
             *SHORT, "loss.divergence=js", "loss.temperature=2.0", cwd=tmp_path)
    assert all(0 <= v <= 4 * 0.6932 for v in metrics(js, "kd_loss"))  # JS <= log 2, times temperature^2


def test_padded_accumulated_batches_give_the_padding_free_losses(tt, tmp_path):
    """8 samples laid end to end in one row = 2 accumulated right-padded batches of 4."""
    free, padded = tmp_path / "free", tmp_path / "padded"
    common = ("max_steps_per_epoch=4", "epochs=1", "log_every_n_steps=1", "dataset_val=null")
    tune_run(tt, "knowledge_distillation_single_device", "--config", "tiny/kd_single_device", f"output_dir={free}",
             *common, cwd=tmp_path)
    tune_run(tt, "knowledge_distillation_single_device", "--config", "tiny/kd_single_device", f"output_dir={padded}",
             *common, "padding_free=false", "batch_size=4", "gradient_accumulation_steps=2", cwd=tmp_path)
    for key in ("loss", "ce_loss", "kd_loss"):
        a, b = metrics(free, key), metrics(padded, key)
        assert len(a) == len(b) == 4, key
        assert a == pytest.approx(b, rel=1e-4, abs=1e-5), key


def test_teacher_with_another_vocabulary_stops_with_one_message(tt, tiny_dir, tmp_path):
    teacher = tmp_path / "teacher"
    teacher.mkdir()
    config = json.loads((tiny_dir / "teacher" / "config.json").read_text())
    (teacher / "config.json").write_text(json.dumps({**config, "vocab_size": 4096}))
    (teacher / "model.safetensors").symlink_to(tiny_dir / "teacher" / "model.safetensors")  # never read
    proc = tune_run(tt, "knowledge_distillation_single_device", "--config", "tiny/kd_single_device",
                    f"teacher_dir={teacher}", f"output_dir={tmp_path / 'out'}", cwd=tmp_path, check=False)
    assert proc.returncode != 0
    assert (f"teacher_checkpointer: the teacher's vocab_size=4096 (config of {teacher}) differs from the "
            f"student's vocab_size=2048") in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


def _run_until_checkpoint(tt, cwd: Path, out: Path, args: list[str]) -> None:
    """Starts a run and SIGKILLs it (and any torchrun workers) once its first checkpoint is whole."""
    proc = subprocess.Popen([str(tt.bin / "tune"), *args], cwd=cwd, env=clean_env(OMP_NUM_THREADS="1"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if list(out.glob("step_*/CHECKPOINT_COMPLETE")):
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait()
    assert list(out.glob("step_*/CHECKPOINT_COMPLETE")), "the run never wrote a checkpoint"


def _assert_same_weights(a_dir: Path, b_dir: Path) -> None:
    from safetensors.torch import load_file

    a, b = load_file(a_dir / "model.safetensors"), load_file(b_dir / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("student", ["lora", "full"])
def test_killed_kd_run_resumes_to_the_same_weights(tt, tmp_path, student):
    args = ["run", "knowledge_distillation_single_device", "--config", "tiny/kd_single_device", *SHORT,
            *(["~model"] if student == "full" else [])]
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    tt.run("tune", *args, f"output_dir={whole}", cwd=tmp_path)
    _run_until_checkpoint(tt, tmp_path, broken, [*args, f"output_dir={broken}"])
    tt.run("tune", *args, f"output_dir={broken}", "resume=auto", cwd=tmp_path)
    assert final_dir(whole).name == final_dir(broken).name == "step_8"
    _assert_same_weights(final_dir(whole), final_dir(broken))


@pytest.mark.parametrize("student", ["lora", "full"])
def test_kd_distributed_matches_single_device(tt, tmp_path, student):
    single, dist = tmp_path / "single", tmp_path / "dist"
    common = ("max_steps_per_epoch=6", "epochs=1", "log_every_n_steps=1", "run_val_every_n_steps=3",
              *(["~model"] if student == "full" else []))
    tune_run(tt, "knowledge_distillation_single_device", "--config", "tiny/kd_single_device",
             f"output_dir={single}", *common, cwd=tmp_path)
    tune_run(tt, "--nproc_per_node", "2", "knowledge_distillation_distributed", "--config", "tiny/kd_distributed",
             f"output_dir={dist}", *common, cwd=tmp_path)
    for key in ("loss", "ce_loss", "kd_loss", "grad_norm", "val_loss", "val_kd_loss"):
        a, b = metrics(single, key), metrics(dist, key)
        assert len(a) == len(b) == (2 if key.startswith("val_") else 6), key
        assert a == pytest.approx(b, rel=1e-4, abs=1e-5), key


@pytest.mark.parametrize("student", ["lora", "full"])
def test_killed_distributed_kd_run_resumes_to_the_same_weights(tt, tmp_path, student):
    args = ["run", "--nproc_per_node", "2", "knowledge_distillation_distributed", "--config", "tiny/kd_distributed",
            "max_steps_per_epoch=6", "epochs=1", "save_every_n_steps=3", "dataset_val=null",
            *(["~model"] if student == "full" else [])]
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    tt.run("tune", *args, f"output_dir={whole}", cwd=tmp_path)
    _run_until_checkpoint(tt, tmp_path, broken, [*args, f"output_dir={broken}"])
    tt.run("tune", *args, f"output_dir={broken}", "resume=auto", cwd=tmp_path)
    assert final_dir(whole).name == final_dir(broken).name == "step_6"
    _assert_same_weights(final_dir(whole), final_dir(broken))
