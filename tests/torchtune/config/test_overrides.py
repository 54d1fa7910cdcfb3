import pytest

from torchtune.config import ConfigError, DictConfig, apply_overrides


def _cfg():
    return DictConfig(
        {
            "seed": 1,
            "optimizer": {"_component_": "torch.optim.AdamW", "lr": 0.1},
            "model": {"_component_": "torchtune.models.a.small", "lora_rank": 8},
            "layers": [{"n": 1}, {"n": 2}],
            "name": "x",
        }
    )


def test_scalar_list_and_dotted_overrides():
    cfg = apply_overrides(
        _cfg(),
        ["seed=2", "optimizer.lr=1e-4", "dims=[1, 2]", "flag=true", "name=a=b", "empty=", "layers.1.n=5"],
    )
    assert cfg.seed == 2
    assert cfg.optimizer.lr == 1e-4 and isinstance(cfg.optimizer.lr, float)
    assert cfg.dims == [1, 2] and cfg.flag is True
    assert cfg.name == "a=b"
    assert cfg.empty == ""
    assert cfg.layers[1].n == 5
    assert str(cfg.optimizer.location("lr")) == "command-line override 'optimizer.lr=1e-4'"


def test_new_nested_key_creates_parents_and_mapping_value():
    cfg = apply_overrides(_cfg(), ["profiler.enabled=false", "loss={_component_: torch.nn.CrossEntropyLoss}"])
    assert cfg.profiler.to_dict() == {"enabled": False}
    assert cfg.loss._component_ == "torch.nn.CrossEntropyLoss"
    assert cfg.loss.full_key() == "loss"


def test_component_swap_keeps_arguments():
    cfg = apply_overrides(_cfg(), ["model=torchtune.models.llama3_2.lora_llama3_2_1b"])
    assert cfg.model.to_dict() == {"_component_": "torchtune.models.llama3_2.lora_llama3_2_1b", "lora_rank": 8}
    assert str(cfg.model.location("_component_")) == (
        "command-line override 'model=torchtune.models.llama3_2.lora_llama3_2_1b'"
    )


def test_interpolation_in_override_value():
    cfg = apply_overrides(_cfg(), ["out=${name}/logs", "ref=${seed}"])
    assert cfg.out == "${name}/logs" and cfg.ref == "${seed}"  # resolved later by resolve()


def test_non_path_value_replaces_component_node():
    cfg = apply_overrides(_cfg(), ["model=null"])
    assert cfg.model is None


def test_deletion():
    cfg = apply_overrides(_cfg(), ["~seed", "~optimizer.lr"])
    assert "seed" not in cfg and "lr" not in cfg.optimizer


def test_overrides_apply_in_order():
    cfg = apply_overrides(_cfg(), ["seed=3", "~seed", "seed=4"])
    assert cfg.seed == 4


@pytest.mark.parametrize(
    "override, message",
    [
        ("seed", r"override 'seed' is not of the form key=value \(or ~key to delete a key\)"),
        ("=3", r"override '=3': '' is not a valid key; keys are dotted names like optimizer.lr"),
        ("a..b=1", r"override 'a..b=1': 'a..b' is not a valid key"),
        ("~missing", r"override '~missing': cannot delete 'missing', the config has no such key"),
        ("~optimizer.lrr", r"cannot delete 'optimizer.lrr', the config has no such key; did you mean 'lr'\?"),
        ("~optimiser.lr", r"override '~optimiser.lr': config has no key 'optimiser'; did you mean 'optimizer'\?"),
        ("~seed=1", r"override '~seed=1': deletion takes no value; write ~seed"),
        ("seed.x=1", r"override 'seed.x=1': 'seed' holds a int \(1\), not a mapping, so it has no key 'seed.x'"),
        ("layers.7=1", r"override 'layers.7=1': index 7 is out of range for a list of 2"),
        ("dims=[1, 2", r"value '\[1, 2' is not valid YAML"),
    ],
)
def test_bad_overrides(override, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides(_cfg(), [override])
