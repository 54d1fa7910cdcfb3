"""Load YAML into a DictConfig, keeping the file and line of every key."""

import re
from pathlib import Path
from typing import Any

import yaml

from torchtune.config._dict_config import DictConfig
from torchtune.config._errors import ConfigError, Location

# YAML 1.1 (PyYAML) reads "1e-4" as a string because its float pattern needs a dot.
# Learning rates are written that way all the time, so we accept a float without a dot.
_FLOAT_RE = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)


class _Loader(yaml.SafeLoader):
    """SafeLoader with a float resolver that also accepts ``1e-4``."""


_Loader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:float"]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_RE, list("-+0123456789."))


def parse_yaml_value(text: str) -> Any:
    """Parse one command-line value as YAML (scalar, ``[list]`` or ``{mapping}``).

    Args:
        text (str): the text after ``=`` in an override.

    Returns:
        Any: the parsed value; an empty string stays ``""``.

    Raises:
        ConfigError: when ``text`` is not valid YAML.
    """
    if text == "":
        return ""
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as e:
        raise ConfigError(f"value {text!r} is not valid YAML: {_yaml_problem(e)}") from None


def load_yaml(path: str | Path) -> DictConfig:
    """Read a YAML mapping from ``path`` into a :class:`DictConfig` with key locations.

    Args:
        path (str | Path): the YAML file.

    Returns:
        DictConfig: the config; ``cfg.location(key)`` gives ``file:line`` of each key.

    Raises:
        FileNotFoundError: when ``path`` does not exist.
        ConfigError: on invalid YAML, a top level that is not a mapping, duplicate keys or
            non-string keys; the message names ``file:line``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    with open(path, encoding="utf-8") as f:
        loader = _Loader(f)
        loader.name = str(path)
        try:
            node = loader.get_single_node()
            if node is None:
                return DictConfig()
            if not isinstance(node, yaml.MappingNode):
                raise ConfigError(
                    f"{_loc(node, str(path))}: the top level of a config must be a mapping "
                    f"of keys to values, not a {_kind(node)}"
                )
            return _build_mapping(loader, node, str(path))
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: invalid YAML: {_yaml_problem(e)}") from None
        finally:
            loader.dispose()


def _build_mapping(loader: _Loader, node: yaml.MappingNode, source: str, prefix: str = "") -> DictConfig:
    _check_tag(loader, node, "tag:yaml.org,2002:map")
    n_merged = getattr(node, "_tt_n_merged", None)  # set when an aliased node is built again
    if n_merged is None:
        n_own = sum(k.tag != "tag:yaml.org,2002:merge" for k, _ in node.value)
        loader.flatten_mapping(node)  # resolves "<<: *anchor": merged entries come first
        n_merged = node._tt_n_merged = len(node.value) - n_own
    out = DictConfig()
    own_keys: set[str] = set()  # keys written in this mapping; merged-in ones may be overridden
    for i, (key_node, value_node) in enumerate(node.value):
        key = loader.construct_object(key_node, deep=True)
        where = _loc(key_node, source)
        if not isinstance(key, str):
            raise ConfigError(f"{where}: config keys must be strings, got {key!r}")
        if i >= n_merged:
            if key in own_keys:
                raise ConfigError(f"{where}: duplicate key '{prefix}{key}' (first at {out.location(key)})")
            own_keys.add(key)
        out[key] = _build_value(loader, value_node, source, f"{prefix}{key}.")
        out.set_location(key, Location(source, key_node.start_mark.line + 1))
    return out


def _build_value(loader: _Loader, node: yaml.Node, source: str, prefix: str) -> Any:
    if isinstance(node, yaml.MappingNode):
        return _build_mapping(loader, node, source, prefix)
    if isinstance(node, yaml.SequenceNode):
        _check_tag(loader, node, "tag:yaml.org,2002:seq")
        return [_build_value(loader, item, source, f"{prefix}{i}.") for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def _check_tag(loader: _Loader, node: yaml.Node, default: str) -> None:
    if node.tag != default:
        loader.construct_object(node, deep=True)  # SafeLoader raises on unknown tags


def _loc(node: yaml.Node, source: str) -> Location:
    return Location(source, node.start_mark.line + 1)


def _kind(node: yaml.Node) -> str:
    return "list" if isinstance(node, yaml.SequenceNode) else "scalar"


def _yaml_problem(e: yaml.YAMLError) -> str:
    if isinstance(e, yaml.MarkedYAMLError) and e.problem_mark is not None:
        return f"{e.problem} (line {e.problem_mark.line + 1}, column {e.problem_mark.column + 1})"
    return str(e)
