"""Checks of one run's options that need no model: batch arithmetic, rewards, libraries, the output folder.

``check_options`` refuses (``InputError``, one line with the fix) what cannot work and returns notes
worth printing; ``validate_before_loading`` adds the output folder and the training data, and is
the last step before ``egsw train`` loads a model.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from egsw.config import EGSWConfig
from egsw.errors import InputError
from egsw.models import ModelUnavailableError, check_loadable, check_model_name, resolve_model
from egsw.run.options import ModelArguments, ParsedArguments
from egsw.run.recipes import TrainScriptArguments
from egsw.run.run_folder import (
    ResumePoint,
    auto_resume_decision,
    check_output_dir,
    hold_run_lock,
    prepare_output_dir,
)
from egsw.run.task_data import task_examples
from egsw.tasks.examples import Example
from egsw.tasks.rewards import REWARD_FUNCTIONS

# How accelerate's environment variables spell "on".
TRUE_STRINGS = ("yes", "true", "t", "y", "1", "on")


@dataclass
class BatchLayout:
    """How many completions and prompts one optimizer step and one generation take."""

    per_device: int
    accumulation: int
    processes: int
    group_size: int
    steps_per_generation: int

    @property
    def completions_per_step(self) -> int:
        return self.per_device * self.accumulation * self.processes

    @property
    def generation_batch(self) -> int:
        return self.per_device * self.processes * self.steps_per_generation

    @property
    def prompts_per_step(self) -> int:
        return self.completions_per_step // self.group_size

    def problems(self) -> list[str]:
        """What is wrong with the layout, one line each with the fix (empty when it is sound)."""
        found = []
        for what, size in (("optimizer step", self.completions_per_step), ("generation batch", self.generation_batch)):
            if size % self.group_size:
                found.append(
                    f"the {what} holds {size} completions ({self.describe()}), not a multiple of the group size "
                    f"num_generations={self.group_size}; change per_device_train_batch_size, "
                    f"gradient_accumulation_steps or num_generations"
                )
        return found

    def describe(self) -> str:
        return (
            f"{self.per_device} per process x {self.accumulation} accumulation step(s) x {self.processes} process(es)"
        )


def batch_layout(training_args: EGSWConfig, num_processes: int) -> BatchLayout:
    """The batch arithmetic of ``training_args`` on ``num_processes`` processes."""
    steps_per_generation = training_args.steps_per_generation or training_args.gradient_accumulation_steps
    return BatchLayout(
        per_device=training_args.per_device_train_batch_size,
        accumulation=training_args.gradient_accumulation_steps,
        processes=num_processes,
        group_size=training_args.num_generations,
        steps_per_generation=steps_per_generation,
    )


def _sharded_training(training_args: EGSWConfig) -> bool:
    """Whether parameters are sharded over processes (DeepSpeed or FSDP through accelerate or the config)."""
    env = os.environ
    return bool(
        getattr(training_args, "deepspeed", None)
        or getattr(training_args, "fsdp", None)
        or env.get("ACCELERATE_USE_DEEPSPEED", "").lower() in TRUE_STRINGS
        or env.get("ACCELERATE_USE_FSDP", "").lower() in TRUE_STRINGS
    )


def check_options(parsed: ParsedArguments, *, for_dry_run: bool) -> list[str]:
    """Problems that need no model, raised as InputError; returns notes worth printing.

    Checks the model name, the reward functions, the batch arithmetic for the declared processes,
    the libraries the options need (PEFT, vLLM: a note in a dry run, which may run elsewhere), and
    the held-out evaluation under sharded multi-process training.
    """
    model_args, script_args, training_args = parsed.model, parsed.script, parsed.training
    notes: list[str] = []
    try:
        check_model_name(model_args.model_name_or_path)  # ModelNotFoundError is an InputError
    except ModelUnavailableError as error:
        if not for_dry_run:
            raise
        notes.append(f"{error}; it must be there where the run happens")
    unknown_rewards = [name for name in script_args.reward_funcs if name not in REWARD_FUNCTIONS]
    if unknown_rewards:
        raise InputError(f"unknown reward function(s) {unknown_rewards}; choose from {', '.join(REWARD_FUNCTIONS)}")
    weights = training_args.reward_weights
    if weights is not None and len(weights) != len(script_args.reward_funcs):
        raise InputError(
            f"--reward_weights has {len(weights)} values for {len(script_args.reward_funcs)} reward functions "
            f"({', '.join(script_args.reward_funcs)}); give one weight per function"
        )
    if training_args.resume_from_checkpoint:
        raise InputError(
            "--resume_from_checkpoint is not used by egsw train; pass --resume with the run's --output_dir "
            "(it continues from the last complete checkpoint there)"
        )
    problems = batch_layout(training_args, parsed.num_processes).problems()
    if problems:
        raise InputError(problems[0])
    if model_args.load_in_4bit or model_args.load_in_8bit:
        raise InputError(
            "load_in_4bit/load_in_8bit are not supported by egsw train; "
            "use --use_peft with bf16 weights (--dtype bfloat16)"
        )
    missing = []
    if model_args.use_peft and importlib.util.find_spec("peft") is None:
        missing.append("--use_peft needs PEFT: pip install 'egsw[peft]'")
    if training_args.use_vllm and importlib.util.find_spec("vllm") is None:
        missing.append("--use_vllm needs vLLM on the training machine: pip install 'egsw[vllm]' (or --use_vllm false)")
    if missing and not for_dry_run:
        raise InputError(missing[0])
    notes += [f"{message} (not installed here)" for message in missing]
    if training_args.use_vllm and training_args.vllm_mode == "colocate":
        tensor_parallel = training_args.vllm_tensor_parallel_size
        if parsed.num_processes % tensor_parallel:
            raise InputError(
                f"vllm_tensor_parallel_size={tensor_parallel} must divide the {parsed.num_processes} processes in "
                f"colocate mode; change one of them"
            )
    max_length = training_args.vllm_max_model_length
    if training_args.use_vllm and max_length is not None and training_args.max_completion_length >= max_length:
        raise InputError(
            f"max_completion_length={training_args.max_completion_length} leaves no room for the prompt within "
            f"vllm_max_model_length={max_length}; raise vllm_max_model_length or lower max_completion_length"
        )
    evaluates = script_args.eval_before or script_args.eval_after
    if evaluates and parsed.num_processes > 1:
        if not for_dry_run and _sharded_training(training_args):
            raise InputError(
                "the held-out evaluation inside egsw train runs on unsharded weights; with DeepSpeed/FSDP pass "
                "--eval_before false --eval_after false and evaluate the result with `egsw eval`"
            )
        notes.append(
            "every process evaluates the held-out problems before and after training; with several GPUs pass "
            "--eval_before false --eval_after false and use `egsw eval` afterwards"
        )
    if script_args.num_processes and not for_dry_run and script_args.num_processes != parsed.num_processes:
        layout = batch_layout(training_args, parsed.num_processes)
        notes.append(
            f"the recipe is laid out for {script_args.num_processes} processes and {parsed.num_processes} were "
            f"launched: {layout.completions_per_step} completions ({layout.prompts_per_step} prompts) per step"
        )
    return notes


def settle_auto_resume(script_args: TrainScriptArguments, output_dir: Path) -> str:
    """Turn ``--resume auto`` into what it means for ``output_dir``; returns ``auto_resume_decision``'s answer.

    "resume" sets ``resume``; "restart" (a run that never wrote a complete checkpoint) sets
    ``overwrite``; "new" and "finished" set neither (the caller ends a finished run's invocation).
    """
    if script_args.resume != "auto":
        return "resume" if script_args.resume else "new"
    if script_args.overwrite:
        raise InputError("--resume auto decides itself whether to continue or start again; remove --overwrite")
    decision = auto_resume_decision(output_dir)
    script_args.resume = decision == "resume"
    script_args.overwrite = decision == "restart"
    return decision


def cpu_has_native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this CPU multiplies bf16 natively (AVX-512-BF16 or AMX); True where it cannot be told (not Linux)."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return True
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return "avx512_bf16" in flags or "amx_bf16" in flags


def emulated_bf16_note(training_args: EGSWConfig) -> str | None:
    """A note when a run would train under bf16 autocast on a CPU that emulates bf16 (printed once all checks pass)."""
    if training_args.bf16 and training_args.device.type == "cpu" and not cpu_has_native_bf16():
        return (
            "bf16 autocast on this CPU is emulated (no AVX-512-BF16 or AMX): several times slower than "
            "--bf16 false, which trains in fp32"
        )
    return None


def validate_before_loading(
    model_args: ModelArguments, script_args: TrainScriptArguments, training_args: EGSWConfig
) -> tuple[tuple[list[Example], list[Example]], ResumePoint | None]:
    """Checks before any model weights load: the options, the model's name, config and tokenizer, the output
    folder, the training data.

    Returns ``(examples, resume_point)``: the task's (training, held-out) examples, and with
    ``--resume`` the checkpoint to continue from (None otherwise). Only the first process prepares
    the output folder (``--overwrite`` empties it); the others wait for it.
    """
    parsed = ParsedArguments(model_args, script_args, training_args, max(training_args.world_size, 1), "launched")
    for note in check_options(parsed, for_dry_run=False):
        if training_args.process_index == 0:
            print(f"egsw train: note: {note}", file=sys.stderr, flush=True)
    # The model is found (built-in ones built), and its config and tokenizer read, before any output exists.
    check_loadable(resolve_model(model_args.model_name_or_path))
    output_dir = Path(training_args.output_dir)
    settle_auto_resume(script_args, output_dir)
    first = training_args.process_index == 0
    try:
        if first or script_args.resume:
            check_output_dir(output_dir, script_args.overwrite, script_args.resume)
        examples = task_examples(script_args, training_args)
        if first:
            hold_run_lock(output_dir)  # a second run on this folder is refused while this one lives
        resume_point = prepare_output_dir(output_dir, script_args.overwrite, script_args.resume) if first else None
    except OSError as error:
        raise InputError(
            f"output folder {output_dir} is not writable ({error.strerror or error}); choose another --output_dir"
        ) from error
    except ValueError as error:
        raise InputError(str(error)) from error
    if training_args.world_size > 1:
        from accelerate import PartialState

        PartialState().wait_for_everyone()
    if script_args.resume and resume_point is None:
        resume_point = check_output_dir(output_dir, script_args.overwrite, resume=True)
    note = emulated_bf16_note(training_args)
    if note and first:
        print(f"egsw train: note: {note}", file=sys.stderr, flush=True)
    return examples, resume_point
