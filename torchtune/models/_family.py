"""Family builders and presets derived from :func:`build_decoder` without repeating it.

A family builder is :func:`build_decoder` with the family's fixed choices as new defaults
(e.g. Qwen2.5's ``qkv_bias=True``); a preset is a family builder with literal sizes.
"""

import inspect
from collections.abc import Callable
from typing import Any

from torchtune.models._decoder_builder import build_decoder
from torchtune.modules import TransformerDecoder


def _name(fn: Callable[..., Any], name: str, module: str, doc: str) -> None:
    fn.__name__ = fn.__qualname__ = name
    fn.__module__ = module
    fn.__doc__ = doc


def decoder_family(name: str, module: str, summary: str, **defaults: Any) -> Callable[..., TransformerDecoder]:
    """Make a family builder: :func:`build_decoder` with other defaults.

    Args:
        name (str): the builder's name, e.g. ``"qwen2_5"``.
        module (str): the module that publishes it (pass ``__name__``).
        summary (str): first line of its docstring.
        **defaults (Any): the family's defaults for :func:`build_decoder` arguments.

    Returns:
        Callable[..., TransformerDecoder]: keyword-only builder whose ``inspect.signature``
        shows the new defaults.

    Raises:
        TypeError: when a default names no :func:`build_decoder` argument.
    """
    signature = inspect.signature(build_decoder)
    unknown = sorted(set(defaults) - set(signature.parameters))
    if unknown:
        raise TypeError(f"{name}: {unknown} are not build_decoder arguments")
    params = [p.replace(default=defaults.get(p.name, p.default)) for p in signature.parameters.values()]

    def build(**kwargs: Any) -> TransformerDecoder:
        return build_decoder(**{**defaults, **kwargs})

    shown = ", ".join(f"{k}={v!r}" for k, v in defaults.items())
    _name(build, name, module, f"{summary}\n\n:func:`~torchtune.models.build_decoder` with defaults {shown}; "
          "see it for the arguments.\n\nReturns:\n    TransformerDecoder: the model.\n")
    build.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    return build


def preset(build: Callable[..., TransformerDecoder], sizes: dict[str, Any], name: str, module: str,
           summary: str) -> Callable[[], TransformerDecoder]:
    """Make a zero-argument preset ``name()`` that calls ``build(**sizes)``.

    Args:
        build (Callable[..., TransformerDecoder]): the family builder.
        sizes (dict[str, Any]): the literal sizes of the published config.
        name (str): the preset's name, e.g. ``"llama3_2_1b"``.
        module (str): the module that publishes it (pass ``__name__``).
        summary (str): first line of its docstring.

    Returns:
        Callable[[], TransformerDecoder]: the preset.
    """

    def build_preset() -> TransformerDecoder:
        return build(**sizes)

    shown = ", ".join(f"{k}={v!r}" for k, v in sizes.items())
    _name(build_preset, name, module, f"{summary}\n\n``{build.__name__}({shown})``\n\n"
          "Returns:\n    TransformerDecoder: the model (random weights).\n")
    return build_preset
