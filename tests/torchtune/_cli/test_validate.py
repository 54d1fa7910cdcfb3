"""`tune validate` through torchtune.config's load_config + validate."""

import textwrap

import pytest

GOOD = textwrap.dedent(
    """\
    optimizer:
      _component_: torch.optim.SGD
      lr: 0.1
      momentum: 0.9
    """
)


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text(GOOD)
    return path


def test_good_config(config, tune):
    assert tune(["validate", str(config)]) == (0, f"Config {config} is well-formed.\n", "")


def test_registered_name_resolves(recipes_root, tune):
    (recipes_root / "configs/tiny/generate.yaml").write_text(GOOD)
    assert tune(["validate", "tiny/generate"])[:2] == (0, "Config tiny/generate is well-formed.\n")


def test_bad_argument_is_reported(config, tune):
    config.write_text(GOOD.replace("momentum", "momentm"))
    code, out, err = tune(["validate", str(config)])
    assert (code, out) == (1, "")
    assert err.startswith(f"tune: error: {config}: config has 1 problem:\n")
    assert "'optimizer.momentm' is not an argument of torch.optim.SGD" in err
    assert "Traceback" not in err


def test_override_applies(config, tune):
    code, _, err = tune(["validate", str(config), "optimizer.nesterov=true", "optimizer.foo=1"])
    assert code == 1
    assert "'optimizer.foo' is not an argument of torch.optim.SGD" in err
    assert "nesterov" not in err


def test_overrides_after_options(recipes_root, config, tune):
    code, _, err = tune(["validate", str(config), "--recipe", "generate", "optimizer.foo=1"])
    assert code == 1 and "'optimizer.foo' is not an argument" in err
    code, _, err = tune(["validate", str(config), "--bogus"])
    assert code == 2 and "unrecognized arguments: --bogus" in err


def test_component_root_must_be_allowed(config, tune):
    config.write_text("thing:\n  _component_: collections.OrderedDict\n")
    code, _, err = tune(["validate", str(config)])
    assert code == 1 and "collections.OrderedDict" in err
    code, _, _ = tune(["validate", str(config), "--allow-component-root", "collections"])
    assert code == 0


def test_bad_yaml(config, tune):
    config.write_text("a: [1, 2\n")
    code, _, err = tune(["validate", str(config)])
    assert code == 1 and err.startswith(f"tune: error: {config}: ")


def test_unknown_config(tune, tmp_path):
    code, _, err = tune(["validate", str(tmp_path / "missing.yaml")])
    assert code == 1
    assert f"unknown config (no such file or registered name) '{tmp_path / 'missing.yaml'}'" in err


def test_registered_config_checks_its_recipes_known_keys(recipes_root, tune):
    (recipes_root / "configs/tiny/generate.yaml").write_text(GOOD + "epochz: 1\n")
    (recipes_root / "generate.py").write_text('KNOWN_KEYS = ("optimizer", "epochs")\n')
    code, _, err = tune(["validate", "tiny/generate"])
    assert code == 1
    assert "unknown key 'epochz'; this recipe does not read it" in err


def test_recipe_flag_for_a_config_path(config, tmp_path, tune):
    recipe = tmp_path / "mine.py"
    recipe.write_text('import os\nKNOWN_KEYS = ["model"]\n')
    code, _, err = tune(["validate", str(config), "--recipe", str(recipe)])
    assert code == 1 and "unknown key 'optimizer'" in err
    recipe.write_text("import os\n")  # no KNOWN_KEYS: top-level keys are not checked
    assert tune(["validate", str(config), "--recipe", str(recipe)])[0] == 0


@pytest.mark.parametrize("source, message", [
    ("KNOWN_KEYS = tuple(['a'])\n", "KNOWN_KEYS must be a literal of strings"),
    ("KNOWN_KEYS = (1, 2)\n", "KNOWN_KEYS must be a literal of strings"),
    ("def broken(:\n", "cannot parse recipe"),
])
def test_bad_known_keys(source, message, config, tmp_path, tune):
    recipe = tmp_path / "mine.py"
    recipe.write_text(source)
    code, _, err = tune(["validate", str(config), "--recipe", str(recipe)])
    assert code == 1 and message in err and len(err.splitlines()) == 1


def test_unknown_recipe_flag(config, tune):
    code, _, err = tune(["validate", str(config), "--recipe", "genrate"])
    assert code == 1 and "unknown recipe 'genrate'; did you mean: generate" in err
