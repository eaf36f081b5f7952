"""The options of one ``egsw train`` run: parsed from the command line and ``--config``, before any model loads.

Every ``EGSWConfig`` field (so every GRPOConfig/TrainingArguments field), every
``TrainScriptArguments`` field and every ``ModelArguments`` field (TRL's ``ModelConfig``: dtype,
LoRA through ``--use_peft`` and ``--lora_*``) is an option: from a YAML file (``--config FILE``),
overridden on the command line. TRL's ``TrlParser`` does the parsing, after ``egsw.run.pre_pass``
has read the options that decide how (the model's recipe as the defaults, ``--config``,
``--resume``, a dry run's process count). Every parse error is an ``InputError``: one line, exit 2.
"""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trl import ModelConfig, TrlParser

from egsw.config import EGSWConfig
from egsw.errors import InputError, OneLineErrors
from egsw.run.pre_pass import PROGRAM, pre_pass
from egsw.run.recipes import TrainScriptArguments, recipe_for_model


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
    pre = pre_pass(argv)
    argv, config = pre.argv, pre.config
    parser = build_parser(pre.model)
    known = {action.dest for action in parser._actions}
    unknown = sorted(str(key) for key in set(config) - known - {"env"})
    if unknown:
        raise InputError(
            f"unknown option(s) {', '.join(unknown)} in {pre.config_path}; see `{PROGRAM} --help` for the options"
        )
    dry_run = pre.dry_run
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
