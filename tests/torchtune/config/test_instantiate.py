import pytest
import torch

from torchtune.config import (
    DEFAULT_COMPONENT_ROOTS,
    ComponentNotAllowedError,
    ConfigError,
    DictConfig,
    instantiate,
    load_config,
)


def test_default_roots_are_minimal():
    assert DEFAULT_COMPONENT_ROOTS == ("torchtune", "torch.optim", "torch.nn", "torch.utils.data", "torchao.optim")


def test_torchao_optimizers_are_allowed_but_not_the_rest_of_torchao():
    with pytest.raises(ComponentNotAllowedError, match="outside the allowed"):
        instantiate(DictConfig({"_component_": "torchao.quantization.quantize_"}))


def test_missing_optional_root_names_its_extra(monkeypatch):
    import sys

    for name in [m for m in sys.modules if m == "torchao" or m.startswith("torchao.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "torchao", None)  # import torchao now fails as if absent
    params = [torch.nn.Parameter(torch.zeros(2))]
    with pytest.raises(ConfigError) as info:
        instantiate(DictConfig({"_component_": "torchao.optim.AdamW8bit", "lr": 1e-3}), params)
    assert "torchao.optim.AdamW8bit" in str(info.value)
    assert "pip install 'torchtune[quant]'" in str(info.value)


def test_builds_torch_components_with_args_and_kwargs():
    torch.manual_seed(0)
    cfg = DictConfig(
        {
            "model": {"_component_": "torch.nn.Linear", "in_features": 2, "out_features": 3},
            "optimizer": {"_component_": "torch.optim.SGD", "lr": 0.5},
        }
    )
    model = instantiate(cfg.model, bias=False)
    assert isinstance(model, torch.nn.Linear) and model.bias is None and model.weight.shape == (3, 2)
    opt = instantiate(cfg.optimizer, model.parameters(), momentum=0.9)
    assert isinstance(opt, torch.optim.SGD)
    assert opt.param_groups[0]["lr"] == 0.5 and opt.param_groups[0]["momentum"] == 0.9
    sched = instantiate({"_component_": "torch.optim.lr_scheduler.StepLR", "step_size": 2}, opt)
    assert isinstance(sched, torch.optim.lr_scheduler.StepLR)


def test_nested_components_in_mappings_and_lists(user_pkg):
    cfg = DictConfig(
        {
            "allowed_component_roots": ["tt_userpkg."],
            "tree": {
                "_component_": "tt_userpkg.parts.Tree",
                "left": {"_component_": "tt_userpkg.parts.Leaf", "size": 1},
                "leaves": [{"_component_": "tt_userpkg.parts.Leaf", "size": 2, "scale": 0.5}, 7],
                "options": {"depth": 2, "inner": {"_component_": "tt_userpkg.parts.Leaf", "size": 3}},
            },
        }
    )
    tree = instantiate(cfg.tree, name="t")
    assert type(tree).__name__ == "Tree" and tree.name == "t"
    assert tree.left.size == 1
    assert tree.leaves[0].size == 2 and tree.leaves[0].scale == 0.5 and tree.leaves[1] == 7
    assert tree.options["depth"] == 2 and tree.options["inner"].size == 3


def test_refused_path_names_key_path_and_remedy(write_yaml):
    path = write_yaml("tool:\n  _component_: os.system\n  command: 'true'\n")
    cfg = load_config(path)
    with pytest.raises(
        ComponentNotAllowedError,
        match=rf"{path}:2: config key 'tool._component_' names 'os.system', which is outside the "
        r"allowed component roots \(torchtune, torch.optim, torch.nn, torch.utils.data, torchao.optim\). If you "
        r"trust it, allow it by adding 'allowed_component_roots: \[os.\]' to the config or passing "
        r"'--allow-component-root os.' on the command line",
    ):
        instantiate(cfg.tool)


def test_prefix_lookalike_is_refused():
    with pytest.raises(ComponentNotAllowedError, match="'torch.nnx.Linear', which is outside"):
        instantiate({"_component_": "torch.nnx.Linear"})
    with pytest.raises(ComponentNotAllowedError, match="'torch.distributed.init_process_group'"):
        instantiate({"_component_": "torch.distributed.init_process_group"})


def test_refused_module_is_never_imported(user_pkg, tmp_path):
    with pytest.raises(ComponentNotAllowedError):
        instantiate({"_component_": "tt_userpkg.sideeffect.Thing"})
    assert not (tmp_path / "imported.flag").exists()


def test_widening_with_config_key(user_pkg, write_yaml):
    path = write_yaml("allowed_component_roots: [tt_userpkg.]\nleaf:\n  _component_: tt_userpkg.parts.Leaf\n  size: 4\n")
    assert instantiate(load_config(path).leaf).size == 4


def test_widening_with_argument(user_pkg, write_yaml):
    path = write_yaml("leaf:\n  _component_: tt_userpkg.parts.Leaf\n  size: 4\n")
    with pytest.raises(ComponentNotAllowedError):
        instantiate(load_config(path).leaf)
    cfg = load_config(path, allow_component_roots=["tt_userpkg"])
    assert instantiate(cfg.leaf).size == 4


def test_bad_allowed_roots_value():
    cfg = DictConfig({"allowed_component_roots": 3, "m": {"_component_": "torch.nn.ReLU"}})
    with pytest.raises(ConfigError, match=r"'allowed_component_roots' \(config\) must be a list of module prefixes"):
        instantiate(cfg.m)


@pytest.mark.parametrize(
    "node, message",
    [
        ({"lr": 1}, r"config node '<root>' has no '_component_' key, so there is nothing to instantiate"),
        ({"_component_": 3}, r"^config key '_component_' must be a dotted import path like torch.optim.AdamW, got 3"),
        ({"_component_": "torch"}, r"must be a dotted import path like torch.optim.AdamW, got 'torch'"),
        ({"_component_": "torch.nn.Linaer"}, r"cannot import 'torch.nn.Linaer': 'torch.nn' has no attribute 'Linaer'; did you mean 'Linear'\?"),
        ({"_component_": "torchtune.no_such_module.Thing"}, r"cannot import 'torchtune.no_such_module.Thing': 'torchtune' has no attribute 'no_such_module'"),
    ],
)
def test_bad_component_nodes(node, message):
    with pytest.raises(ConfigError, match=message):
        instantiate(node)


def test_non_mapping_is_rejected():
    with pytest.raises(ConfigError, match="instantiate expects a mapping with '_component_', got list"):
        instantiate([1])


@pytest.mark.parametrize(
    "path, message",
    [
        ("torch.nn.modules.module.functools.partial", r"'torch.nn.modules.module.functools.partial' reaches module 'functools' through an alias"),
        ("torch.nn.modules.module.torch.load", r"reaches module 'torch' through an alias"),
    ],
)
def test_aliases_cannot_escape_the_allowlist(path, message):
    with pytest.raises(ComponentNotAllowedError, match=message):
        instantiate({"_component_": path})


def test_reexported_foreign_callable_is_refused(user_pkg):
    (user_pkg / "reexport.py").write_text("from json import dumps\n")
    cfg = DictConfig({"allowed_component_roots": ["tt_userpkg"], "x": {"_component_": "tt_userpkg.reexport.dumps"}})
    with pytest.raises(
        ComponentNotAllowedError,
        match=r"'tt_userpkg.reexport.dumps' is defined in 'json', outside the allowed component roots; "
        r"name it as json.dumps and allow 'json.' if you trust it",
    ):
        instantiate(cfg.x)


def test_torch_builtins_under_allowed_paths_are_fine():
    x = torch.tensor([-1.0, 0.5, 2.0])
    out = instantiate({"_component_": "torch.nn.functional.gelu"}, x)  # defined in torch._C._nn
    torch.testing.assert_close(out, torch.nn.functional.gelu(x))
