"""The options of one ``egsw train`` run: parsed from the command line and ``--config``, before any model loads.

Every ``EGSWConfig`` field (so every GRPOConfig/TrainingArguments field), every
``TrainScriptArguments`` field and every ``ModelArguments`` field (TRL's ``ModelConfig``: dtype,
LoRA through ``--use_peft`` and ``--lora_*``) is an option: from a YAML file (``--config FILE``),
overridden on the command line. TRL's ``TrlParser`` does the parsing. A pre-pass
(``argparse.parse_known_args``) first reads the few options that decide *how* to parse: the model
(a built-in model brings its own recipe as the defaults, egsw.run.recipes), ``--config``,
``--resume`` (which reads the run's own ``config.yaml``) and, for a dry run, the process count to
check for. Booleans are read by transformers' ``string_to_bool`` everywhere, so ``--dry_run maybe``
is refused. Every parse error is an ``InputError``: one line, exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers.hf_argparser import string_to_bool
from trl import ModelConfig, TrlParser

from egsw.config import EGSWConfig
from egsw.errors import InputError, OneLineErrors
from egsw.run.recipes import TrainScriptArguments, recipe_for_model
from egsw.run.run_folder import CONFIG_FILE

CONFIG_FLAG = "--config"
PROGRAM = "egsw train"


@dataclass
class ModelArguments(ModelConfig):
    """Which model to train, in which dtype, with or without LoRA (TRL's ``ModelConfig`` options).

    ``dtype`` is the weights' dtype (float32 by default; ``bf16: true`` is autocast on top of it).
    ``--use_peft`` trains a LoRA adapter (``--lora_r``, ``--lora_alpha``, ``--lora_dropout``,
    ``--lora_target_modules``) through PEFT; ``load_in_4bit``/``load_in_8bit`` are not supported.
    """

    model_name_or_path: str = field(
        default="smollm2-135m-instruct",
        metadata={"help": "A hub id, a local folder, an `egsw train` output folder, or a built-in name."},
    )


@dataclass
class ParsedArguments:
    """What the command line and the config file resolve to, and the process count checks assume."""

    model: ModelArguments
    script: TrainScriptArguments
    training: EGSWConfig
    num_processes: int
    processes_source: str


class TrainParser(OneLineErrors, TrlParser):
    """TRL's parser over (ModelArguments, TrainScriptArguments, EGSWConfig); errors are one line."""


def build_parser(model: str | None = None) -> TrainParser:
    """The ``egsw train`` parser with ``model``'s recipe as defaults (the default model's without one)."""
    parser = TrainParser((ModelArguments, TrainScriptArguments, EGSWConfig), prog=PROGRAM)
    parser.set_defaults(
        **recipe_for_model(model), output_dir=str(Path("runs") / time.strftime("train-%Y%m%d-%H%M%S"))
    )  # fmt: skip
    return parser


class _PrePassParser(OneLineErrors, argparse.ArgumentParser):
    pass


def _pre_pass_parser() -> _PrePassParser:
    """The options that decide how to parse the rest, read with ``parse_known_args`` (both spellings)."""
    parser = _PrePassParser(prog=PROGRAM, add_help=False, allow_abbrev=False)
    parser.add_argument(CONFIG_FLAG)
    parser.add_argument("--model_name_or_path", "--model-name-or-path")
    parser.add_argument("--output_dir", "--output-dir")
    parser.add_argument("--resume", type=string_to_bool, nargs="?", const=True)
    parser.add_argument("--dry_run", "--dry-run", type=string_to_bool, nargs="?", const=True)
    parser.add_argument("--num_processes", "--num-processes")
    return parser


def _read_config(config_path: Path) -> dict[str, Any]:
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


def _declared_processes(option: str | None, config: dict[str, Any]) -> tuple[int, str]:
    """The processes a dry run checks for, and where that number came from."""
    for value, source in (
        (option, "--num_processes"),
        (config.get("num_processes"), "num_processes in the config"),
        (os.environ.get("WORLD_SIZE"), "WORLD_SIZE"),
    ):
        if value is not None:
            try:
                number = int(value)
            except (TypeError, ValueError):
                raise InputError(f"{source} must be a whole number >= 1, got {value!r}") from None
            if number < 1:
                raise InputError(f"{source} must be a whole number >= 1, got {value!r}")
            return number, source
    return 1, "no launcher: one process"


@contextlib.contextmanager
def _on_target_hardware(num_processes: int) -> Iterator[None]:
    """Let the config's own checks run as on the recipe's machines, without touching any device.

    TrainingArguments would set up the distributed state and the device (CUDA, a process group) and
    refuse ``bf16`` on a machine without a bf16 GPU; a dry run checks the recipe for
    ``num_processes`` processes with bf16 GPUs instead, wherever it runs.
    """
    from unittest import mock

    import torch
    import transformers.training_args as training_args_module

    patches = [
        mock.patch.object(EGSWConfig, "world_size", property(lambda self: num_processes)),
        mock.patch.object(EGSWConfig, "device", property(lambda self: torch.device("cpu"))),
    ]
    if hasattr(training_args_module, "is_torch_bf16_gpu_available"):
        patches.append(mock.patch.object(training_args_module, "is_torch_bf16_gpu_available", lambda: True))
    with contextlib.ExitStack() as stack:
        for patch in patches:
            stack.enter_context(patch)
        yield


def parse(argv: Sequence[str]) -> ParsedArguments:
    """Options from the command line and ``--config``; InputError naming the bad option and the fix."""
    argv = list(argv)
    pre, _ = _pre_pass_parser().parse_known_args(argv)
    if pre.resume and pre.config is None:
        # --resume without --config reads the options of the run from OUTPUT_DIR/config.yaml.
        if pre.output_dir is None:
            raise InputError("--resume needs --output_dir naming the folder of the run to continue")
        saved = Path(pre.output_dir) / CONFIG_FILE
        if not saved.is_file():
            raise InputError(
                f"--resume: {pre.output_dir} holds no run ({CONFIG_FILE} is missing); "
                f"pass the --output_dir of an earlier run"
            )
        pre.config = str(saved)
        argv = [CONFIG_FLAG, pre.config, *argv]
    config = _read_config(Path(pre.config)) if pre.config is not None else {}
    parser = build_parser(pre.model_name_or_path or config.get("model_name_or_path"))
    known = {action.dest for action in parser._actions}
    unknown = sorted(str(key) for key in set(config) - known - {"env"})
    if unknown:
        raise InputError(
            f"unknown option(s) {', '.join(unknown)} in {pre.config}; see `{PROGRAM} --help` for the options"
        )
    dry_run = bool(pre.dry_run) or config.get("dry_run") is True
    num_processes, source = _declared_processes(pre.num_processes, config) if dry_run else (0, "")
    try:
        with warnings.catch_warnings(), _on_target_hardware(num_processes) if dry_run else contextlib.nullcontext():
            warnings.simplefilter("ignore", FutureWarning)  # transformers' own deprecation notes
            *parsed, leftover = parser.parse_args_and_config(argv, return_remaining_strings=True)
    except (ValueError, TypeError) as error:
        if isinstance(error, InputError):
            raise
        raise InputError((str(error).strip().splitlines() or [type(error).__name__])[0]) from error
    if leftover:
        raise InputError(f"unknown option(s) {' '.join(leftover)}; see `{PROGRAM} --help` for the options")
    model_args, script_args, training_args = parsed
    if not dry_run:
        num_processes = max(training_args.world_size, 1)
        source = "launched"
    return ParsedArguments(model_args, script_args, training_args, num_processes, source)
