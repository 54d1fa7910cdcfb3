"""``tune validate`` and ``tune cat``: check or print a config."""

import argparse
import ast
from pathlib import Path

from torchtune import _recipe_registry as registry
from torchtune._cli._errors import CLIError
from torchtune._cli._resolve import lookup_recipe, recipe_file, resolve_config

# A recipe may declare the top-level config keys it reads as a literal at module level:
# ``KNOWN_KEYS = ("model", "optimizer", ...)``; `tune validate` then reports unknown keys.
KNOWN_KEYS_NAME = "KNOWN_KEYS"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``validate`` and ``cat`` subcommands to ``subparsers``."""
    validate = subparsers.add_parser(
        "validate",
        help="Check that a config loads and that its components accept their arguments.",
        description=(
            "Load a config (name or path), apply key=value overrides, resolve ${...} "
            "references and check every _component_ against its signature, that the data and "
            "tokenizer files exist and the extras they need are installed. When the model files "
            "exist (model_dir=<dir>), the model is also built on the meta device and checked "
            "against the checkpoint's tensor names and shapes and the LoRA targets against its "
            "layout. Nothing is trained and no weights are read."
        ),
    )
    validate.add_argument(
        "config", nargs="?", help="config name (see `tune ls`) or path to a YAML file"
    )
    validate.add_argument(
        "--all", action="store_true", help="validate every config that ships with torchtune"
    )
    validate.add_argument("overrides", nargs="*", help="key=value or ~key overrides")
    validate.add_argument(
        "--recipe",
        help="recipe (name or .py path) whose KNOWN_KEYS limit the top-level keys; default: "
        "the recipe a registered config belongs to",
    )
    validate.add_argument(
        "--allow-component-root",
        action="append",
        default=[],
        metavar="ROOT",
        help="also allow _component_ paths under this import root (repeatable)",
    )
    validate.set_defaults(func=run_validate)

    cat = subparsers.add_parser(
        "cat",
        help="Print a config's YAML.",
        description="Print the YAML text of a config (name or path) as shipped.",
    )
    cat.add_argument("config", help="config name (see `tune ls`) or path to a YAML file")
    cat.set_defaults(func=run_cat)


def known_keys(recipe_path: Path) -> list[str] | None:
    """Return the literal ``KNOWN_KEYS`` assigned at the top of a recipe script, or None.

    The script is parsed, never imported or run.

    Raises:
        CLIError: when the script does not parse or ``KNOWN_KEYS`` is not a literal of strings.
    """
    try:
        tree = ast.parse(recipe_path.read_text(encoding="utf-8"), filename=str(recipe_path))
    except SyntaxError as e:
        raise CLIError(f"cannot parse recipe {recipe_path}: {e}") from None
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if any(isinstance(t, ast.Name) and t.id == KNOWN_KEYS_NAME for t in targets):
            try:
                keys = ast.literal_eval(node.value)
            except ValueError:
                keys = None
            if not isinstance(keys, (list, tuple, set, frozenset)) or not all(
                isinstance(k, str) for k in keys
            ):
                raise CLIError(f"{recipe_path}: {KNOWN_KEYS_NAME} must be a literal of strings")
            return sorted(keys)
    return None


def _recipe_for(args: argparse.Namespace) -> Path | None:
    if args.recipe is not None:
        path = Path(args.recipe)
        return path if path.is_file() else recipe_file(lookup_recipe(args.recipe))
    found = registry.get_config(args.config.removesuffix(".yaml"))
    if found is None or Path(args.config).is_file():
        return None
    path = registry.recipes_root() / found[0].file_name
    return path if path.is_file() else None


def run_validate(args: argparse.Namespace) -> int:
    """Validate ``args.config`` (or, with ``--all``, every shipped config)."""
    if args.all == (args.config is not None):
        raise CLIError("give either a config or --all")
    if not args.all:
        return _validate_one(args)
    failed = []
    for recipe in registry.RECIPES:
        for config in recipe.configs:
            one = argparse.Namespace(**{**vars(args), "config": config.name, "recipe": None})
            try:
                _validate_one(one)
            except CLIError as e:
                print(f"FAILED {config.name}: {e}")
                failed.append(config.name)
    total = sum(len(r.configs) for r in registry.RECIPES)
    if failed:
        raise CLIError(f"{len(failed)} of {total} configs failed validation: {', '.join(failed)}")
    print(f"All {total} shipped configs are well-formed.")
    return 0


def _validate_one(args: argparse.Namespace) -> int:
    """Load and validate ``args.config``; print a confirmation when it is well-formed."""
    from torchtune._cli._preflight import check_files, check_model, check_teacher, model_files
    from torchtune.config import ConfigError, load_config, validate

    path = resolve_config(args.config)
    recipe = _recipe_for(args)
    keys = known_keys(recipe) if recipe is not None else None
    try:
        cfg = load_config(path, args.overrides, allow_component_roots=args.allow_component_root,
                          variables={"recipes_root": str(registry.recipes_root())})
        validate(cfg, known_keys=keys)
        files = model_files(cfg)
        checked = None
        if not getattr(args, "all", False):  # --all: the shipped configs' signatures, whatever is installed
            # the tokenizer's files usually live beside the model: checked when the model files are there
            check_files(cfg, tokenizer=files is not None or cfg.get("checkpointer") is None)
            if files is not None:
                checked = check_model(cfg)
                teacher = check_teacher(cfg)  # distillation configs
                checked += f"; {teacher}" if teacher else ""
    except ConfigError as e:
        raise CLIError(f"{path}: {e}") from None
    print(f"Config {args.config} is well-formed.")
    if checked is not None:
        print(f"Against {files}: {checked}.")
    return 0


def run_cat(args: argparse.Namespace) -> int:
    """Print the text of ``args.config``."""
    print(resolve_config(args.config).read_text(encoding="utf-8"), end="")
    return 0
