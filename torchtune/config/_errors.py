"""Errors raised while loading, overriding, resolving, validating or building a config."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Location:
    """Where a config value came from.

    Args:
        source (str): a YAML file path, or ``"<command line>"`` for an override.
        line (int | None): 1-based line in ``source``; None when it has no line.
    """

    source: str
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.source}:{self.line}" if self.line is not None else self.source


class ConfigError(ValueError):
    """A config is malformed: bad YAML, bad override, unresolvable interpolation, ..."""


class ComponentNotAllowedError(ConfigError):
    """A ``_component_`` path lies outside the allowed import roots."""


class ConfigValidationError(ConfigError):
    """One or more problems found by :func:`torchtune.config.validate`.

    Args:
        problems (list[str]): one human-readable line per problem.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        n = len(self.problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"config has {n} problem{'s' if n != 1 else ''}:\n{lines}")
