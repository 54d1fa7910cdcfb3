"""Build objects from ``_component_`` nodes, only from allowed import roots."""

import importlib
import pkgutil
from types import ModuleType
from collections.abc import Iterable, Mapping
from typing import Any, Callable

from torchtune.config._dict_config import DictConfig, did_you_mean
from torchtune.config._errors import ComponentNotAllowedError, ConfigError

#: Import roots whose callables a config may name by default. ``torchtune`` provides the
#: models, datasets, tokenizers, checkpointers and loggers; the torch modules cover the
#: optimizers, LR schedulers, loss functions and data-loading pieces that recipes build.
#: Anything else (``torch.distributed``, ``os``, ``builtins``, user packages) must be
#: allowed explicitly with the ``allowed_component_roots`` config key or
#: ``--allow-component-root`` on the command line.
DEFAULT_COMPONENT_ROOTS: tuple[str, ...] = (
    "torchtune",
    "torch.optim",  # includes torch.optim.lr_scheduler
    "torch.nn",
    "torch.utils.data",
    "torchao.optim",  # 8-bit / 4-bit AdamW, with the 'quant' extra (pip install 'torchtune[quant]')
)

#: Optional distributions a default root lives in, and the torchtune extra that installs each.
OPTIONAL_ROOT_EXTRAS: dict[str, str] = {"torchao": "quant"}

#: Top-level config key that widens the allowlist, e.g. ``allowed_component_roots: [mypkg.]``.
ALLOWED_ROOTS_KEY = "allowed_component_roots"


def allowed_roots(node: DictConfig) -> tuple[str, ...]:
    """Return the import roots allowed for ``node``'s config.

    The defaults (:data:`DEFAULT_COMPONENT_ROOTS`), plus the top-level
    ``allowed_component_roots`` list, plus roots given to
    :func:`torchtune.config.load_config` / ``--allow-component-root``.
    """
    root = node.root()
    extra = root.get(ALLOWED_ROOTS_KEY) or []
    if isinstance(extra, str):
        extra = [extra]
    if not isinstance(extra, list) or not all(isinstance(r, str) for r in extra):
        raise ConfigError(
            f"'{ALLOWED_ROOTS_KEY}' ({root.location(ALLOWED_ROOTS_KEY) or 'config'}) must be a "
            f"list of module prefixes such as [mypkg.], got {extra!r}"
        )
    roots = [*DEFAULT_COMPONENT_ROOTS, *extra, *root._extra_roots]
    return tuple(dict.fromkeys(r.strip().rstrip(".") for r in roots if r.strip().rstrip(".")))


def is_allowed(path: str, roots: Iterable[str]) -> bool:
    """Whether ``path`` equals a root or lies below it (``torch.nn`` allows ``torch.nn.Linear``
    but not ``torch.nnx``)."""
    return any(path == r or path.startswith(r + ".") for r in roots)


def check_allowed(node: DictConfig) -> str:
    """Return ``node._component_`` after checking it is a dotted path under an allowed root.

    Raises:
        ConfigError: when ``_component_`` is not a dotted path string.
        ComponentNotAllowedError: when the path is outside the allowed roots.
    """
    path = node["_component_"]
    if not isinstance(path, str) or "." not in path.strip(".") or " " in path:
        raise ConfigError(f"{_prefix(node)} must be a dotted import path like torch.optim.AdamW, got {path!r}")
    roots = allowed_roots(node)
    if not is_allowed(path, roots):
        top = path.split(".")[0]
        raise ComponentNotAllowedError(
            f"{_prefix(node)} names '{path}', which is outside the allowed "
            f"component roots ({', '.join(roots)}). If you trust it, allow it by adding "
            f"'{ALLOWED_ROOTS_KEY}: [{top}.]' to the config or passing "
            f"'--allow-component-root {top}.' on the command line"
        )
    return path


def locate(path: str, roots: Iterable[str] = DEFAULT_COMPONENT_ROOTS) -> Callable[..., Any]:
    """Import the object named by a dotted ``path`` (``pkg.module.attr.attr``).

    The caller must check ``path`` against the allowlist first: importing runs module code.
    Attribute access may not leave the allowlist through aliases: a module reached by
    attribute must really live at that path (``torch.nn.modules.module.os`` is refused),
    and the object's ``__module__`` must be under ``roots`` or inside ``torch``
    (``from os import system`` re-exported by an allowed module is refused).

    Args:
        path (str): the dotted path.
        roots (Iterable[str]): the allowed import roots. Default: the defaults.

    Raises:
        ConfigError: when no prefix of ``path`` imports or an attribute is missing.
        ComponentNotAllowedError: when the path escapes the allowed roots through an alias.
    """
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        module_name = ".".join(parts[:i])
        try:
            obj: Any = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name is not None and module_name.startswith(e.name) and i > 1:
                continue  # the missing module is (a prefix of) our guess: try shorter
            if e.name is not None and e.name.split(".")[0] in OPTIONAL_ROOT_EXTRAS:
                top = e.name.split(".")[0]
                extra = OPTIONAL_ROOT_EXTRAS[top]
                raise ConfigError(f"cannot import '{path}': '{top}' is not installed; it comes with the "
                                  f"'{extra}' extra: pip install 'torchtune[{extra}]'") from e
            raise ConfigError(f"cannot import '{path}': {e}") from e
        for j in range(i, len(parts)):
            obj = _get_attribute(obj, parts[j], path)
            if isinstance(obj, ModuleType) and obj.__name__ != ".".join(parts[: j + 1]):
                raise ComponentNotAllowedError(
                    f"'{path}' reaches module '{obj.__name__}' through an alias; name it directly "
                    "(and allow its root if you trust it)"
                )
        home = getattr(obj, "__module__", None)
        if isinstance(home, str) and not is_allowed(home, [*roots, "torch"]):
            raise ComponentNotAllowedError(
                f"'{path}' is defined in '{home}', outside the allowed component roots; name it "
                f"as {home}.{getattr(obj, '__qualname__', parts[-1])} and allow '{home.split('.')[0]}.' if you trust it"
            )
        return obj
    raise ConfigError(f"cannot import '{path}': no module named '{parts[0]}'")


def resolve_component(node: DictConfig) -> Callable[..., Any]:
    """Check ``node._component_`` against the allowlist, then import it.

    Errors are prefixed with the ``file:line`` of ``_component_`` and its config key.

    Raises:
        ConfigError: when the path is malformed or cannot be imported.
        ComponentNotAllowedError: when the path is outside the allowed roots.
    """
    path = check_allowed(node)
    try:
        return locate(path, allowed_roots(node))
    except ConfigError as e:
        raise type(e)(f"{_prefix(node)}: {e}") from None


def _prefix(node: DictConfig) -> str:
    """``"file:line: config key 'a._component_'"`` (without location when unknown)."""
    key = f"config key '{node.full_key('_component_')}'"
    loc = node.location("_component_")
    return f"{loc}: {key}" if loc is not None else key


def _get_attribute(obj: Any, attr: str, path: str) -> Any:
    if not hasattr(obj, attr):
        public = [n for n in dir(obj) if not n.startswith("_")]
        if hasattr(obj, "__path__"):  # a package: also its not-yet-imported modules
            public += [m.name for m in pkgutil.iter_modules(obj.__path__) if not m.name.startswith("_")]
        raise ConfigError(
            f"cannot import '{path}': '{getattr(obj, '__name__', obj)}' has no attribute "
            f"'{attr}'{did_you_mean(attr, public)}"
        )
    return getattr(obj, attr)


def instantiate(config: DictConfig | Mapping[str, Any], *args: Any, **kwargs: Any) -> Any:
    """Build the object described by a ``_component_`` node.

    Nested ``_component_`` nodes (also inside lists) are built first and passed as
    arguments; other nested mappings are passed as plain dicts. ``args`` are passed
    positionally before the node's keyword arguments; ``kwargs`` override node values.
    Only callables under the allowed import roots are built (see
    :data:`DEFAULT_COMPONENT_ROOTS`).

    Args:
        config (DictConfig | Mapping[str, Any]): a node with a ``_component_`` key.
        *args (Any): positional arguments, e.g. ``model.parameters()`` for an optimizer.
        **kwargs (Any): extra or overriding keyword arguments.

    Returns:
        Any: the built object.

    Raises:
        ConfigError: when ``config`` has no ``_component_`` or the path cannot be imported, or
            when building it raises ``FileNotFoundError`` (a missing file the config names) or
            ``ModuleNotFoundError`` (a missing optional extra).
        ComponentNotAllowedError: when a path is outside the allowed roots.

    Example:
        >>> opt = instantiate(cfg.optimizer, model.parameters(), lr=1e-3)
    """
    if not isinstance(config, DictConfig):
        if not isinstance(config, Mapping):
            raise ConfigError(f"instantiate expects a mapping with '_component_', got {type(config).__name__}")
        config = DictConfig(config)
    if "_component_" not in config:
        name = config.full_key() or "<root>"
        raise ConfigError(f"config node '{name}' has no '_component_' key, so there is nothing to instantiate")
    target = resolve_component(config)
    node_kwargs = {k: _build(v) for k, v in config.items() if k != "_component_"}
    node_kwargs.update(kwargs)
    try:
        return target(*args, **node_kwargs)
    except (FileNotFoundError, ModuleNotFoundError) as e:
        # a path in the config that does not exist, or an optional extra that is not installed:
        # the user's to fix, so said in one line with where the node is
        raise ConfigError(f"{_prefix(config)}: {e}") from e


def _build(value: Any) -> Any:
    if isinstance(value, DictConfig):
        if "_component_" in value:
            return instantiate(value)
        return {k: _build(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_build(v) for v in value]
    return value
