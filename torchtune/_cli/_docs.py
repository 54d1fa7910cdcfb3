"""Render the ``tune`` command reference (docs/cli.md) from the argparse parsers."""

import argparse
import os
from unittest import mock

# Fixed help width so that the reference does not depend on the terminal.
DOCS_COLUMNS = "100"

_HEADER = """\
# `tune` command reference

Generated from the command's argparse parsers by `python tools/gen_cli_docs.py`; do not edit
by hand (a test fails when this file is out of date).

Exit codes: 0 on success, 1 on an error (one line on stderr, no traceback), 2 on a usage error.
`tune run` returns the recipe's own exit code.

Environment: `TORCHTUNE_RECIPES_ROOT`, when set, is the directory the recipes and their
`configs/` are taken from instead of the installed package (for tests and development).
`tune download` waits at most `HF_HUB_ETAG_TIMEOUT` / `HF_HUB_DOWNLOAD_TIMEOUT` seconds
(default 10) for the Hub.
"""


def _extras_section() -> str:
    from torchtune import _recipe_registry as registry

    lines = [
        "\n## Optional extras\n",
        "`pip install torchtune` installs the library only. `tune run` checks that a recipe's",
        "extras are importable and names the one to install",
        "(`pip install 'torchtune[recipes]'`).\n",
        "| extra | modules | needed by |",
        "|---|---|---|",
    ]
    for extra, modules in registry.EXTRAS.items():
        users = [r.name for r in registry.RECIPES if extra in r.extras]
        users += ["`tune download`"] if extra == "hf" else []
        needed_by = ", ".join(users) or "config components that use it"
        lines.append(f"| {extra} | {', '.join(modules)} | {needed_by} |")
    return "\n".join(lines) + "\n"


def _section(title: str, parser: argparse.ArgumentParser) -> str:
    return f"\n## `{title}`\n\n```text\n{parser.format_help().rstrip()}\n```\n"


def render_markdown() -> str:
    """Return the Markdown reference of ``tune`` and each subcommand's ``--help``.

    Returns:
        str: the contents of docs/cli.md.
    """
    from torchtune._cli.tune import build_parser

    with mock.patch.dict(os.environ, {"COLUMNS": DOCS_COLUMNS}):
        parser = build_parser()
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parts = [_HEADER, _extras_section(), _section("tune", parser)]
        parts += [_section(f"tune {name}", p) for name, p in sub.choices.items()]
    return "".join(parts)
