"""``tune download``: fetch a model repository from the Hugging Face Hub."""

import argparse
import os
from pathlib import Path

from torchtune._cli._errors import CLIError
from torchtune.utils import require

# Seconds to wait for the Hub before giving up; users may raise them through the environment.
HUB_TIMEOUT_S = "10"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``download`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser(
        "download",
        help="Download a model from the Hugging Face Hub (needs the 'hf' extra).",
        description=(
            "Download a model repository from the Hugging Face Hub into a local directory. "
            "Needs pip install 'torchtune[hf]'. Fails at once when the Hub cannot be reached."
        ),
    )
    parser.add_argument("repo_id", help="Hub repository, e.g. Qwen/Qwen2.5-0.5B-Instruct")
    parser.add_argument(
        "--output-dir",
        type=Path,
        help="where to put the files (default: ./<repository name>)",
    )
    parser.add_argument(
        "--hf-token",
        default=None,
        help="Hugging Face access token for gated or private repositories "
        "(default: the HF_TOKEN environment variable or the saved login)",
    )
    parser.add_argument(
        "--ignore-patterns",
        action="append",
        default=None,
        metavar="GLOB",
        help="skip files matching this glob (repeatable)",
    )
    parser.set_defaults(func=run_download)


def _hub_error_message(repo_id: str, error: Exception) -> str:
    from huggingface_hub import errors

    first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if isinstance(error, errors.GatedRepoError):
        return (
            f"{repo_id} is gated: accept its license on huggingface.co and pass --hf-token "
            f"({first_line})"
        )
    if isinstance(error, errors.RepositoryNotFoundError):
        return f"{repo_id} was not found on the Hub, or it is private: pass --hf-token"
    if isinstance(error, errors.RevisionNotFoundError):
        return f"{repo_id}: revision not found ({first_line})"
    if isinstance(error, (errors.LocalEntryNotFoundError, OSError)):
        return (
            f"could not reach the Hugging Face Hub to download {repo_id} (offline? "
            f"HF_HUB_OFFLINE set?): {first_line}"
        )
    return f"downloading {repo_id} failed: {type(error).__name__}: {first_line}"


def run_download(args: argparse.Namespace) -> int:
    """Download ``args.repo_id`` into ``args.output_dir``."""
    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", HUB_TIMEOUT_S)
    os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", HUB_TIMEOUT_S)
    try:
        hub = require("huggingface_hub", extra="hf")
    except ModuleNotFoundError as e:
        raise CLIError(f"tune download needs the Hugging Face Hub client: {e}") from None
    output_dir = args.output_dir or Path(args.repo_id.split("/")[-1])
    try:
        path = hub.snapshot_download(
            args.repo_id,
            local_dir=output_dir,
            token=args.hf_token,
            ignore_patterns=args.ignore_patterns,
            etag_timeout=float(os.environ["HF_HUB_ETAG_TIMEOUT"]),
        )
    except Exception as e:  # the Hub client raises many types; each becomes one line
        raise CLIError(_hub_error_message(args.repo_id, e)) from None
    print(f"Downloaded {args.repo_id} to {path}")
    return 0
