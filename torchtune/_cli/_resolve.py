"""Turn names typed on the command line into recipe and config files."""

import difflib
import importlib.util
from pathlib import Path

from torchtune import _recipe_registry as registry
from torchtune._cli._errors import CLIError


def _all_names() -> list[str]:
    names = [r.name for r in registry.RECIPES]
    names += [c.name for r in registry.RECIPES for c in r.configs]
    return names


def unknown_name_error(kind: str, name: str, candidates: list[str]) -> CLIError:
    """Build the error for an unknown name, listing close matches.

    Args:
        kind (str): what was looked up, e.g. ``"recipe"`` or ``"config"``.
        name (str): what the user typed.
        candidates (list[str]): the valid names.

    Returns:
        CLIError: the error to raise.
    """
    matches = difflib.get_close_matches(name, candidates, n=5, cutoff=0.5)
    hint = f"; did you mean: {', '.join(matches)}?" if matches else ""
    return CLIError(f"unknown {kind} '{name}'{hint} (`tune ls` lists them all)")


def _strip(name: str, suffix: str) -> str:
    return name[: -len(suffix)] if name.endswith(suffix) else name


def _existing(path: Path, what: str, name: str) -> Path:
    if not path.is_file():
        raise CLIError(
            f"{what} '{name}' is registered but its file {path} is missing from this install"
        )
    return path


def recipe_file(recipe: registry.Recipe) -> Path:
    """Return the installed file of a registered recipe (raises when it is missing)."""
    return _existing(registry.recipes_root() / recipe.file_name, "recipe", recipe.name)


def config_file(config: registry.Config) -> Path:
    """Return the installed file of a registered config (raises when it is missing)."""
    return _existing(registry.recipes_root() / config.file_path, "config", config.name)


def lookup_recipe(name: str) -> registry.Recipe:
    """Return the registered recipe ``name`` (a trailing ``.py`` is ignored).

    Raises:
        CLIError: when no recipe has that name; the message lists close matches.
    """
    recipe = registry.get_recipe(_strip(name, ".py"))
    if recipe is None:
        raise unknown_name_error("recipe", name, [r.name for r in registry.RECIPES])
    return recipe


def resolve_config(name_or_path: str) -> Path:
    """Return the file for a config name (``tiny/lora_single_device``) or a path to a YAML file.

    Raises:
        CLIError: when it is neither an existing file nor a registered config name.
    """
    path = Path(name_or_path)
    if path.is_file():
        return path
    found = registry.get_config(_strip(name_or_path, ".yaml"))
    if found is not None:
        return config_file(found[1])
    configs = [c.name for r in registry.RECIPES for c in r.configs]
    raise unknown_name_error("config (no such file or registered name)", name_or_path, configs)


def resolve_any(name: str) -> tuple[str, Path]:
    """Return ``(registered name, installed file)`` for a recipe or config name.

    Raises:
        CLIError: when ``name`` is neither; the message lists close matches of both kinds.
    """
    recipe = registry.get_recipe(_strip(name, ".py"))
    if recipe is not None:
        return recipe.name, recipe_file(recipe)
    found = registry.get_config(_strip(name, ".yaml"))
    if found is not None:
        return found[1].name, config_file(found[1])
    raise unknown_name_error("recipe or config", name, _all_names())


def missing_extras(extras: tuple[str, ...]) -> dict[str, list[str]]:
    """Return, for each extra whose modules are not importable, the missing module names.

    Args:
        extras (tuple[str, ...]): keys of :data:`torchtune._recipe_registry.EXTRAS`.

    Returns:
        dict[str, list[str]]: extra -> missing modules; empty when everything is installed.
    """
    missing = {}
    for extra in extras:
        modules = [m for m in registry.EXTRAS[extra] if importlib.util.find_spec(m) is None]
        if modules:
            missing[extra] = modules
    return missing


def check_extras(recipe: registry.Recipe) -> None:
    """Raise a :class:`CLIError` naming the pip extra to install when one is missing."""
    missing = missing_extras(recipe.extras)
    if not missing:
        return
    extras = ",".join(missing)
    modules = ", ".join(m for ms in missing.values() for m in ms)
    raise CLIError(
        f"recipe '{recipe.name}' needs the {', '.join(repr(e) for e in missing)} extra "
        f"(missing: {modules}); install it with: pip install 'torchtune[{extras}]'"
    )
