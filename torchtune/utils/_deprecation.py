"""Old public names and call forms kept for one release, with a warning that names the new one."""

import functools
import importlib
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


def deprecated_aliases(module: str, moved: Mapping[str, str]) -> Callable[[str], Any]:
    """Make a module ``__getattr__`` that resolves old names to their new homes, warning once per use.

    Use it as ``__getattr__ = deprecated_aliases(__name__, {"Old": "torchtune.new.place.New"})``
    in the package that used to publish ``Old``. The old names stay out of ``__all__``.

    Args:
        module (str): the package publishing the aliases (pass ``__name__``).
        moved (Mapping[str, str]): old name -> dotted path of the object now.

    Returns:
        Callable[[str], Any]: the module-level ``__getattr__``.
    """

    def __getattr__(name: str) -> Any:
        if name not in moved:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        target = moved[name]
        path, _, attr = target.rpartition(".")
        if attr.startswith("_"):  # a private module: its names are imported from its package
            advice = f"import its names from {path}"
        elif any(part.startswith("_") for part in path.split(".")):  # an internal helper now
            advice = "it is internal now (no public replacement)"
        else:
            advice = f"use {target}"
        warnings.warn(
            f"{module}.{name} is deprecated and will be removed in the next release; {advice}",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(path), attr)

    return __getattr__


def deprecated_arguments(
    *, positional: Sequence[str] = (), renamed: Mapping[str, str] | None = None
) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Keep the old call forms of a function working for one release, warning with the new form.

    For a function whose arguments became keyword-only (``positional`` lists the order in which
    it used to take them) or were renamed (``renamed`` maps each old keyword to the new one).
    The wrapped function shows the new signature (``inspect.signature`` follows
    ``__wrapped__``); each old form raises a ``DeprecationWarning`` naming the new spelling.

    Args:
        positional (Sequence[str]): the parameters the function took positionally before, in
            their old order and with their old names. Default: () (no positional arguments).
        renamed (Mapping[str, str] | None): old keyword -> new keyword. Default: None.

    Returns:
        Callable[[Callable[..., T]], Callable[..., T]]: the decorator.
    """
    renamed = dict(renamed or {})

    def decorate(fn: Callable[..., T]) -> Callable[..., T]:
        name = fn.__name__

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> T:
            if len(args) > len(positional):
                raise TypeError(f"{name}() takes keyword arguments only; got {len(args)} positional arguments")
            if args:
                names = [renamed.get(old, old) for old in positional[: len(args)]]
                given = [n for n in names if n in kwargs]
                if given:
                    raise TypeError(f"{name}() got multiple values for argument {given[0]!r}")
                warnings.warn(
                    f"{name}() takes keyword arguments only; passing {', '.join(names)} by position is deprecated "
                    f"and will stop working in the next release: call {name}({', '.join(f'{n}=...' for n in names)})",
                    DeprecationWarning,
                    stacklevel=2,
                )
                kwargs.update(zip(names, args))
            for old, new in renamed.items():
                if old not in kwargs:
                    continue
                if new in kwargs:
                    raise TypeError(f"{name}() got both {old}= (deprecated) and {new}=; pass only {new}=")
                warnings.warn(
                    f"{name}({old}=...) is deprecated and will be removed in the next release; use {new}=...",
                    DeprecationWarning,
                    stacklevel=2,
                )
                kwargs[new] = kwargs.pop(old)
            return fn(**kwargs)

        return wrapper

    return decorate
