from pathlib import Path

import pytest
from torchtune.config import ConfigError, DictConfig, load_yaml, resolve


def test_whole_value_keeps_type_and_strings_are_formatted():
    cfg = DictConfig(
        {
            "output_dir": "/tmp/run",
            "batch_size": 4,
            "logger": {"log_dir": "${output_dir}/logs", "every": "${batch_size}"},
            "data": {"bs": "${batch_size}", "tag": "bs${batch_size}-${logger.every}"},
            "copy": "${data}",
            "items": [1, "${items.0}"],
        }
    )
    out = resolve(cfg)
    assert out.logger.log_dir == "/tmp/run/logs"
    assert out.logger.every == 4 and isinstance(out.logger.every, int)
    assert out.data.tag == "bs4-4"
    assert out["copy"].to_dict() == {"bs": 4, "tag": "bs4-4"}
    assert out["items"] == [1, 1]
    assert cfg.logger.log_dir == "${output_dir}/logs"  # input untouched


def test_locations_survive(write_yaml):
    path = write_yaml("a: 1\nb:\n  c: ${a}\n")
    out = resolve(load_yaml(path))
    assert out.b.c == 1 and str(out.b.location("c")) == f"{path}:3"


def test_cycle_is_reported_with_chain_and_location(write_yaml):
    path = write_yaml("a: ${b.c}\nb:\n  c: ${d}\nd: x${a}\n")
    with pytest.raises(ConfigError, match=rf"interpolation cycle: a -> b.c -> d -> a \({path}:1\)"):
        resolve(load_yaml(path))


def test_self_reference_cycle():
    with pytest.raises(ConfigError, match=r"interpolation cycle: a -> a"):
        resolve(DictConfig({"a": "${a}"}))


def test_missing_key_with_suggestion(write_yaml):
    path = write_yaml("output_dir: /x\nlogs: ${output_dri}/logs\n")
    with pytest.raises(
        ConfigError,
        match=rf"interpolation '\$\{{output_dri\}}' in 'logs' \({path}:2\) refers to a missing key "
        r"'output_dri'; did you mean 'output_dir'\?",
    ):
        resolve(load_yaml(path))


@pytest.mark.parametrize("text", ["${}", "${a b}", "x${a", "${a.${b}}"])
def test_malformed_reference(text):
    with pytest.raises(ConfigError, match="malformed interpolation"):
        resolve(DictConfig({"a": 1, "b": "a", "c": text}))


def test_variables_fill_names_the_config_does_not_set():
    out = resolve(DictConfig({"data": "${recipes_root}/assets/tiny", "where": "${recipes_root}"}),
                  variables={"recipes_root": "/r"})
    assert out["data"] == "/r/assets/tiny" and out["where"] == "/r"
    out = resolve(DictConfig({"recipes_root": "/mine", "data": "${recipes_root}/x"}), variables={"recipes_root": "/r"})
    assert out.data == "/mine/x"  # a key of the config wins
    with pytest.raises(ConfigError, match="refers to a missing key 'other'"):
        resolve(DictConfig({"a": "${other}"}), variables={"recipes_root": "/r"})


def test_recipes_root_follows_env_and_defaults_to_the_source_recipes_dir(tmp_path, monkeypatch):
    import torchtune

    monkeypatch.setenv("TORCHTUNE_RECIPES_ROOT", str(tmp_path))
    assert torchtune.recipes_root() == tmp_path
    monkeypatch.delenv("TORCHTUNE_RECIPES_ROOT")
    package_dir = Path(torchtune.__file__).parent
    expected = package_dir / "_recipes" if (package_dir / "_recipes").is_dir() else package_dir.parent / "recipes"
    assert torchtune.recipes_root() == expected


def test_unsupplied_recipes_root_still_resolves_with_a_deprecation_warning(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHTUNE_RECIPES_ROOT", str(tmp_path))
    with pytest.warns(DeprecationWarning, match=r"\$\{recipes_root\} was not supplied"):
        out = resolve(DictConfig({"where": "${recipes_root}"}))
    assert out["where"] == str(tmp_path)
