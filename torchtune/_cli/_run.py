"""``tune run``: run a recipe in this process, or through torchrun when given its options."""

import argparse
import runpy
import sys
from pathlib import Path

from torchtune import _recipe_registry as registry
from torchtune._cli._errors import CLIError
from torchtune._cli._resolve import (
    check_extras,
    recipe_file,
    resolve_config,
    unknown_name_error,
)

USAGE = "tune run [torchrun options] <recipe|path.py> --config <name|path> [key=value ...]"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``run`` subcommand to ``subparsers`` (used for ``--help`` and the docs).

    ``tune run ARGS`` itself is parsed by :func:`run_command`, because torchrun's options come
    before the recipe and are parsed by torchrun's own parser.
    """
    parser = subparsers.add_parser(
        "run",
        usage=USAGE,
        help="Run a recipe, on one process or through torchrun.",
        description=(
            "Run a shipped recipe (by name) or your own recipe script (by path). Without "
            "torchrun options the recipe runs in this process with its folder on sys.path. "
            "With any torchrun option (--nproc_per_node, --nnodes, --standalone, --rdzv-*, "
            "--master_port, ...; see `torchrun --help`) it is launched through "
            "torch.distributed.run; only recipes that support distributed training accept them. "
            "--config takes a config name (see `tune ls`) or a path to a YAML file."
        ),
    )
    parser.add_argument("recipe", help="recipe name (see `tune ls`) or path to a .py script")
    parser.add_argument(
        "recipe_args",
        nargs=argparse.REMAINDER,
        help="--config <name|path> and key=value overrides, passed to the recipe",
    )


def resolve_script(target: str) -> tuple[Path | None, registry.Recipe | None]:
    """Return ``(path, None)`` for a user's own script or ``(None, recipe)`` for a registered one.

    An existing file wins over a registered name, so a copied ``generate.py`` runs the copy;
    without such a file ``generate.py`` names the registered ``generate``.

    Raises:
        CLIError: when ``target`` is neither a file nor a registered recipe name.
    """
    path = Path(target)
    if path.is_file():
        return path.resolve(), None
    recipe = registry.get_recipe(target.removesuffix(".py"))
    if recipe is None:
        names = [r.name for r in registry.RECIPES]
        raise unknown_name_error("recipe (no such file or registered name)", target, names)
    return None, recipe


def resolve_config_args(args: list[str], recipe: registry.Recipe | None) -> list[str]:
    """Replace every ``--config`` value in ``args`` by the file it names.

    Raises:
        CLIError: when a registered recipe is given no ``--config``, a ``--config`` has no
            value, or the config cannot be found.
    """
    out, found, i = [], False, 0
    while i < len(args):
        arg = args[i]
        if arg == "--config":
            if i + 1 == len(args):
                raise CLIError("--config needs a value: a config name or a path to a YAML file")
            out += [arg, str(resolve_config(args[i + 1]))]
            found, i = True, i + 2
            continue
        if arg.startswith("--config="):
            arg, found = "--config=" + str(resolve_config(arg.split("=", 1)[1])), True
        out.append(arg)
        i += 1
    if recipe is not None and not found:
        names = ", ".join(c.name for c in recipe.configs[:3])
        raise CLIError(f"recipe '{recipe.name}' needs --config <name|path>, e.g. one of: {names}")
    return out


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def run_in_process(script: Path, args: list[str]) -> int:
    """Run ``script`` as ``__main__`` with ``sys.argv = [script, *args]`` and its folder on
    ``sys.path``; both are restored afterwards.

    Returns:
        int: the exit code (from ``SystemExit``; 0 when the script returns normally).
    """
    script = script.resolve()
    saved_argv, saved_path = sys.argv, list(sys.path)
    sys.argv = [str(script), *args]
    sys.path.insert(0, str(script.parent))
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as e:
        return _exit_code(e.code)
    finally:
        sys.argv = saved_argv
        sys.path[:] = saved_path
    return 0


def parse_torchrun_args(argv: list[str]) -> argparse.Namespace:
    """Parse ``argv`` with torchrun's own parser (a bad flag exits with torchrun's message)."""
    from torch.distributed.run import get_args_parser

    parser = get_args_parser()
    parser.prog = "tune run"
    args = parser.parse_args(argv)
    if args.module or args.no_python:
        raise CLIError("tune run does not accept torchrun's --module/-m or --no-python")
    return args


def run_distributed(args: argparse.Namespace, script: Path, recipe_args: list[str]) -> int:
    """Launch ``script`` through ``torch.distributed.run`` with torchrun options ``args``."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import run

    args.training_script = str(script)
    args.training_script_args = recipe_args
    try:
        run(args)
    except ChildFailedError as e:
        rank, failure = e.get_first_failure()
        raise CLIError(
            f"{script.name} failed on {len(e.failures)} process(es); first: local rank "
            f"{failure.local_rank} (global {rank}) exit code {failure.exitcode}; "
            "its output above has the details"
        ) from None
    return 0


def run_command(argv: list[str]) -> int:
    """Run ``tune run ARGV`` (``argv`` is everything after ``run``, non-empty).

    Returns:
        int: the recipe's exit code.

    Raises:
        CLIError: unknown recipe or config, missing extra, or torchrun options given to a
            recipe that does not support distributed training.
    """
    torchrun_args = None
    if argv[0].startswith("-"):
        torchrun_args = parse_torchrun_args(argv)
        target, recipe_args = torchrun_args.training_script, torchrun_args.training_script_args
    else:
        target, recipe_args = argv[0], argv[1:]
    script, recipe = resolve_script(target)
    if recipe is not None:
        if torchrun_args is not None and not recipe.supports_distributed:
            distributed = [r.name for r in registry.RECIPES if r.supports_distributed]
            raise CLIError(
                f"recipe '{recipe.name}' runs on a single device and takes no torchrun options; "
                f"distributed recipes: {', '.join(distributed)}"
            )
        check_extras(recipe)
        script = recipe_file(recipe)
    recipe_args = resolve_config_args(recipe_args, recipe)
    if torchrun_args is None:
        return run_in_process(script, recipe_args)
    return run_distributed(torchrun_args, script, recipe_args)
