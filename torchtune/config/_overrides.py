"""Command-line overrides: ``key=value``, ``a.b=value``, ``~key`` and component swaps."""

import re
from collections.abc import Sequence
from typing import Any

from torchtune.config._dict_config import DictConfig, did_you_mean
from torchtune.config._errors import ConfigError, Location
from torchtune.config._yaml import parse_yaml_value

_KEY = re.compile(r"^[A-Za-z_][\w-]*(\.[\w-]+)*$")
_COMPONENT_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$")


def apply_overrides(cfg: DictConfig, overrides: Sequence[str]) -> DictConfig:
    """Apply command-line overrides to ``cfg`` in place, in order, and return it.

    Forms:
        - ``key=value``: ``value`` is parsed as YAML (``1e-4``, ``true``, ``[1, 2]``,
          ``{a: 1}``); everything after the first ``=`` is the value, so it may contain ``=``.
          Missing intermediate mappings are created.
        - ``a.b.c=value``: dotted keys walk nested mappings; integers index lists.
        - ``~key`` / ``~a.b``: delete an existing key.
        - ``model=pkg.module.builder``: when ``model`` is a mapping with ``_component_`` and
          the value is a dotted path, only ``model._component_`` is replaced; the other
          arguments stay.

    Args:
        cfg (DictConfig): the config to modify.
        overrides (Sequence[str]): the override strings.

    Returns:
        DictConfig: ``cfg``.

    Raises:
        ConfigError: for a malformed override, deletion of a missing key, or a key whose
            parent is not a mapping.
    """
    for text in overrides:
        if text.startswith("~"):
            _delete(cfg, text[1:], text)
            continue
        key, sep, raw = text.partition("=")
        if not sep:
            raise ConfigError(
                f"override {text!r} is not of the form key=value (or ~key to delete a key)"
            )
        _check_key(key, text)
        _set(cfg, key, parse_yaml_value(raw), text)
    return cfg


def _origin(text: str) -> Location:
    """The location recorded for keys set by the override ``text``."""
    return Location(f"command-line override '{text}'")


def _check_key(key: str, text: str) -> None:
    if not _KEY.match(key):
        raise ConfigError(
            f"override {text!r}: {key!r} is not a valid key; keys are dotted names "
            "like optimizer.lr"
        )


def _parent_of(cfg: DictConfig, key: str, text: str, create: bool) -> tuple[Any, str]:
    *parents, last = key.split(".")
    node: Any = cfg
    walked: list[str] = []
    for part in parents:
        walked.append(part)
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, DictConfig) and part in node:
            node = node[part]
        elif isinstance(node, DictConfig) and create:
            node[part] = {}
            node.set_location(part, _origin(text))
            node = node[part]
        else:
            hint = did_you_mean(part, list(node)) if isinstance(node, DictConfig) else ""
            raise ConfigError(f"override {text!r}: config has no key '{'.'.join(walked)}'{hint}")
        if not isinstance(node, (DictConfig, list)):
            raise ConfigError(
                f"override {text!r}: '{'.'.join(walked)}' holds a {type(node).__name__} "
                f"({node!r}), not a mapping, so it has no key '{key}'"
            )
    return node, last


def _set(cfg: DictConfig, key: str, value: Any, text: str) -> None:
    parent, last = _parent_of(cfg, key, text, create=True)
    if isinstance(parent, list):
        if not (last.isdigit() and int(last) < len(parent)):
            raise ConfigError(f"override {text!r}: index {last} is out of range for a list of {len(parent)}")
        parent[int(last)] = DictConfig(value) if isinstance(value, dict) else value
        return
    current = parent.get(last)
    if (
        isinstance(current, DictConfig)
        and "_component_" in current
        and isinstance(value, str)
        and _COMPONENT_PATH.match(value)
    ):
        current["_component_"] = value
        current.set_location("_component_", _origin(text))
        return
    parent[last] = value
    parent.set_location(last, _origin(text))


def _delete(cfg: DictConfig, key: str, text: str) -> None:
    if "=" in key:
        raise ConfigError(f"override {text!r}: deletion takes no value; write ~{key.partition('=')[0]}")
    _check_key(key, text)
    parent, last = _parent_of(cfg, key, text, create=False)
    if isinstance(parent, list) or last not in parent:
        hint = did_you_mean(last, list(parent)) if isinstance(parent, DictConfig) else ""
        raise ConfigError(f"override {text!r}: cannot delete '{key}', the config has no such key{hint}")
    del parent[last]
