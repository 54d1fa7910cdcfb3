"""Signatures of functions that hand their ``**kwargs`` on to another function."""

import inspect
from collections.abc import Callable, Collection
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def forwards_kwargs(target: Callable[..., Any], *, exclude: Collection[str] = ()) -> Callable[[F], F]:
    """Declare that a function passes its ``**kwargs`` on to ``target``.

    A family builder sets its own defaults and passes every other option to
    :func:`~torchtune.models.build_decoder`; restating that function's arguments in each builder
    would copy them by hand. With this decorator the builder's signature (what
    ``inspect.signature``, ``help()`` and config validation see) is its own parameters followed by
    the keyword parameters of ``target`` that it does not name itself: keyword-only, with
    ``target``'s annotations and defaults. The function itself is not wrapped or changed.

    Example::

        @forwards_kwargs(build_decoder)
        def llama3(*, vocab_size: int, rope_base: float = 500000.0, **options: Any) -> TransformerDecoder:
            return build_decoder(vocab_size=vocab_size, rope_base=rope_base, **options)

    Args:
        target (Callable[..., Any]): the function the ``**kwargs`` go to (its own ``__signature__``
            is followed, so chains of forwarding functions show every argument).
        exclude (Collection[str]): parameters of ``target`` that the function passes itself and a
            caller must not give. Default: () (none).

    Returns:
        Callable[[F], F]: the decorator; it returns the function it was given.

    Raises:
        TypeError: when the decorated function takes no ``**kwargs``, or ``exclude`` names a
            parameter ``target`` does not have.
    """
    theirs = list(inspect.signature(target).parameters.values())
    unknown = sorted(set(exclude) - {p.name for p in theirs})
    if unknown:
        raise TypeError(f"exclude={unknown} are not parameters of {target.__qualname__}")

    def decorate(fn: F) -> F:
        own = inspect.signature(fn)
        if not any(p.kind is p.VAR_KEYWORD for p in own.parameters.values()):
            raise TypeError(f"{fn.__qualname__} takes no **kwargs to forward to {target.__qualname__}")
        kept = [p for p in own.parameters.values() if p.kind is not p.VAR_KEYWORD]
        taken = {p.name for p in kept} | set(exclude)
        forwarded = [
            p.replace(kind=p.KEYWORD_ONLY)
            for p in theirs
            if p.name not in taken and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ]
        rest = [p for p in theirs if p.kind is p.VAR_KEYWORD]  # target takes **kwargs as well
        fn.__signature__ = own.replace(parameters=kept + forwarded + rest)  # type: ignore[attr-defined]
        return fn

    return decorate
