"""Entry points for recipes: load a config file, apply overrides, resolve, validate."""

import functools
import sys
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, Callable

from torchtune.config._dict_config import DictConfig
from torchtune.config._errors import ConfigError
from torchtune.config._interpolation import resolve
from torchtune.config._overrides import apply_overrides
from torchtune.config._validate import validate
from torchtune.config._yaml import load_yaml

USAGE = "usage: --config PATH [--allow-component-root ROOT ...] [key=value | ~key ...]"


def load_config(
    path: str | Path,
    overrides: Sequence[str] = (),
    *,
    allow_component_roots: Sequence[str] | None = (),
    variables: Mapping[str, Any] | None = None,
) -> DictConfig:
    """Load a YAML config, apply overrides and resolve ``${...}`` references.

    Args:
        path (str | Path): the YAML file.
        overrides (Sequence[str]): ``key=value`` / ``~key`` strings, applied in order.
            Default: ().
        allow_component_roots (Sequence[str] | None): import roots allowed for
            ``_component_`` in addition to the defaults and the config's
            ``allowed_component_roots``; None means none. Default: ().
        variables (Mapping[str, Any] | None): values for ``${name}`` references to names the
            config does not set, e.g. ``{"recipes_root": str(torchtune.recipes_root())}``.
            Default: None.

    Returns:
        DictConfig: the resolved config.

    Raises:
        FileNotFoundError: when ``path`` does not exist.
        ConfigError: on bad YAML, a bad override or a bad interpolation.
    """
    cfg = load_yaml(path)
    apply_overrides(cfg, overrides)
    object.__setattr__(cfg, "_extra_roots", tuple(allow_component_roots or ()))
    return resolve(cfg, variables)


def parse_args(argv: Sequence[str] | None = None, *, variables: Mapping[str, Any] | None = None) -> DictConfig:
    """Read ``--config PATH [--allow-component-root ROOT]... [key=value | ~key]...``.

    Args:
        argv (Sequence[str] | None): the arguments; default ``sys.argv[1:]``.
        variables (Mapping[str, Any] | None): see :func:`load_config`. Default: None.

    Returns:
        DictConfig: the resolved config (see :func:`load_config`).

    Raises:
        ConfigError: when ``--config`` is missing or repeated, a flag is unknown or lacks
            its value, or an override is malformed.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    config_path: str | None = None
    roots: list[str] = []
    overrides: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        flag, eq, inline = arg.partition("=")
        if flag in ("--config", "--allow-component-root"):
            if eq:
                value = inline
            elif i + 1 < len(args):
                i += 1
                value = args[i]
            else:
                raise ConfigError(f"{flag} needs a value; {USAGE}")
            if flag == "--allow-component-root":
                roots.append(value)
            elif config_path is not None:
                raise ConfigError(f"--config given twice ({config_path!r} and {value!r}); {USAGE}")
            else:
                config_path = value
        elif arg.startswith("-"):
            raise ConfigError(f"unknown option {arg!r}; {USAGE}")
        else:
            overrides.append(arg)
        i += 1
    if config_path is None:
        raise ConfigError(f"missing --config; {USAGE}")
    return load_config(config_path, overrides, allow_component_roots=roots, variables=variables)


def parse(
    recipe_main: Callable[[DictConfig], Any] | None = None,
    *,
    known_keys: Collection[str] | None = None,
    variables: Mapping[str, Any] | None = None,
) -> Any:
    """Decorate a recipe's ``main(cfg)`` so that ``main()`` / ``main(argv)`` parses the CLI.

    Usable as ``@parse`` or ``@parse(known_keys={...})``. With ``known_keys`` the config is
    also checked with :func:`validate` (unknown top-level keys, component arguments)
    before the recipe runs.

    Args:
        recipe_main (Callable[[DictConfig], Any] | None): the recipe entry point.
        known_keys (Collection[str] | None): top-level keys the recipe reads. Default: None.
        variables (Mapping[str, Any] | None): see :func:`load_config`. Default: None.

    Returns:
        Callable[[Sequence[str] | None], Any]: ``main(argv=None)``.
    """

    def decorate(fn: Callable[[DictConfig], Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def main(argv: Sequence[str] | None = None) -> Any:
            cfg = parse_args(argv, variables=variables)
            if known_keys is not None:
                validate(cfg, known_keys=known_keys)
            return fn(cfg)

        return main

    return decorate(recipe_main) if recipe_main is not None else decorate
