import pytest

from torchtune.config import ConfigValidationError, DictConfig, load_config, validate


def test_valid_config_passes(write_yaml, user_pkg):
    path = write_yaml(
        """
        allowed_component_roots: [tt_userpkg.]
        model:
          _component_: torch.nn.Linear
          in_features: 2
          out_features: 2
        optimizer:
          _component_: torch.optim.AdamW
          lr: 1e-4
          weight_decay: 0.0
        anything:
          _component_: tt_userpkg.parts.open_builder
          whatever: 1
        """
    )
    validate(load_config(path))  # no exception; **kwargs accepts any key


def test_all_problems_are_listed_with_file_line_and_suggestion(write_yaml):
    path = write_yaml(
        """
        seed: 1
        model:
          _component_: torch.nn.Linear
          in_feature: 2
          out_features: 2
        optimizer:
          _component_: torch.optim.AdamW
          lrr: 1e-4
          zzzz: 1
        loss:
          _component_: torch.nn.CrossEntropyLos
        tool:
          _component_: os.system
        layers:
          - _component_: torchtune.confg.Layer
        """
    )
    with pytest.raises(ConfigValidationError) as info:
        validate(load_config(path))
    problems = info.value.problems
    assert problems == [
        f"{path}:4: 'model.in_feature' is not an argument of torch.nn.Linear; did you mean 'in_features'?",
        f"{path}:8: 'optimizer.lrr' is not an argument of torch.optim.AdamW; did you mean 'lr'?",
        f"{path}:9: 'optimizer.zzzz' is not an argument of torch.optim.AdamW",
        f"{path}:11: config key 'loss._component_': cannot import 'torch.nn.CrossEntropyLos': 'torch.nn' has no attribute "
        "'CrossEntropyLos'; did you mean 'CrossEntropyLoss'?",
        f"{path}:13: config key 'tool._component_' names 'os.system', which is outside the allowed "
        "component roots (torchtune, torch.optim, torch.nn, torch.utils.data, torchao.optim). If you trust it, allow "
        "it by adding 'allowed_component_roots: [os.]' to the config or passing "
        "'--allow-component-root os.' on the command line",
        f"{path}:15: config key 'layers.0._component_': cannot import 'torchtune.confg.Layer': 'torchtune' has no attribute 'confg'; did you mean 'config'?",
    ]
    assert str(info.value).startswith("config has 6 problems:\n  - ")


def test_known_keys(write_yaml):
    path = write_yaml("seed: 1\nbatch_sise: 2\n")
    with pytest.raises(ConfigValidationError) as info:
        validate(load_config(path), known_keys={"seed", "batch_size"})
    assert info.value.problems == [
        f"{path}:2: unknown key 'batch_sise'; this recipe does not read it; did you mean 'batch_size'?"
    ]
    assert str(info.value).startswith("config has 1 problem:")


def test_override_typo_points_at_the_override(write_yaml):
    path = write_yaml("optimizer:\n  _component_: torch.optim.SGD\n  lr: 0.1\n")
    cfg = load_config(path, ["optimizer.momentun=0.9"])
    with pytest.raises(ConfigValidationError) as info:
        validate(cfg)
    assert info.value.problems == [
        "command-line override 'optimizer.momentun=0.9': 'optimizer.momentun' is not an argument "
        "of torch.optim.SGD; did you mean 'momentum'?"
    ]


def test_validate_builds_nothing(user_pkg):
    leaf = {"_component_": "tt_userpkg.parts.Leaf", "size": 1}
    cfg = DictConfig({"allowed_component_roots": ["tt_userpkg"], "x": {**leaf, "bad": 2}, "y": leaf})
    with pytest.raises(ConfigValidationError, match="'x.bad' is not an argument of tt_userpkg.parts.Leaf"):
        validate(cfg)
    import tt_userpkg.parts

    assert tt_userpkg.parts.BUILT == []
