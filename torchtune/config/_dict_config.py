"""DictConfig: a small attribute-access mapping that remembers where each key came from."""

import difflib
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

from torchtune.config._errors import ConfigError, Location

_MISSING = object()


def closest_name(name: str, candidates: list[str] | Any) -> str | None:
    """Return the candidate most similar to ``name`` (difflib ratio >= 0.6), or None."""
    matches = difflib.get_close_matches(name, [str(c) for c in candidates], n=1)
    return matches[0] if matches else None


def did_you_mean(name: str, candidates: list[str] | Any) -> str:
    """Return ``"; did you mean 'x'?"`` for the closest candidate, or an empty string."""
    best = closest_name(name, candidates)
    return f"; did you mean '{best}'?" if best is not None else ""


class DictConfig(MutableMapping):
    """A nested string-keyed mapping with attribute access and per-key source locations.

    Nested mappings become ``DictConfig`` children that know their parent, so errors can
    name the full dotted key (``optimizer.lr``) and the ``file:line`` it was read from.
    Lists stay Python lists whose mapping items are ``DictConfig`` too. A key that has the
    name of a method (``items``, ``keys``, ``values``, ``get``, ``copy``, ``select``, ...)
    must be read with ``cfg["items"]``; ``cfg.items`` is the method.

    Args:
        content (Mapping[str, Any] | None): initial keys and values. Default: None.
        locations (Mapping[str, Location] | None): source location of some keys. Default: None.

    Example:
        >>> cfg = DictConfig({"optimizer": {"lr": 1e-3}})
        >>> cfg.optimizer.lr, cfg["optimizer"]["lr"], cfg.get("seed", 0)
        (0.001, 0.001, 0)
    """

    __slots__ = ("_data", "_locs", "_parent", "_key", "_extra_roots")

    def __init__(
        self,
        content: Mapping[str, Any] | None = None,
        *,
        locations: Mapping[str, Location] | None = None,
    ) -> None:
        object.__setattr__(self, "_data", {})
        object.__setattr__(self, "_locs", {})
        object.__setattr__(self, "_parent", None)
        object.__setattr__(self, "_key", None)
        object.__setattr__(self, "_extra_roots", ())
        for k, v in (content or {}).items():
            self[k] = v
        for k, loc in (locations or {}).items():
            self._locs[k] = loc

    # ----- mapping protocol -------------------------------------------------------------
    def __getitem__(self, key: str) -> Any:
        try:
            return self._data[key]
        except KeyError:
            raise KeyError(self._missing_message(key)) from None

    def __setitem__(self, key: str, value: Any) -> None:
        if not isinstance(key, str):
            raise ConfigError(
                f"config keys must be strings, got {key!r} ({type(key).__name__}) "
                f"under '{self.full_key() or '<root>'}'"
            )
        self._data[key] = self._wrap(value, key)

    def __delitem__(self, key: str) -> None:
        if key not in self._data:
            raise KeyError(self._missing_message(key))
        del self._data[key]
        self._locs.pop(key, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    # ----- attribute access -------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        if name in DictConfig.__slots__ or name.startswith("__"):
            raise AttributeError(name)
        try:
            return self._data[name]
        except KeyError:
            raise AttributeError(self._missing_message(name)) from None

    def __setattr__(self, name: str, value: Any) -> None:
        if name in DictConfig.__slots__:
            object.__setattr__(self, name, value)
        else:
            self[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self[name]
        except KeyError as e:
            raise AttributeError(e.args[0]) from None

    # ----- locations and paths ----------------------------------------------------------
    def location(self, key: str) -> Location | None:
        """Return where ``key`` was set (YAML ``file:line`` or the command line), if known."""
        return self._locs.get(key)

    def set_location(self, key: str, location: Location | None) -> None:
        """Record where ``key`` was set; None forgets it."""
        if location is None:
            self._locs.pop(key, None)
        else:
            self._locs[key] = location

    def full_key(self, key: str | None = None) -> str:
        """Return the dotted path of this node (plus ``key`` when given), e.g. ``model.lora_rank``."""
        parts = [] if key is None else [key]
        node = self
        while node._parent is not None:
            parts.append(node._key)
            node = node._parent
        return ".".join(reversed(parts))

    def root(self) -> "DictConfig":
        """Return the top-level config this node belongs to."""
        node = self
        while node._parent is not None:
            node = node._parent
        return node

    def select(self, dotted_key: str, default: Any = _MISSING) -> Any:
        """Return the value at ``dotted_key`` (``"a.b.0.c"``; integers index lists).

        Raises:
            KeyError: when a part is missing and no ``default`` is given.
        """
        node: Any = self
        for part in dotted_key.split("."):
            if isinstance(node, DictConfig) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.lstrip("-").isdigit() and -len(node) <= int(part) < len(node):
                node = node[int(part)]
            elif default is not _MISSING:
                return default
            else:
                raise KeyError(f"config has no key '{dotted_key}' (no '{part}')")
        return node

    # ----- conversion -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Return a deep copy as plain ``dict`` / ``list`` / scalar values."""
        return {k: _to_plain(v) for k, v in self._data.items()}

    def copy(self) -> "DictConfig":
        """Return a deep, detached copy (locations and allowed roots kept)."""
        out = DictConfig()
        for k, v in self._data.items():
            out[k] = _copy_value(v)
        out._locs.update(self._locs)
        object.__setattr__(out, "_extra_roots", self._extra_roots)
        return out

    def __deepcopy__(self, memo: dict) -> "DictConfig":
        return self.copy()

    def __copy__(self) -> "DictConfig":
        return self.copy()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DictConfig):
            return self.to_dict() == other.to_dict()
        if isinstance(other, Mapping):
            return self.to_dict() == dict(other)
        return NotImplemented

    __hash__ = None  # mutable

    def __repr__(self) -> str:
        return f"DictConfig({self.to_dict()!r})"

    # ----- helpers ----------------------------------------------------------------------
    def _missing_message(self, key: str) -> str:
        return f"config has no key '{self.full_key(key)}'{did_you_mean(key, list(self._data))}"

    def _wrap(self, value: Any, key: str) -> Any:
        if isinstance(value, DictConfig):
            child = value.copy() if value._parent is not None or value is self else value
            object.__setattr__(child, "_parent", self)
            object.__setattr__(child, "_key", key)
            return child
        if isinstance(value, Mapping):
            child = DictConfig()
            object.__setattr__(child, "_parent", self)
            object.__setattr__(child, "_key", key)
            for k, v in value.items():
                child[k] = v
            return child
        if isinstance(value, (list, tuple)):
            return [self._wrap(v, f"{key}.{i}") for i, v in enumerate(value)]
        return value


def _to_plain(value: Any) -> Any:
    if isinstance(value, DictConfig):
        return value.to_dict()
    if isinstance(value, list):
        return [_to_plain(v) for v in value]
    return value


def _copy_value(value: Any) -> Any:
    if isinstance(value, DictConfig):
        return value.copy()
    if isinstance(value, list):
        return [_copy_value(v) for v in value]
    return value
