"""Regenerate docs/cli.md (the `tune` command reference) from the argparse parsers.

Usage (from the repository root)::

    python tools/gen_cli_docs.py            # rewrite docs/cli.md
    python tools/gen_cli_docs.py --check    # exit 1 when docs/cli.md is out of date
"""

import argparse
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from torchtune._cli import render_markdown  # noqa: E402  (needs the repository on sys.path)

DOCS_FILE = REPO_ROOT / "docs" / "cli.md"


def main(argv: list[str] | None = None) -> int:
    """Write docs/cli.md, or with ``--check`` compare it; return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check, do not write")
    parser.add_argument("--output", type=Path, default=DOCS_FILE, help="file to write/check")
    args = parser.parse_args(argv)
    text = render_markdown()
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.is_file() else ""
        if current != text:
            print(f"{args.output} is out of date; run: python tools/gen_cli_docs.py",
                  file=sys.stderr)
            return 1
        return 0
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
