"""Configs: YAML with source locations, overrides, interpolation, safe instantiation.

A recipe reads its config with :func:`parse_args` (or the :func:`parse` decorator)::

    cfg = config.parse_args(["--config", "lora.yaml", "optimizer.lr=1e-4", "~profiler"])
    model = config.instantiate(cfg.model)
    optimizer = config.instantiate(cfg.optimizer, model.parameters())

Only callables under :data:`DEFAULT_COMPONENT_ROOTS` (or roots the user allows with the
``allowed_component_roots`` key / ``--allow-component-root``) are built.
"""

from torchtune.config._dict_config import DictConfig
from torchtune.config._errors import (
    ComponentNotAllowedError,
    ConfigError,
    ConfigValidationError,
    Location,
)
from torchtune.config._instantiate import (
    ALLOWED_ROOTS_KEY,
    DEFAULT_COMPONENT_ROOTS,
    instantiate,
)
from torchtune.config._interpolation import resolve
from torchtune.config._overrides import apply_overrides
from torchtune.config._parse import load_config, parse, parse_args
from torchtune.config._validate import validate
from torchtune.config._yaml import load_yaml

__all__ = [
    "ALLOWED_ROOTS_KEY",
    "ComponentNotAllowedError",
    "ConfigError",
    "ConfigValidationError",
    "DEFAULT_COMPONENT_ROOTS",
    "DictConfig",
    "Location",
    "apply_overrides",
    "instantiate",
    "load_config",
    "load_yaml",
    "parse",
    "parse_args",
    "resolve",
    "validate",
]
