"""Real chat templates (tests/assets/chat_templates/corpus, sources in its README) through
HFModelTokenizer against transformers' ``apply_chat_template``.

Token ids must equal ``apply_chat_template(..., tokenize=True)`` for single- and multi-turn
conversations with system prompts, tool messages and reasoning. Loss masks are compared with
``return_assistant_tokens_mask``: on the template itself where it has ``{% generation %}``
blocks, else on the training variant TRL ships for it (a copy of the template with generation
blocks added) whenever that variant renders the same ids.
"""

import datetime
import warnings

import pytest
from transformers import PreTrainedTokenizerFast

from tests.assets.tiny_tokenizers import (
    chat_special_tokens,
    read_corpus_chat_templates,
    train_byte_level_tokenizer_json,
    write_tokenizer_config,
)
from torchtune.data import Message, mask_messages
from torchtune.modules.tokenizers import HFModelTokenizer

TEMPLATES = read_corpus_chat_templates()

# template -> (bos_token, eos_token) of the model's tokenizer_config.json
QWEN, LLAMA3, DEEPSEEK, MISTRAL = (None, "<|im_end|>"), ("<|begin_of_text|>", "<|eot_id|>"), (
    "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"), ("<s>", "</s>")
SPECIAL = {
    "CohereForAI-c4ai-command-r7b-12-2024-tool_use": ("<BOS_TOKEN>", "<|END_OF_TURN_TOKEN|>"),
    "GLM-4.6": (None, "<|endoftext|>"),
    "HuggingFaceTB-SmolLM3-3B": QWEN,
    "LFM2.5-8B-A1B": ("<|startoftext|>", "<|im_end|>"),
    "Mistral-Small-3.2-24B-Instruct-2506": MISTRAL,
    "NVIDIA-Nemotron-3-Nano-30B-A3B-BF16": ("<s>", "<|im_end|>"),
    "NVIDIA-Nemotron-Nano-v2": ("<SPECIAL_10>", "<SPECIAL_12>"),
    "Qwen-QwQ-32B": QWEN,
    "Qwen-Qwen2.5-7B-Instruct": QWEN,
    "Qwen-Qwen3-0.6B": QWEN,
    "Qwen3-Coder": QWEN,
    "deepseek-ai-DeepSeek-R1-Distill-Llama-8B": DEEPSEEK,
    "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B": DEEPSEEK,
    "deepseek-ai-DeepSeek-V3.1": DEEPSEEK,
    "google-gemma-2-2b-it": ("<bos>", "<eos>"),
    "ibm-granite-granite-3.3-2B-Instruct": (None, "<|end_of_text|>"),
    "meta-llama-Llama-3.1-8B-Instruct": LLAMA3,
    "meta-llama-Llama-3.2-3B-Instruct": LLAMA3,
    "meta-llama-Llama-3.3-70B-Instruct": LLAMA3,
    "llamacpp-test-Mistral-Large-Instruct-2411": MISTRAL,
    "llamacpp-test-Phi-3-small": ("<|endoftext|>", "<|endoftext|>"),
    "microsoft-Phi-3.5-mini-instruct": ("<s>", "<|endoftext|>"),
    "mistralai-Mistral-Nemo-Instruct-2407": MISTRAL,
    "moonshotai-Kimi-K2": ("[BOS]", "[EOS]"),
    "openai-gpt-oss-120b": ("<|startoftext|>", "<|return|>"),
    "poolside-Laguna-XS.2": ("<s>", "</s>"),
    "unsloth-mistral-Devstral-Small-2507": MISTRAL,
    "trl-cohere": ("<BOS_TOKEN>", "<|END_OF_TURN_TOKEN|>"),
    "trl-deepseek_r1_distill": DEEPSEEK,
    "trl-deepseekv3": DEEPSEEK,
    "trl-gemma3": ("<bos>", "<eos>"),
    "trl-gemma_training": ("<bos>", "<eos>"),
    "trl-glm4moe": (None, "<|endoftext|>"),
    "trl-gptoss": ("<|startoftext|>", "<|return|>"),
    "trl-lfm2": ("<|startoftext|>", "<|im_end|>"),
    "trl-llama3_training": LLAMA3,
    "trl-phi3": ("<s>", "<|endoftext|>"),
    "trl-phi3_5": ("<s>", "<|endoftext|>"),
    "trl-qwen2_5_training": QWEN,
    "trl-qwen3_instruct_2507": QWEN,
    "trl-qwen3_training": QWEN,
}
for _name in list(TEMPLATES):  # a training variant uses its original's tokens
    if _name.endswith("_training") and _name not in SPECIAL:
        SPECIAL[_name] = SPECIAL[_name[: -len("_training")]]

# original -> TRL training variant, where the two agree on what an assistant turn trains on:
# its content, closing tokens and what follows the generation prompt.
SAME_MASKS = {
    "trl-phi3": "trl-phi3_training",
    "microsoft-Phi-3.5-mini-instruct": "trl-phi3_5_training",
    "trl-phi3_5": "trl-phi3_5_training",
    "trl-gemma3": "trl-gemma3_training",
    "google-gemma-2-2b-it": "trl-gemma_training",
    "Qwen-Qwen3-0.6B": "trl-qwen3_training",
    "trl-lfm2": "trl-lfm2_training",
    "trl-cohere": "trl-cohere_training",
    "trl-qwen3_instruct_2507": "trl-qwen3_instruct_2507_training",
}
# original -> TRL variant that also trains on the generation prompt (e.g. DeepSeek's
# <｜Assistant｜>, Qwen2.5's newline after the role) or on closings that differ between the
# last turn and earlier ones (gpt-oss <|end|>): our trained tokens are a subset of its.
SUBSET_MASKS = {
    "Qwen-Qwen2.5-7B-Instruct": "trl-qwen2_5_training",
    "trl-gptoss": "trl-gptoss_training",
    "openai-gpt-oss-120b": "trl-gptoss_training",
    "trl-deepseekv3": "trl-deepseekv3_training",
    "trl-deepseek_r1_distill": "trl-deepseek_r1_distill_training",
    "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B": "trl-deepseek_r1_distill_training",
}

CONVERSATIONS = {
    "single": [{"role": "user", "content": "Say hello."}, {"role": "assistant", "content": "hello there"}],
    "multi": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Bonjour, ça va? 🙂"},
        {"role": "assistant", "content": "Oui, très bien."},
        {"role": "user", "content": "And in Japanese?"},
        {"role": "assistant", "content": "元気です。"},
    ],
    "tool": [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "Let me check."},
        {"role": "tool", "content": '{"temp": 21}'},
        {"role": "assistant", "content": "It is 21 degrees."},
    ],
    "think": [
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "<think>\nsimple sum\n</think>\n\nFour."},
        {"role": "user", "content": "And 3+3?"},
        {"role": "assistant", "content": "<think>\nagain\n</think>\n\nSix."},
    ],
}
ANSWERS = {"single": ["hello there"], "multi": ["Oui, très bien.", "元気です。"],
           "tool": ["Let me check.", "It is 21 degrees."], "think": ["Four.", "Six."]}


class _FrozenClock(datetime.datetime):
    @classmethod
    def now(cls, tz=None):
        return cls(2026, 1, 2, 3, 4, 5)


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch):
    """Templates that print today's date (Llama 3.2, gpt-oss, Granite) render one date in both."""
    import transformers.utils.chat_template_utils as reference

    from torchtune.modules.tokenizers import _chat_template

    monkeypatch.setattr(reference, "datetime", _FrozenClock)
    monkeypatch.setattr(_chat_template, "datetime", _FrozenClock)


@pytest.fixture(scope="module")
def tokenizer_json(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("corpus")
    specials = chat_special_tokens(TEMPLATES.values()) + [t for pair in SPECIAL.values() for t in pair if t]
    return tmp, train_byte_level_tokenizer_json(tmp, sorted(set(specials)), vocab_size=1200)


def _pair(tokenizer_json, name, source=None):
    tmp, path = tokenizer_json
    bos, eos = SPECIAL[name]
    tokens = {"bos_token": bos, "eos_token": eos} if bos else {"eos_token": eos}
    ours = HFModelTokenizer(path, write_tokenizer_config(tmp, TEMPLATES[name], name=f"{name}.json", **tokens))
    ref = PreTrainedTokenizerFast(tokenizer_file=path, **tokens)
    ref.chat_template = TEMPLATES[name] if source is None else source
    return ours, ref


def _apply(ref, conversation, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = ref.apply_chat_template(conversation, tokenize=True, return_dict=True, **kwargs)
    return list(out["input_ids"]), [bool(x) for x in out.get("assistant_masks", [])]


def _messages(conversation):
    messages = [Message(d["role"], d["content"]) for d in conversation]
    mask_messages(messages, "train_on_assistant")
    return messages


def test_corpus_is_large_and_covered():
    originals = [n for n in TEMPLATES if not n.endswith("_training")]
    assert len(originals) >= 20 and set(TEMPLATES) == set(SPECIAL)
    assert set(SAME_MASKS) | set(SUBSET_MASKS) <= set(TEMPLATES)


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_ids_and_masks_match_transformers(tokenizer_json, name):
    ours, ref = _pair(tokenizer_json, name)
    reference_name = SAME_MASKS.get(name) or SUBSET_MASKS.get(name)
    training = _pair(tokenizer_json, name, TEMPLATES[reference_name])[1] if reference_name else None
    rendered = compared = 0
    for key, conversation in CONVERSATIONS.items():
        messages = _messages(conversation)
        try:
            expected, expected_mask = _apply(ref, conversation, return_assistant_tokens_mask=True)
        except Exception:  # the model's template refuses this conversation: so must we
            with pytest.raises(Exception):
                ours.tokenize_messages(messages)
            continue
        rendered += 1
        tokens, mask = ours.tokenize_messages(messages)
        assert tokens == expected, (key, ours.render(messages))
        trained = [not m for m in mask]
        if ours.template.has_generation_blocks:
            assert trained == expected_mask, key
            compared += 1
        elif training is not None:
            variant, variant_mask = _apply(training, conversation, return_assistant_tokens_mask=True)
            if variant == tokens:
                compared += 1
                if name in SAME_MASKS:
                    assert trained == variant_mask, key
                else:
                    assert all(v for t, v in zip(trained, variant_mask) if t) and sum(trained) < sum(variant_mask), key
        text = ours.decode([t for t, m in zip(tokens, mask) if not m], skip_special_tokens=False)
        for answer in ANSWERS[key]:
            assert answer in text, (key, text)
        for message in conversation:
            if message["role"] != "assistant":
                assert message["content"] not in text, (key, text)
        # generation prompt: the conversation up to its last assistant turn
        prompt, _ = _apply(ref, conversation[:-1], add_generation_prompt=True)
        assert ours.tokenize_messages(messages[:-1], add_end_tokens=False)[0] == prompt, key
    assert rendered >= 2
    assert compared >= 1 or reference_name is None and not ours.template.has_generation_blocks
