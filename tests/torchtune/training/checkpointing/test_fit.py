"""check_weights_fit: one message, naming both shapes and the fix, instead of PyTorch's wall of size mismatches."""

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from torchtune.config import ConfigError
from torchtune.models import hf_to_tune, model_from_hf_config
from torchtune.training.checkpointing import check_weights_fit

SMALL = dict(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=64)


def _checkpoint(**sizes) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    hf = LlamaForCausalLM(LlamaConfig(**{**SMALL, **sizes}))
    return hf_to_tune(hf.state_dict(), hf.config.to_dict())


def test_fitting_checkpoint_passes_and_loads():
    model = model_from_hf_config(LlamaConfig(**SMALL).to_dict())
    state_dict = _checkpoint()
    check_weights_fit(model, state_dict, builder="some.builder")
    model.load_state_dict(state_dict)


def test_other_size_names_first_tensor_both_shapes_and_the_fix():
    model = model_from_hf_config(LlamaConfig(**{**SMALL, "hidden_size": 64}).to_dict())
    state_dict = _checkpoint()
    with pytest.raises(RuntimeError, match="size mismatch"):  # what the user got before
        model.load_state_dict(state_dict)
    with pytest.raises(ConfigError) as info:
        check_weights_fit(model, state_dict, builder="torchtune.models.llama3_2.lora_llama3_2_3b")
    message = str(info.value)
    assert "builder model._component_=torchtune.models.llama3_2.lora_llama3_2_3b" in message
    assert "tok_embeddings.weight is [64, 32] in the checkpoint but [64, 64] in the model" in message
    differing = sum(1 for k, v in state_dict.items() if v.shape != model.state_dict()[k].shape)
    assert f"({differing} of {len(state_dict)} tensors differ)" in message
    assert "`~model._component_`" in message and "`~model`" in message
    assert "\n" not in message


def test_meta_device_model_is_checked_too():
    with torch.device("meta"):
        model = model_from_hf_config(LlamaConfig(**{**SMALL, "num_hidden_layers": 2, "intermediate_size": 96}).to_dict())
    with pytest.raises(ConfigError, match=r"layers\.0\.mlp\.w1\.weight is \[64, 32\] in the checkpoint but \[96, 32\]"):
        check_weights_fit(model, _checkpoint())


def test_save_mappings_check_adapters_on_a_fused_layout():
    from transformers import Phi3Config

    from torchtune.modules.peft import get_adapter_specs
    from torchtune.training.checkpointing import check_save_mappings

    phi3 = Phi3Config(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=4, max_position_embeddings=64).to_dict()
    lora = dict(lora_attn_modules=["q_proj", "v_proj"], apply_lora_to_mlp=True, lora_rank=2, lora_alpha=4)
    model = model_from_hf_config(phi3, **lora)  # LoRA on parts of qkv_proj / gate_up_proj: written fused
    check_save_mappings(model.state_dict(), phi3, adapter_specs=get_adapter_specs(model))
    model = model_from_hf_config(phi3, **{**lora, "use_dora": True})
    with pytest.raises(ConfigError, match=r"DoRA on 'model\.layers\.0\.self_attn\.qkv_proj'.*got \['layers\.0\.attn\.q_proj', "
                                          r"'layers\.0\.attn\.v_proj'\].*model\.lora_attn_modules"):
        check_save_mappings(model.state_dict(), phi3, adapter_specs=get_adapter_specs(model))
    check_save_mappings(model_from_hf_config(phi3).state_dict(), phi3)  # without adapters Phi-3 saves fine


def test_save_mappings_error_gives_its_fix_once():
    from transformers import Phi3Config

    from torchtune.modules.peft import get_adapter_specs
    from torchtune.training.checkpointing import check_save_mappings

    phi3 = Phi3Config(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=4, max_position_embeddings=64).to_dict()
    model = model_from_hf_config(phi3, lora_attn_modules=["q_proj"], lora_rank=2, lora_alpha=4, use_dora=True)
    with pytest.raises(ConfigError) as info:  # the fused qkv_proj's error names its own fix
        check_save_mappings(model.state_dict(), phi3, adapter_specs=get_adapter_specs(model))
    message = str(info.value)
    assert message.startswith("the adapters cannot be saved in the peft format of this checkpoint (phi3): DoRA on "
                              "'model.layers.0.self_attn.qkv_proj'")
    assert message.endswith("add the missing ones to the LoRA targets (model.lora_attn_modules, "
                            "model.apply_lora_to_mlp) or use LoRA (model.use_dora: false)")
    assert message.count("model.lora_attn_modules") == 1 and message.count("model.apply_lora_to_mlp") == 1
    # an adapter on a module the layout has no name for: the generic fix, once
    unmapped = {"layers.0.attn.pos_proj.lora_a.weight": torch.zeros(2, 32),
                "layers.0.attn.pos_proj.lora_b.weight": torch.zeros(32, 2)}
    with pytest.raises(ConfigError) as info:
        check_save_mappings(unmapped, phi3)
    message = str(info.value)
    assert "no mapping for module 'layers.0.attn.pos_proj'" in message
    assert message.endswith(". Choose LoRA targets that exist in its layout (config keys model.lora_attn_modules, "
                            "model.apply_lora_to_mlp, model.apply_lora_to_output)")
    assert message.count("model.lora_attn_modules") == 1


def test_same_vocabulary_passes_another_is_named_with_both_checkpoints():
    from types import SimpleNamespace

    from torchtune.training.checkpointing import check_same_vocabulary

    student = SimpleNamespace(config={"vocab_size": 64}, checkpoint_dir="/m/student")
    check_same_vocabulary(student, SimpleNamespace(config={"vocab_size": 64}, checkpoint_dir="/m/teacher"))
    with pytest.raises(ConfigError) as info:
        check_same_vocabulary(student, SimpleNamespace(config={"vocab_size": 128}, checkpoint_path="/m/teacher.gguf"))
    assert str(info.value).startswith(
        "teacher_checkpointer: the teacher's vocab_size=128 (config of /m/teacher.gguf) differs from the student's "
        "vocab_size=64 (checkpointer: config of /m/student); ")
