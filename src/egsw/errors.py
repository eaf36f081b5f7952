"""Bad input: one error type that every layer raises and the command line reports in one line.

``InputError`` is what a user can fix (an option, a file, a model name): ``egsw`` prints it as
``egsw <command>: error: <message>`` and exits with status 2, never with a traceback. It lives in
the lowest layer so that library code (``egsw.run``, ``egsw.study``) can raise it without
importing the command line (docs/design.md section 6).
"""

from __future__ import annotations

from typing import NoReturn

USAGE_ERROR = 2


class InputError(ValueError):
    """Bad input: reported as one line on stderr with exit status 2. The message names the fix."""


class OneLineErrors:
    """An argparse mixin: a parse error raises ``InputError`` instead of printing usage and exiting.

    ``class Parser(OneLineErrors, argparse.ArgumentParser)``; the message ends with where to look
    (``see `egsw train --help```).
    """

    prog: str

    def error(self, message: str) -> NoReturn:
        raise InputError(f"{message.rstrip('. ')}; see `{self.prog} --help`")
