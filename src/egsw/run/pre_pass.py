"""The options that decide how ``egsw train`` parses the rest, read first and cheaply (no TRL import).

``pre_pass`` reads, with ``argparse.parse_known_args``, the model (a built-in model brings its own
recipe as the defaults), ``--config`` (its YAML is loaded here, with one-line errors), ``--resume``
(which reads the run's own ``config.yaml``), and for a dry run the process count to check for.
Booleans are read by transformers' ``string_to_bool``, as HfArgumentParser reads them, so
``--dry_run maybe`` is refused. ``egsw train`` checks the model's name from here before it imports
TRL, so that an unknown model is refused in a second or two.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers.hf_argparser import string_to_bool

from egsw.errors import InputError, OneLineErrors
from egsw.run.recipes import recipe_for_model, resume_mode

CONFIG_FLAG = "--config"
PROGRAM = "egsw train"


@dataclass
class PrePass:
    """``argv`` (with ``--config`` added for ``--resume``), the YAML it names, and what was read early."""

    argv: list[str]
    config_path: str | None
    config: dict[str, Any]
    model: str
    dry_run: bool
    num_processes: str | None


class _PrePassParser(OneLineErrors, argparse.ArgumentParser):
    pass


def _pre_pass_parser() -> _PrePassParser:
    """The options that decide how to parse the rest, read with ``parse_known_args`` (both spellings)."""
    parser = _PrePassParser(prog=PROGRAM, add_help=False, allow_abbrev=False)
    parser.add_argument(CONFIG_FLAG)
    parser.add_argument("--model_name_or_path", "--model-name-or-path")
    parser.add_argument("--output_dir", "--output-dir")
    parser.add_argument("--resume", type=_resume_option, nargs="?", const=True)
    parser.add_argument("--dry_run", "--dry-run", type=string_to_bool, nargs="?", const=True)
    parser.add_argument("--num_processes", "--num-processes")
    return parser


def _resume_option(value: str) -> bool | str:
    try:
        return resume_mode(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def read_config(config_path: Path) -> dict[str, Any]:
    """The YAML mapping of ``--config``; InputError when it is missing, malformed or not a mapping."""
    import yaml

    if not config_path.is_file():
        raise InputError(f"config file {config_path} does not exist; pass a YAML file such as configs/smollm2-cpu.yaml")
    try:
        config = yaml.safe_load(config_path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise InputError(f"config file {config_path} is not valid YAML: {first_line}") from error
    config = config or {}
    if not isinstance(config, dict):
        raise InputError(f"config file {config_path} must hold a YAML mapping of option: value")
    return config


def pre_pass(argv: Sequence[str]) -> PrePass:
    """Read the options that decide how to parse; InputError on a bad value, a missing or malformed config."""
    argv = list(argv)
    pre, _ = _pre_pass_parser().parse_known_args(argv)
    if pre.resume and pre.config is None:
        # --resume without --config reads the options of the run from OUTPUT_DIR/config.yaml.
        from egsw.run.run_folder import CONFIG_FILE  # imports the trainer's callbacks: only when needed

        if pre.output_dir is None:
            raise InputError("--resume needs --output_dir naming the folder of the run to continue")
        saved: Path | None = Path(pre.output_dir) / CONFIG_FILE
        assert saved is not None
        if pre.resume == "auto" and not saved.is_file():
            saved = None  # nothing to continue: a new run with the options given
        elif not saved.is_file():
            raise InputError(
                f"--resume: {pre.output_dir} holds no run ({CONFIG_FILE} is missing); "
                f"pass the --output_dir of an earlier run"
            )
        if saved is not None:
            pre.config = str(saved)
            argv = [CONFIG_FLAG, pre.config, *argv]
    config = read_config(Path(pre.config)) if pre.config is not None else {}
    model = pre.model_name_or_path or config.get("model_name_or_path") or recipe_for_model(None)["model_name_or_path"]
    return PrePass(
        argv=argv,
        config_path=pre.config,
        config=config,
        model=str(model),
        dry_run=bool(pre.dry_run) or config.get("dry_run") is True,
        num_processes=pre.num_processes,
    )
