"""Check every component's arguments against its signature without building anything."""

import inspect
from collections.abc import Collection
from typing import Any, Callable

from torchtune.config._dict_config import DictConfig, did_you_mean
from torchtune.config._errors import ConfigError, ConfigValidationError
from torchtune.config._instantiate import resolve_component


def validate(cfg: DictConfig, *, known_keys: Collection[str] | None = None) -> None:
    """Check a config and raise one error listing every problem found.

    For each ``_component_`` node (at any depth, also inside lists) this checks that the
    path is allowed and importable, and that every other key is a parameter of the
    callable's signature (any key is accepted when it takes ``**kwargs``). Nothing is
    built. Missing required arguments are not reported: recipes pass some positionally
    (an optimizer's parameters, a dataset's tokenizer).

    Args:
        cfg (DictConfig): the (resolved) config.
        known_keys (Collection[str] | None): the top-level keys a recipe reads; when given,
            other top-level keys are reported too. Default: None (not checked).

    Raises:
        ConfigValidationError: listing each problem with the YAML ``file:line`` of the bad
            key and the closest valid name.
    """
    problems: list[str] = []
    if known_keys is not None:
        allowed = set(known_keys) | {"allowed_component_roots"}
        for key in cfg:
            if key not in allowed:
                problems.append(
                    f"{cfg.location(key) or 'config'}: unknown key '{key}'; this recipe does "
                    f"not read it{did_you_mean(key, sorted(allowed))}"
                )
    _walk(cfg, problems)
    if problems:
        raise ConfigValidationError(problems)


def _walk(value: Any, problems: list[str]) -> None:
    if isinstance(value, DictConfig):
        if "_component_" in value:
            _check_component(value, problems)
        for child in value.values():
            _walk(child, problems)
    elif isinstance(value, list):
        for child in value:
            _walk(child, problems)


def _check_component(node: DictConfig, problems: list[str]) -> None:
    try:
        target = resolve_component(node)
    except ConfigError as e:
        problems.append(str(e))
        return
    params = _parameters(target)
    if params is None:
        return  # no inspectable signature (some builtins): nothing to check
    names, takes_kwargs = params
    if takes_kwargs:
        return
    path = node["_component_"]
    for key in node:
        if key != "_component_" and key not in names:
            problems.append(
                f"{node.location(key) or 'config'}: '{node.full_key(key)}' is not an argument "
                f"of {path}{did_you_mean(key, names)}"
            )


def _parameters(target: Callable[..., Any]) -> tuple[list[str], bool] | None:
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return None
    names = [
        p.name
        for p in sig.parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    return names, takes_kwargs
