"""``${a.b}`` interpolation: resolve references to other keys, detecting cycles."""

import re
import warnings
from collections.abc import Mapping
from typing import Any

from torchtune.config._dict_config import DictConfig, did_you_mean
from torchtune.config._errors import ConfigError, Location

_REF = re.compile(r"\$\{([^${}]*)\}")
_KEY = re.compile(r"^[A-Za-z_][\w]*(\.[\w]+)*$")


def _deprecated_recipes_root() -> str:
    """``${recipes_root}`` for callers that do not supply it (deprecated: one release)."""
    warnings.warn(
        "${recipes_root} was not supplied: pass variables={'recipes_root': str(torchtune.recipes_root())} "
        "to parse_args/load_config; the automatic value will be removed in the next release",
        DeprecationWarning,
        stacklevel=2,
    )
    import torchtune

    return str(torchtune.recipes_root())


def location_of(root: DictConfig, dotted_key: str) -> Location | None:
    """Return the recorded location of ``dotted_key`` in ``root``, if any."""
    parent_key, _, last = dotted_key.rpartition(".")
    parent = root.select(parent_key, None) if parent_key else root
    return parent.location(last) if isinstance(parent, DictConfig) else None


def resolve(cfg: DictConfig, variables: Mapping[str, Any] | None = None) -> DictConfig:
    """Return a copy of ``cfg`` with every ``${dotted.key}`` reference replaced.

    A string that is exactly one reference takes the referenced value with its type
    (``batch_size: ${train.batch_size}`` stays an int; a mapping is copied). References
    inside longer strings are formatted with ``str`` (``${output_dir}/logs``). Keys are
    absolute dotted paths from the top of the config; integers index lists.
    ``variables`` are values for ``${name}`` references to names the config does not set, e.g.
    ``{"recipes_root": str(torchtune.recipes_root())}``, which the recipes and ``tune`` supply.

    Args:
        cfg (DictConfig): the config to resolve (not modified).
        variables (Mapping[str, Any] | None): values of top-level names the config does not
            set. Default None.

    Returns:
        DictConfig: a resolved copy with the same key locations and allowed roots.

    Raises:
        ConfigError: for a reference to a missing key (with the closest existing key),
            a malformed reference, or a cycle (``a -> b -> a``).
    """
    resolver = _Resolver(cfg, dict(variables or {}))
    out = resolver.resolve_path("")
    object.__setattr__(out, "_extra_roots", cfg._extra_roots)
    return out


class _Resolver:
    def __init__(self, root: DictConfig, variables: dict[str, Any]) -> None:
        self.root = root
        self.variables = variables
        self.memo: dict[str, Any] = {}
        self.stack: list[str] = []

    def resolve_path(self, path: str) -> Any:
        if path in self.memo:
            return self.memo[path]
        if path in self.stack:
            chain = " -> ".join(self.stack[self.stack.index(path) :] + [path])
            raise ConfigError(
                f"interpolation cycle: {chain} ({self._where(path)}); "
                "break the cycle by setting one of these keys to a value"
            )
        self.stack.append(path)
        raw = self.root.select(path) if path else self.root
        result = self._resolve_raw(raw, path)
        self.stack.pop()
        self.memo[path] = result
        return result

    def _resolve_raw(self, raw: Any, path: str) -> Any:
        prefix = f"{path}." if path else ""
        if isinstance(raw, DictConfig):
            out = DictConfig()
            for k in raw:
                out[k] = self.resolve_path(prefix + k)
                out.set_location(k, raw.location(k))
            return out
        if isinstance(raw, list):
            return [self.resolve_path(f"{prefix}{i}") for i in range(len(raw))]
        if isinstance(raw, str) and "${" in raw:
            return self._interpolate(raw, path)
        return raw

    def _interpolate(self, text: str, path: str) -> Any:
        whole = _REF.fullmatch(text)
        if whole is not None:
            return self._lookup(whole.group(1), path)
        out = _REF.sub(lambda m: str(self._lookup(m.group(1), path)), text)
        if "${" in _REF.sub("", text):
            raise ConfigError(
                f"malformed interpolation in '{path}' ({self._where(path)}): {text!r}; "
                "write ${dotted.key} (nested references are not supported)"
            )
        return out

    def _lookup(self, ref: str, path: str) -> Any:
        ref = ref.strip()
        if not _KEY.match(ref):
            raise ConfigError(
                f"malformed interpolation '${{{ref}}}' in '{path}' ({self._where(path)}); "
                "write ${dotted.key}"
            )
        if ref in self.variables and ref not in self.root:
            return self.variables[ref]
        if ref == "recipes_root" and ref not in self.root:
            return _deprecated_recipes_root()
        try:
            self.root.select(ref)
        except KeyError:
            parent_key, _, last = ref.rpartition(".")
            parent = self.root.select(parent_key, None) if parent_key else self.root
            hint = did_you_mean(last, list(parent)) if isinstance(parent, DictConfig) else ""
            raise ConfigError(
                f"interpolation '${{{ref}}}' in '{path}' ({self._where(path)}) refers to a "
                f"missing key '{ref}'{hint}"
            ) from None
        return self.resolve_path(ref)

    def _where(self, path: str) -> str:
        loc = location_of(self.root, path)
        return str(loc) if loc is not None else "unknown location"
