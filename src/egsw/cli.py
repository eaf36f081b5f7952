"""The ``egsw`` command: ``egsw train | eval | score | compare | sweep | report``; each lives in ``egsw.commands``.

Subcommands are imported only when called, so ``egsw --help`` and input errors answer fast.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from egsw.commands import fail
from egsw.errors import InputError

COMMANDS = {
    "train": ("egsw.commands.train", "fine-tune a model with GRPO+EGSW (default: bundled SmolLM2 on arithmetic)"),
    "eval": ("egsw.commands.evaluate", "evaluate a model on procedural, named or local sets: accuracy, pass@k"),
    "score": ("egsw.commands.score", "score completions from a JSONL file with the training reward's verifier"),
    "compare": ("egsw.commands.compare", "train several methods over seeds side by side and write one report"),
    "sweep": ("egsw.commands.sweep", "sweep EGSW's alpha x temperature over seeds: heatmaps to choose defaults"),
    "report": ("egsw.commands.report", "a study's report (tables, figures) from its results folder alone"),
}


def usage() -> str:
    lines = ["usage: egsw <command> [options]   (egsw <command> --help for its options)", "", "commands:"]
    lines += [f"  {name:<8} {summary}" for name, (_, summary) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; returns its exit status (2 for a usage or input error)."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if not arguments or arguments[0] in ("-h", "--help"):
        print(usage())
        return 0 if arguments else 2
    if arguments[0] in ("-V", "--version"):
        from egsw import __version__

        print(f"egsw {__version__}")
        return 0
    name, rest = arguments[0], arguments[1:]
    if name not in COMMANDS:
        return fail("egsw", f"unknown command {name!r}; choose from {', '.join(COMMANDS)}")
    module = importlib.import_module(COMMANDS[name][0])
    try:
        return int(module.main(rest) or 0)
    except InputError as error:
        return fail(f"egsw {name}", str(error))


if __name__ == "__main__":
    sys.exit(main())
