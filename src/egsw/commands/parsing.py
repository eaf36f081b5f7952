"""The one argument parser of the ``egsw`` subcommands: argparse whose errors are one line, exit 2.

``egsw train`` parses with TRL's ``TrlParser`` (``egsw.run.options``) under the same
``OneLineErrors`` rule; every other subcommand builds its parser here. Booleans are read by
transformers' ``string_to_bool`` as HfArgumentParser reads them, so ``--flag maybe`` is refused.
"""

from __future__ import annotations

import argparse
from typing import Any

from transformers.hf_argparser import string_to_bool

from egsw.errors import OneLineErrors


class OneLineParser(OneLineErrors, argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors raise ``InputError`` (one line, exit 2)."""


def parser(prog: str, description: str, **kwargs: Any) -> OneLineParser:  # noqa: ANN401 - argparse keywords
    """A one-line-error parser; ``allow_abbrev`` is off so ``--seed`` is never read as ``--seeds``."""
    return OneLineParser(prog=prog, description=description, allow_abbrev=False, **kwargs)


def add_bool(target: argparse.ArgumentParser, *names: str, default: bool, help: str) -> None:  # noqa: A002
    """A boolean option read as HfArgumentParser reads one: ``--flag``, ``--flag true``, ``--flag=no``."""
    target.add_argument(*names, type=string_to_bool, nargs="?", const=True, default=default, help=help)
