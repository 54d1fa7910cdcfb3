import importlib

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from torchtune.models import build_decoder, model_from_hf_config
from torchtune.modules.peft import LoRALinear, get_adapter_params

# Parameter counts published in the models' safetensors metadata / model cards.
PUBLISHED = {
    "llama2.llama2_7b": 6_738_415_616,
    "llama2.llama2_13b": 13_015_864_320,
    "llama2.llama2_70b": 68_976_648_192,
    "llama3.llama3_8b": 8_030_261_248,
    "llama3.llama3_70b": 70_553_706_496,
    "llama3_1.llama3_1_8b": 8_030_261_248,
    "llama3_1.llama3_1_70b": 70_553_706_496,
    "llama3_1.llama3_1_405b": 405_853_388_800,
    "llama3_2.llama3_2_1b": 1_235_814_400,
    "llama3_2.llama3_2_3b": 3_212_749_824,
    "llama3_3.llama3_3_70b": 70_553_706_496,
    "mistral.mistral_7b": 7_241_732_096,
    "qwen2_5.qwen2_5_0_5b": 494_032_768,
    "qwen2_5.qwen2_5_1_5b": 1_543_714_304,
    "qwen2_5.qwen2_5_3b": 3_085_938_688,
    "qwen2_5.qwen2_5_7b": 7_615_616_512,
    "qwen2_5.qwen2_5_14b": 14_770_033_664,
    "qwen2_5.qwen2_5_32b": 32_763_876_352,
    "qwen2_5.qwen2_5_72b": 72_706_203_648,
    "qwen3.qwen3_4b": 4_022_468_096,
    "qwen3.qwen3_8b": 8_190_735_360,
    "qwen3.qwen3_14b": 14_768_307_200,
    "qwen3.qwen3_32b": 32_762_123_264,
}

# Presets whose published figure counts the duplicate lm_head stored in the checkpoint: compare
# with transformers built on meta from the published config.json values instead.
_QWEN3_SMALL = dict(model_type="qwen3", vocab_size=151936, head_dim=128, num_key_value_heads=8,
                    num_attention_heads=16, num_hidden_layers=28, max_position_embeddings=40960,
                    tie_word_embeddings=True)
HF_REFERENCE = {
    "qwen3.qwen3_0_6b": dict(_QWEN3_SMALL, hidden_size=1024, intermediate_size=3072),
    "qwen3.qwen3_1_7b": dict(_QWEN3_SMALL, hidden_size=2048, intermediate_size=6144),
}


def _preset(path):
    family, name = path.split(".")
    return getattr(importlib.import_module(f"torchtune.models.{family}"), name)


def _count(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("path", sorted(PUBLISHED))
def test_preset_matches_published_count(path):
    with torch.device("meta"):
        model = _preset(path)()
    assert _count(model) == PUBLISHED[path]


@pytest.mark.parametrize("path", sorted(HF_REFERENCE))
def test_preset_matches_transformers_on_meta(path):
    config = AutoConfig.for_model(**HF_REFERENCE[path])
    with torch.device("meta"):
        ours = _preset(path)()
        ref = AutoModelForCausalLM.from_config(config)
        from_config = model_from_hf_config(HF_REFERENCE[path])
    assert _count(ours) == _count(ref) == _count(from_config)


def test_preset_details():
    with torch.device("meta"):
        assert "output.weight" not in _preset("llama3_2.llama3_2_1b")().state_dict()
        assert _preset("llama3_1.llama3_1_8b")().layers[0].attn.pos_embeddings.scaling["factor"] == 8.0
        assert _preset("mistral.mistral_7b")().layers[0].attn.sliding_window == 4096
        assert _preset("qwen2_5.qwen2_5_7b")().layers[0].attn.q_proj.bias is not None
        qwen3 = _preset("qwen3.qwen3_8b")()
        assert qwen3.layers[0].attn.q_norm is not None and qwen3.head_dim == 128


@pytest.mark.parametrize("path", ["llama3_2.lora_llama3_2_1b", "qwen3.lora_qwen3_0_6b", "llama2.lora_llama2_7b"])
def test_lora_presets(path):
    with torch.device("meta"):
        model = _preset(path)(["q_proj", "v_proj"], apply_lora_to_mlp=True, lora_rank=4, lora_alpha=8)
        base = _preset(path.replace("lora_", ""))()
    attn = model.layers[0].attn
    assert isinstance(attn.q_proj, LoRALinear) and isinstance(attn.v_proj, LoRALinear)
    assert not isinstance(attn.k_proj, LoRALinear) and isinstance(model.layers[0].mlp.w2, LoRALinear)
    assert attn.q_proj.rank == 4 and attn.q_proj.scaling == 2.0
    adapter = get_adapter_params(model)
    assert _count(model) - sum(p.numel() for p in adapter.values()) == _count(base)


def test_dora_preset():
    with torch.device("meta"):
        model = _preset("mistral.lora_mistral_7b")(["output_proj"], apply_lora_to_output=True, use_dora=True)
    assert "layers.0.attn.output_proj.magnitude" in get_adapter_params(model)
    assert "output.magnitude" in get_adapter_params(model)


_SIZES = dict(vocab_size=10, num_layers=1, num_heads=4, num_kv_heads=2, embed_dim=16, intermediate_dim=8,
              max_seq_len=8)


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"num_heads": 3}, r"num_heads=3 must divide embed_dim=16"),
        ({"num_kv_heads": 3}, r"num_kv_heads=3 must divide num_heads=4"),
        ({"num_kv_heads": 0}, r"num_kv_heads=0 must be a positive integer"),
        ({"sliding_window": [4, 4]}, r"sliding_window has 2 entries but num_layers=1"),
    ],
)
def test_bad_sizes(overrides, message):
    with pytest.raises(ValueError, match=message):
        build_decoder(**{**_SIZES, **overrides})


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"lora_rank": 0}, r"lora_rank=0 must be a positive integer"),
        ({"lora_rank": -2}, r"lora_rank=-2 must be a positive integer"),
        ({"lora_attn_modules": ["q_proj", "o_proj"]},
         r"lora_attn_modules=\['q_proj', 'o_proj'\] has unknown names \['o_proj'\]; "
         r"allowed: \['q_proj', 'k_proj', 'v_proj', 'output_proj'\]"),
        ({"apply_lora_to_output": True},
         r"apply_lora_to_output=True is not supported with tie_word_embeddings=True"),
    ],
)
def test_bad_lora_args(kwargs, message):
    lora_llama3_2_1b = _preset("llama3_2.lora_llama3_2_1b")
    args = {"lora_attn_modules": ["q_proj"], **kwargs}
    with pytest.raises(ValueError, match=message), torch.device("meta"):
        lora_llama3_2_1b(**args)


def test_family_builders_show_their_defaults():
    import inspect

    from torchtune.models.qwen2_5 import qwen2_5
    from torchtune.models.qwen3 import qwen3

    assert inspect.signature(qwen2_5).parameters["qkv_bias"].default is True
    assert inspect.signature(qwen3).parameters["qk_norm"].default is True
    assert qwen2_5.__name__ == "qwen2_5" and "qkv_bias=True" in qwen2_5.__doc__
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'qkv_biass'"):
        qwen2_5(vocab_size=10, num_layers=1, num_heads=4, num_kv_heads=2, embed_dim=16, intermediate_dim=8,
                max_seq_len=8, qkv_biass=True)


def test_lora_family_builders_take_lora_rank_by_position_like_the_presets():
    import inspect

    from torchtune.models.llama3_1 import lora_llama3_1

    preset_params = list(inspect.signature(_preset("llama3_2.lora_llama3_2_1b")).parameters)
    family_params = list(inspect.signature(lora_llama3_1).parameters)
    assert family_params[: len(preset_params)] == preset_params
    with torch.device("meta"):
        model = lora_llama3_1(["q_proj"], False, False, 4, 8.0, vocab_size=10, num_layers=1, num_heads=4,
                              num_kv_heads=2, embed_dim=16, intermediate_dim=8, max_seq_len=8)
    assert model.layers[0].attn.q_proj.rank == 4 and model.layers[0].attn.q_proj.scaling == 2.0


# Each family's defaults as its published Hugging Face config.json files set them; every other
# argument is build_decoder's default.
_LLAMA3_1_SCALING = {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 8192}
FAMILY_DEFAULTS = {
    "llama2": {},
    "llama3": {"rope_base": 500000.0},
    "llama3_1": {"rope_base": 500000.0, "rope_scaling": _LLAMA3_1_SCALING},
    "mistral": {},
    "qwen2_5": {"norm_eps": 1e-6, "rope_base": 1000000.0, "qkv_bias": True},
    "qwen3": {"norm_eps": 1e-6, "rope_base": 1000000.0, "qkv_bias": False, "qk_norm": True},
    "smollm2": {"rope_base": 100000.0, "tie_word_embeddings": True},
}
_TINY = dict(vocab_size=32, num_layers=2, num_heads=4, num_kv_heads=2, embed_dim=16, intermediate_dim=24,
             max_seq_len=16)


def _family(name):
    return getattr(importlib.import_module(f"torchtune.models.{name}"), name)


@pytest.mark.parametrize("name", sorted(FAMILY_DEFAULTS))
def test_family_builder_signature_lists_every_build_decoder_argument(name):
    import inspect

    ours = inspect.signature(_family(name)).parameters
    theirs = inspect.signature(build_decoder).parameters
    assert set(ours) == set(theirs)
    assert not any(p.kind is p.VAR_KEYWORD for p in ours.values())
    for key, value in FAMILY_DEFAULTS[name].items():
        assert ours[key].default == value, key
    for key in set(theirs) - set(FAMILY_DEFAULTS[name]):
        assert ours[key].default is theirs[key].default, key


@pytest.mark.parametrize("name", sorted(FAMILY_DEFAULTS))
def test_family_builder_is_build_decoder_with_published_defaults(name):
    # mlp_bias and head_dim are forwarded through **options.
    options = dict(_TINY, mlp_bias=True, head_dim=8)
    torch.manual_seed(0)
    ours = _family(name)(**options)
    torch.manual_seed(0)
    reference = build_decoder(**options, **FAMILY_DEFAULTS[name])
    assert repr(ours) == repr(reference)
    assert ours.state_dict().keys() == reference.state_dict().keys()
    for key, value in reference.state_dict().items():
        assert torch.equal(ours.state_dict()[key], value), key
    tokens = torch.randint(0, 32, (1, 8))
    torch.testing.assert_close(ours(tokens), reference(tokens), rtol=0, atol=0)


@pytest.mark.parametrize("name", sorted(FAMILY_DEFAULTS))
def test_lora_family_builder_signature_is_the_family_signature_without_lora(name):
    import inspect

    lora_builder = getattr(importlib.import_module(f"torchtune.models.{name}"), f"lora_{name}")
    family = inspect.signature(_family(name)).parameters
    params = inspect.signature(lora_builder).parameters
    own = [n for n, p in params.items() if p.kind is p.POSITIONAL_OR_KEYWORD]
    assert own[:2] == ["lora_attn_modules", "apply_lora_to_mlp"]
    forwarded = {n: p for n, p in params.items() if n not in own}
    assert set(forwarded) == set(family) - {"lora"}
    assert all(p.kind is p.KEYWORD_ONLY for p in forwarded.values())
    assert all(forwarded[n].default == family[n].default for n in forwarded)


def test_config_validation_reports_a_misspelled_size_under_a_lora_builder(tmp_path):
    from torchtune.config import ConfigValidationError, load_config, validate

    path = tmp_path / "cfg.yaml"
    path.write_text(
        "model:\n"
        "  _component_: torchtune.models.qwen3.lora_qwen3\n"
        "  lora_attn_modules: [q_proj]\n"
        "  vocab_size: 32\n"
        "  num_layer: 2\n"
        "  qk_norm: false\n"
    )
    with pytest.raises(ConfigValidationError) as e:
        validate(load_config(path))
    message = str(e.value)
    assert "cfg.yaml:5" in message and "'model.num_layer' is not an argument" in message
    assert "num_layers" in message  # the suggestion
    assert "qk_norm" not in message and "vocab_size" not in message


def test_forwards_kwargs_refuses_what_it_cannot_forward():
    from torchtune.utils import forwards_kwargs

    def target(*, a: int, b: int = 2) -> int:
        return a + b

    with pytest.raises(TypeError, match=r"no \*\*kwargs to forward to .*target"):
        forwards_kwargs(target)(lambda a: a)
    with pytest.raises(TypeError, match=r"exclude=\['c'\] are not parameters of .*target"):
        forwards_kwargs(target, exclude=("c",))

    @forwards_kwargs(target, exclude=("a",))
    def caller(x: int, **rest: int) -> int:
        return target(a=x, **rest)

    import inspect

    assert str(inspect.signature(caller)) == "(x: int, *, b: int = 2) -> int"
    assert caller(1, b=5) == 6
