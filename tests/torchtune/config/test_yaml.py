import pytest

from torchtune.config import ConfigError, DictConfig, Location, load_yaml


def test_values_and_line_of_every_key(write_yaml):
    path = write_yaml(
        """
        seed: 3
        lr: 1e-4
        text: "1e-4"
        model:
          _component_: torch.nn.Linear
          in_features: 2
        items: [1, {a: 2}]
        """
    )
    cfg = load_yaml(path)
    assert cfg.to_dict() == {
        "seed": 3,
        "lr": 1e-4,
        "text": "1e-4",
        "model": {"_component_": "torch.nn.Linear", "in_features": 2},
        "items": [1, {"a": 2}],
    }
    assert isinstance(cfg.lr, float)
    assert cfg.location("seed") == Location(str(path), 1)
    assert str(cfg.model.location("in_features")) == f"{path}:6"
    assert cfg["items"][1].location("a") == Location(str(path), 7)
    assert cfg["items"][1].full_key("a") == "items.1.a"


def test_anchors_and_merge_keys(write_yaml):
    cfg = load_yaml(
        write_yaml(
            """
            base: &b {x: 1, y: 2}
            child:
              <<: *b
              y: 3
            """
        )
    )
    assert cfg.child.to_dict() == {"x": 1, "y": 3}


def test_empty_file_is_empty_config(write_yaml):
    assert load_yaml(write_yaml("")) == DictConfig()


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="config file not found: /nonexistent.yaml"):
        load_yaml("/nonexistent.yaml")


def test_top_level_must_be_mapping(write_yaml):
    path = write_yaml("- a\n- b\n")
    with pytest.raises(ConfigError, match=rf"{path}:1: the top level of a config must be a mapping.*not a list"):
        load_yaml(path)


def test_duplicate_key_names_both_lines(write_yaml):
    path = write_yaml("model:\n  a: 1\n  b: 2\n  a: 3\n")
    with pytest.raises(ConfigError, match=rf"{path}:4: duplicate key 'model.a' \(first at {path}:2\)"):
        load_yaml(path)


def test_non_string_key(write_yaml):
    path = write_yaml("a: 1\n3: x\n")
    with pytest.raises(ConfigError, match=rf"{path}:2: config keys must be strings, got 3"):
        load_yaml(path)


def test_invalid_yaml_names_file_and_line(write_yaml):
    path = write_yaml("a: 1\nb: [1, 2\nc: 3\n")
    with pytest.raises(ConfigError, match=rf"{path}: invalid YAML: .*line \d+, column \d+"):
        load_yaml(path)


def test_python_tags_are_refused(write_yaml):
    path = write_yaml("a: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_yaml(path)


def test_aliased_mapping_with_merge_key_builds_twice(write_yaml):
    cfg = load_yaml(
        write_yaml(
            """
            base: &b {x: 1, y: 2}
            child: &c
              <<: *b
              y: 3
            again: *c
            """
        )
    )
    assert cfg.again.to_dict() == cfg.child.to_dict() == {"x": 1, "y": 3}
