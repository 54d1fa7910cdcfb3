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
        help="Download a model from the Hugging Face Hub.",
        description=(
            "Download a model repository from the Hugging Face Hub into a local directory. "
            "huggingface_hub comes with every install (tokenizers depends on it; the 'hf' extra "
            "names it explicitly). Fails at once when the Hub cannot be reached."
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


def _is_network_error(error: Exception) -> bool:
    from huggingface_hub import errors

    if isinstance(error, (errors.LocalEntryNotFoundError, OSError)):
        return True  # includes requests' ConnectionError and the client's offline-mode error
    # httpx-style clients: connect/read timeouts and connection errors derive from TransportError
    return any(cls.__name__ == "TransportError" for cls in type(error).__mro__)


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
    if _is_network_error(error):
        return (
            f"could not reach the Hugging Face Hub to download {repo_id} (offline? "
            f"HF_HUB_OFFLINE set?): {first_line}"
        )
    return f"downloading {repo_id} failed: {type(error).__name__}: {first_line}"


def _timeout_s() -> float:
    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", HUB_TIMEOUT_S)
    os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", HUB_TIMEOUT_S)
    value = os.environ["HF_HUB_ETAG_TIMEOUT"]
    try:
        return float(value)
    except ValueError:
        raise CLIError(f"HF_HUB_ETAG_TIMEOUT={value!r} must be a number of seconds") from None


def run_download(args: argparse.Namespace) -> int:
    """Download ``args.repo_id`` into ``args.output_dir``.

    The repository is first looked up with a timeout (the Hub client's own file-listing calls
    have none), so an unreachable or hanging Hub fails within seconds; the download then pins
    the revision that lookup returned. With ``HF_HUB_OFFLINE=1`` the lookup is skipped and the
    Hub client serves the files from its cache.
    """
    timeout = _timeout_s()  # set before the Hub client reads its environment at import
    try:
        hub = require("huggingface_hub", extra="hf")
        constants = require("huggingface_hub.constants", extra="hf")
    except ModuleNotFoundError as e:
        raise CLIError(f"tune download needs the Hugging Face Hub client: {e}") from None
    output_dir = args.output_dir or Path(args.repo_id.split("/")[-1])
    try:
        revision = None
        if not constants.HF_HUB_OFFLINE:
            info = hub.HfApi().repo_info(args.repo_id, token=args.hf_token, timeout=timeout)
            revision = info.sha
        path = hub.snapshot_download(
            args.repo_id,
            revision=revision,
            local_dir=output_dir,
            token=args.hf_token,
            ignore_patterns=args.ignore_patterns,
            etag_timeout=timeout,
        )
    except Exception as e:  # the Hub client raises many types; each becomes one line
        raise CLIError(_hub_error_message(args.repo_id, e)) from None
    print(f"Downloaded {args.repo_id} to {path}")
    return 0
