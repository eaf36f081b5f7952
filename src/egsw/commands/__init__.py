"""Subcommands of the ``egsw`` command line; each module has ``main(argv) -> int``."""

from __future__ import annotations

import sys

USAGE_ERROR = 2


class CommandError(Exception):
    """Bad input for a command: reported as one line on stderr with exit status 2."""


def fail(program: str, message: str) -> int:
    """Print ``program: error: message`` on one line to stderr; return the usage-error status."""
    print(f"{program}: error: {' '.join(str(message).split())}", file=sys.stderr)
    return USAGE_ERROR
