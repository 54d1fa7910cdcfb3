"""``tune diff``: compare a copied recipe or config with the installed version."""

import argparse
import difflib
from pathlib import Path

import torchtune
from torchtune import _recipe_registry as registry
from torchtune._cli._cp import copied_from
from torchtune._cli._errors import CLIError
from torchtune._cli._resolve import resolve_any


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``diff`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser(
        "diff",
        help="Show how a copied recipe or config differs from the installed version.",
        description=(
            "Print a unified diff from the installed recipe/config to your copy, e.g. to merge "
            "an upgrade. The installed file is the one named in the header line `tune cp` "
            "writes, else the one with your file's name; --against names it explicitly."
        ),
    )
    parser.add_argument("file", help="your copy of a recipe (.py) or config (.yaml)")
    parser.add_argument(
        "--against", metavar="NAME", help="recipe or config name to compare with (see `tune ls`)"
    )
    parser.set_defaults(func=run_diff)


def match_by_file_name(file_name: str) -> str:
    """Return the registered recipe or config whose file is called ``file_name``.

    Raises:
        CLIError: when none or several have that file name.
    """
    names = [r.name for r in registry.RECIPES if Path(r.file_name).name == file_name]
    names += [
        c.name for r in registry.RECIPES for c in r.configs if Path(c.file_path).name == file_name
    ]
    if not names:
        raise CLIError(
            f"no recipe or config file is called {file_name}; pass --against <recipe|config>"
        )
    if len(names) > 1:
        raise CLIError(
            f"{file_name} matches several configs ({', '.join(names)}); "
            "pass --against <recipe|config>"
        )
    return names[0]


def run_diff(args: argparse.Namespace) -> int:
    """Print the diff from the installed file to ``args.file``."""
    mine = Path(args.file)
    if not mine.is_file():
        raise CLIError(f"{mine} does not exist")
    source, text = copied_from(mine.read_text(encoding="utf-8"))  # the `tune cp` header is not a change
    name, installed = resolve_any(args.against or source or match_by_file_name(mine.name))
    ours = installed.read_text(encoding="utf-8").splitlines(keepends=True)
    theirs = text.splitlines(keepends=True)
    label = f"torchtune {torchtune.__version__}: {name}"
    diff = list(difflib.unified_diff(ours, theirs, fromfile=label, tofile=str(mine)))
    if not diff:
        print(f"{mine} is identical to {label}")
        return 0
    for line in diff:
        print(line, end="" if line.endswith("\n") else "\n\\ No newline at end of file\n")
    return 0
