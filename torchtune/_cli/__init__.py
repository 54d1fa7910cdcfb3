"""The ``tune`` command line (entry point ``torchtune._cli.tune:main``)."""

from torchtune._cli._docs import render_markdown
from torchtune._cli._errors import CLIError
from torchtune._cli.tune import build_parser, main

__all__ = ["CLIError", "build_parser", "main", "render_markdown"]
