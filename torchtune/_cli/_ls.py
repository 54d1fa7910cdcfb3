"""``tune ls``: list the recipes and their configs."""

import argparse

from torchtune import _recipe_registry as registry
from torchtune._cli._resolve import lookup_recipe


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``ls`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser(
        "ls",
        help="List recipes and their configs.",
        description="List the recipes shipped with torchtune and the configs of each.",
    )
    parser.add_argument("recipe", nargs="?", help="only list this recipe's configs")
    parser.set_defaults(func=run_ls)


def format_table(recipes: list[registry.Recipe]) -> str:
    """Return a two-column RECIPE / CONFIG table, one config per row.

    Args:
        recipes (list[Recipe]): the recipes to list.

    Returns:
        str: the table, ending with a newline.
    """
    rows = [("RECIPE", "CONFIG")]
    for recipe in recipes:
        names = [c.name for c in recipe.configs] or ["-"]
        rows.append((recipe.name, names[0]))
        rows.extend(("", name) for name in names[1:])
    width = max(len(r[0]) for r in rows) + 3
    return "".join(f"{left:<{width}}{right}\n" for left, right in rows)


def run_ls(args: argparse.Namespace) -> int:
    """Print the table for all recipes, or for ``args.recipe``."""
    recipes = registry.RECIPES if args.recipe is None else [lookup_recipe(args.recipe)]
    print(format_table(recipes), end="")
    return 0
