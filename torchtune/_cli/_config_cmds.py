"""``tune validate`` and ``tune cat``: check or print a config."""

import argparse

from torchtune._cli._errors import CLIError
from torchtune._cli._resolve import resolve_config


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``validate`` and ``cat`` subcommands to ``subparsers``."""
    validate = subparsers.add_parser(
        "validate",
        help="Check that a config loads and that its components accept their arguments.",
        description=(
            "Load a config (name or path), apply key=value overrides, resolve ${...} "
            "references and check every _component_ against its signature. Nothing is built."
        ),
    )
    validate.add_argument("config", help="config name (see `tune ls`) or path to a YAML file")
    validate.add_argument("overrides", nargs="*", help="key=value or ~key overrides")
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


def run_validate(args: argparse.Namespace) -> int:
    """Load and validate ``args.config``; print a confirmation when it is well-formed."""
    from torchtune.config import ConfigError, load_config, validate

    path = resolve_config(args.config)
    try:
        cfg = load_config(path, args.overrides, allow_component_roots=args.allow_component_root)
        validate(cfg)
    except ConfigError as e:
        raise CLIError(f"{path}: {e}") from None
    print(f"Config {args.config} is well-formed.")
    return 0


def run_cat(args: argparse.Namespace) -> int:
    """Print the text of ``args.config``."""
    print(resolve_config(args.config).read_text(encoding="utf-8"), end="")
    return 0
