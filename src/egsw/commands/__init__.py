"""Subcommands of the ``egsw`` command line: argparse and printing only, one module per subcommand.

Each module has ``main(argv) -> int``; the work is done by the library layers below
(``egsw.run`` for one training run, ``egsw.study`` for many, ``egsw.tasks`` and ``egsw.models``).
"""

from __future__ import annotations

import sys

from egsw.errors import USAGE_ERROR


def fail(program: str, message: str) -> int:
    """Print ``program: error: message`` on one line to stderr; return the usage-error status."""
    print(f"{program}: error: {' '.join(str(message).split())}", file=sys.stderr)
    return USAGE_ERROR
