"""The error type the ``tune`` command turns into a one-line message and exit code 1."""


class CLIError(Exception):
    """A user-facing failure of a ``tune`` subcommand; its message is printed as one line."""
