import copy

import pytest

from torchtune.config import ConfigError, DictConfig


def test_attribute_item_and_get_access():
    cfg = DictConfig({"optimizer": {"lr": 0.1}, "layers": [{"n": 1}]})
    assert cfg.optimizer.lr == cfg["optimizer"]["lr"] == 0.1
    assert cfg.get("seed", 7) == 7
    assert cfg.layers[0].n == 1
    cfg.seed = 5
    cfg["optimizer"]["momentum"] = 0.9
    assert cfg.to_dict() == {"optimizer": {"lr": 0.1, "momentum": 0.9}, "layers": [{"n": 1}], "seed": 5}
    del cfg.seed
    assert "seed" not in cfg


def test_missing_key_messages_suggest():
    cfg = DictConfig({"optimizer": {"lr": 0.1}})
    with pytest.raises(AttributeError, match=r"config has no key 'optimizer.lrr'; did you mean 'lr'\?"):
        cfg.optimizer.lrr
    with pytest.raises(KeyError, match=r"config has no key 'optimiser'; did you mean 'optimizer'\?"):
        cfg["optimiser"]
    with pytest.raises(AttributeError, match="config has no key 'zzz'"):
        del cfg.zzz


def test_non_string_key_rejected():
    with pytest.raises(ConfigError, match=r"config keys must be strings, got 1 \(int\) under 'a'"):
        DictConfig({"a": {1: 2}})


def test_full_key_select_and_copy_are_detached():
    cfg = DictConfig({"a": {"b": [0, {"c": 1}]}})
    assert cfg.a.b[1].full_key("c") == "a.b.1.c"
    assert cfg.select("a.b.1.c") == 1
    assert cfg.select("a.x", None) is None
    with pytest.raises(KeyError, match="config has no key 'a.x' \\(no 'x'\\)"):
        cfg.select("a.x")
    dup = copy.deepcopy(cfg)
    dup.a.b[1].c = 2
    assert cfg.a.b[1].c == 1
    # assigning a node that belongs to another tree copies it
    other = DictConfig({"x": cfg.a})
    other.x.b[1].c = 9
    assert cfg.a.b[1].c == 1 and other.x.full_key() == "x"


def test_pickle_round_trip_keeps_paths():
    import pickle

    cfg = DictConfig({"a": {"b": [1, {"c": 2}]}})
    cfg.a.set_location("b", None)
    out = pickle.loads(pickle.dumps(cfg))
    assert out == cfg and out.a.b[1].full_key("c") == "a.b.1.c"
