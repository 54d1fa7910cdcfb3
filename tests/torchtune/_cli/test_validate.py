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
