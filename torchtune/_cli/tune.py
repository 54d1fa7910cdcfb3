"""The ``tune`` command: list, copy, run, validate, print, diff recipes and configs.

Entry point ``tune = torchtune._cli.tune:main``. Errors print one line to stderr and exit 1;
argparse usage errors exit 2.
"""

import argparse
import sys
from collections.abc import Sequence

import torchtune
from torchtune._cli import _config_cmds, _cp, _diff, _download, _ls, _run
from torchtune._cli._errors import CLIError

_SUBCOMMANDS = (_ls, _cp, _run, _config_cmds, _download, _diff)


def build_parser() -> argparse.ArgumentParser:
    """Return the ``tune`` parser with every subcommand (``run`` only for its help).

    Returns:
        argparse.ArgumentParser: the parser; each subcommand sets ``func(args) -> int``.
    """
    parser = argparse.ArgumentParser(
        prog="tune",
        description=(
            "Fine-tune LLMs with torchtune's recipes: list them (ls), copy them to edit (cp), "
            "run them (run), check or print configs (validate, cat), fetch models (download) "
            "and compare your copies with the installed versions (diff)."
        ),
    )
    parser.add_argument(
        "--version", action="version", version=f"torchtune {torchtune.__version__}"
    )
    subparsers = parser.add_subparsers(
        dest="command", metavar="<command>", title="commands", required=True
    )
    for module in _SUBCOMMANDS:
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``tune`` with ``argv`` (default ``sys.argv[1:]``).

    Args:
        argv (Sequence[str] | None): the arguments after ``tune``. Default: None.

    Returns:
        int: the exit code (0 success, 1 error; argparse exits 2 on usage errors).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        if len(argv) > 1 and argv[0] == "run" and argv[1] not in ("-h", "--help"):
            return _run.run_command(argv[1:])
        parser = build_parser()
        args, extra = parser.parse_known_args(argv)
        # Overrides may follow options (`validate cfg --recipe r a=1`); argparse leaves them over.
        if extra and getattr(args, "overrides", None) is not None:
            if not any(e.startswith("-") for e in extra):
                args.overrides += extra
                extra = []
        if extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        return args.func(args)
    except CLIError as e:
        print(f"tune: error: {e}", file=sys.stderr)
        return 1

