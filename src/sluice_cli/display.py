"""Terminal output of the CLI."""

import sys

from rich.console import Console

#: Width used when the output is not a terminal (CI logs, pipes): tables stay readable.
PIPE_WIDTH = 140


def make_console(*, stderr: bool = False) -> Console:
    """A rich console: the terminal's width, or :data:`PIPE_WIDTH` when writing to a pipe or file."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, width=None if stream.isatty() else PIPE_WIDTH)
