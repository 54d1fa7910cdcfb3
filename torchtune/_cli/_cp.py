"""``tune cp``: copy an installed recipe or config so that a user can edit it."""

import argparse
import re
from pathlib import Path

import torchtune
from torchtune._cli._errors import CLIError
from torchtune._cli._resolve import resolve_any


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``cp`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser(
        "cp",
        help="Copy a recipe or config to a local path.",
        description=(
            "Copy the installed version of a recipe (.py) or config (.yaml) to a local path. "
            "When <dest> is an existing directory the file keeps its name; otherwise <dest> is "
            "the new file's path, and the .py/.yaml suffix is added when it has none. The copy's "
            "first line is a comment naming what it was copied from, so `tune diff <copy>` works."
        ),
    )
    parser.add_argument("name", help="recipe or config name (see `tune ls`)")
    parser.add_argument("dest", help="destination file or existing directory")
    clobber = parser.add_mutually_exclusive_group()
    clobber.add_argument(
        "-n", "--no-clobber", action="store_true", help="do nothing if the destination exists"
    )
    clobber.add_argument(
        "-f", "--force", action="store_true", help="overwrite the destination if it exists"
    )
    parser.add_argument(
        "--make-parents", action="store_true", help="create missing parent directories of dest"
    )
    parser.set_defaults(func=run_cp)


HEADER_PREFIX = "# Copied by `tune cp` from torchtune "
_HEADER = re.compile(r"^# Copied by `tune cp` from torchtune (?P<version>\S+): (?P<name>\S+)\.")


def header(name: str) -> str:
    """The first line ``tune cp`` writes into a copy: where it came from, so ``tune diff`` finds it.

    Args:
        name (str): the recipe or config name that was copied.

    Returns:
        str: a comment line (valid in Python and YAML) ending with a newline.
    """
    return f"{HEADER_PREFIX}{torchtune.__version__}: {name}. `tune diff <this file>` shows your changes.\n"


def copied_from(text: str) -> tuple[str | None, str]:
    """The recipe or config a copy came from (None when it has no ``tune cp`` header) and the
    text without that header.

    Args:
        text (str): the copy's contents.

    Returns:
        tuple[str | None, str]: the name and the remaining text.
    """
    first, _, rest = text.partition("\n")
    match = _HEADER.match(first)
    return (match["name"], rest) if match else (None, text)


def destination(dest: str, source: Path) -> Path:
    """Return the file that copying ``source`` to ``dest`` writes.

    Args:
        dest (str): what the user typed: an existing directory, or a file path.
        source (Path): the installed file.

    Returns:
        Path: ``dest/<source name>`` for a directory, else ``dest`` with ``source``'s suffix
        added when it has none.
    """
    path = Path(dest)
    if path.is_dir():
        return path / source.name
    if dest.endswith(("/", "\\")):
        return path / source.name
    return path if path.suffix else path.with_name(path.name + source.suffix)


def run_cp(args: argparse.Namespace) -> int:
    """Copy ``args.name``'s installed file to ``args.dest``."""
    name, source = resolve_any(args.name)
    target = destination(args.dest, source)
    if target.exists():
        if args.no_clobber:
            return 0
        if not args.force:
            raise CLIError(
                f"{target} already exists; pass --force to overwrite it or --no-clobber to skip"
            )
    if not target.parent.is_dir():
        if not args.make_parents:
            raise CLIError(
                f"directory {target.parent} does not exist; pass --make-parents to create it"
            )
        target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(header(name) + source.read_text(encoding="utf-8"), encoding="utf-8")
    print(f"Copied {name} to {target}")
    return 0
