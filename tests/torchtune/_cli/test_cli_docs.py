"""docs/cli.md must be what tools/gen_cli_docs.py renders from the current parsers."""

from pathlib import Path

import torchtune
from torchtune._cli import build_parser, render_markdown

DOCS_FILE = Path(torchtune.__file__).parent.parent / "docs" / "cli.md"


def test_docs_are_up_to_date():
    assert DOCS_FILE.read_text(encoding="utf-8") == render_markdown(), (
        "docs/cli.md is out of date; run: python tools/gen_cli_docs.py"
    )


def test_docs_do_not_depend_on_terminal_width(monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")
    narrow = render_markdown()
    monkeypatch.setenv("COLUMNS", "200")
    assert render_markdown() == narrow


def test_docs_cover_every_subcommand_help():
    text = render_markdown()
    parser = build_parser()
    sub = parser._subparsers._group_actions[0]
    assert list(sub.choices) == ["ls", "cp", "run", "validate", "cat", "download", "diff"]
    for name in sub.choices:
        assert f"\n## `tune {name}`\n\n```text\nusage: tune {name} " in text
    assert "| eval | lm_eval | eleuther_eval |" in text
