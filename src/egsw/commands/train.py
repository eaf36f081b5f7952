"""``egsw train``: GRPO+EGSW fine-tuning with TRL's conventions.

Every ``EGSWConfig`` field (so every GRPOConfig/TrainingArguments field), every
``TrainScriptArguments`` field and every ``ModelArguments`` field (TRL's ``ModelConfig``: dtype,
LoRA through ``--use_peft`` and ``--lora_*``) is an option: from a YAML file (``--config FILE``),
overridden on the command line. With no arguments it runs ``egsw.recipes.DEFAULT_RECIPE``: the
bundled SmolLM2-135M-Instruct on the procedural arithmetic task; ``--model_name_or_path tiny-arith``
takes the testbed's recipe instead (``egsw.recipes.MODEL_RECIPES``). All input is validated before any
model is loaded; a bad option ends with one line on stderr and exit status 2.

``--dry-run`` prints the resolved options, the number of processes and the effective batch, and
checks them for the processes the recipe is laid out for (``--num_processes``), as on its GPUs,
without loading a model or a data set, writing a file or initialising a device. ``--resume``
continues the run in ``--output_dir`` from its last complete checkpoint (``egsw.experiments``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from trl import ModelConfig

from egsw.commands import CommandError

INTERRUPTED_STATUS = 130
CONFIG_FLAG = "--config"
TRUE_STRINGS = ("yes", "true", "t", "y", "1")


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
    script: Any  # egsw.recipes.TrainScriptArguments
    training: Any  # egsw.config.EGSWConfig
    num_processes: int
    processes_source: str


def build_parser(model: str | None = None) -> Any:  # noqa: ANN401 - a TrlParser
    """TRL's parser over (ModelArguments, TrainScriptArguments, EGSWConfig) with ``model``'s recipe as defaults."""
    from trl import TrlParser

    from egsw.config import EGSWConfig
    from egsw.recipes import TrainScriptArguments, recipe_for_model

    class OneLineErrorParser(TrlParser):
        def error(self, message: str) -> NoReturn:
            raise CommandError(f"{message}; see `egsw train --help`")

    parser = OneLineErrorParser((ModelArguments, TrainScriptArguments, EGSWConfig), prog="egsw train")
    parser.set_defaults(
        **recipe_for_model(model), output_dir=str(Path("runs") / time.strftime("train-%Y%m%d-%H%M%S"))
    )  # fmt: skip
    return parser


# ---------------------------------------------------------------------------------------------
# Reading options before the parser does (needed to choose how to parse)


def _option_value(argv: Sequence[str], *names: str) -> str | None:
    """The value of ``--name value`` or ``--name=value`` on the command line (the last one), else None."""
    value = None
    for index, token in enumerate(argv):
        for name in names:
            if token == name and index + 1 < len(argv):
                value = argv[index + 1]
            elif token.startswith(name + "="):
                value = token[len(name) + 1 :]
    return value


def _flag(argv: Sequence[str], *names: str) -> bool | None:
    """A boolean option as HfArgumentParser reads it (``--flag``, ``--flag true``, ``--flag=false``), else None."""
    found = None
    for index, token in enumerate(argv):
        for name in names:
            if token == name:
                following = argv[index + 1] if index + 1 < len(argv) else None
                found = True if following is None or following.startswith("--") else following.lower() in TRUE_STRINGS
            elif token.startswith(name + "="):
                found = token[len(name) + 1 :].lower() in TRUE_STRINGS
    return found


def _read_config(argv: Sequence[str]) -> dict[str, Any]:
    """The YAML mapping ``--config`` names ({} without one); CommandError when it is missing or malformed."""
    import yaml

    if CONFIG_FLAG not in argv:
        return {}
    index = list(argv).index(CONFIG_FLAG)
    if index + 1 >= len(argv):
        raise CommandError("--config needs a YAML file path")
    config_path = Path(argv[index + 1])
    if not config_path.is_file():
        raise CommandError(
            f"config file {config_path} does not exist; pass a YAML file such as configs/smollm2-cpu.yaml"
        )
    try:
        config = yaml.safe_load(config_path.read_text())
    except yaml.YAMLError as error:
        raise CommandError(f"config file {config_path} is not valid YAML: {str(error).splitlines()[0]}") from error
    config = config or {}
    if not isinstance(config, dict):
        raise CommandError(f"config file {config_path} must hold a YAML mapping of option: value")
    return config


def _with_resume_config(argv: list[str]) -> list[str]:
    """``--resume`` without ``--config`` reads the options of the run from ``OUTPUT_DIR/config.yaml``."""
    from egsw.experiments import CONFIG_FILE

    if not _flag(argv, "--resume") or CONFIG_FLAG in argv:
        return argv
    output_dir = _option_value(argv, "--output_dir", "--output-dir")
    if output_dir is None:
        raise CommandError("--resume needs --output_dir naming the folder of the run to continue")
    saved = Path(output_dir) / CONFIG_FILE
    if not saved.is_file():
        raise CommandError(
            f"--resume: {output_dir} holds no run ({CONFIG_FILE} is missing); pass the --output_dir of an earlier run"
        )
    return [CONFIG_FLAG, str(saved), *argv]


def _declared_processes(argv: Sequence[str], config: dict[str, Any]) -> tuple[int, str]:
    """The processes a dry run checks for, and where that number came from."""
    for value, source in (
        (_option_value(argv, "--num_processes", "--num-processes"), "--num_processes"),
        (config.get("num_processes"), "num_processes in the config"),
        (os.environ.get("WORLD_SIZE"), "WORLD_SIZE"),
    ):
        if value is not None:
            try:
                number = int(value)
            except (TypeError, ValueError):
                raise CommandError(f"{source} must be a whole number >= 1, got {value!r}") from None
            if number < 1:
                raise CommandError(f"{source} must be a whole number >= 1, got {value!r}")
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

    from egsw.config import EGSWConfig

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
    """Options from the command line and ``--config``; CommandError naming the bad option and the fix."""
    argv = _with_resume_config(list(argv))
    config = _read_config(argv)
    # A built-in model brings its own recipe (egsw.recipes.MODEL_RECIPES) as the defaults under --config.
    model = _option_value(argv, "--model_name_or_path", "--model-name-or-path") or config.get("model_name_or_path")
    parser = build_parser(model)
    known = {action.dest for action in parser._actions}
    unknown = sorted(set(config) - known - {"env"})
    if unknown:
        raise CommandError(
            f"unknown option(s) {', '.join(unknown)} in {argv[argv.index(CONFIG_FLAG) + 1]}; "
            f"see `egsw train --help` for the options"
        )
    dry_run = bool(_flag(argv, "--dry_run", "--dry-run") or (config.get("dry_run") is True))
    num_processes, source = _declared_processes(argv, config) if dry_run else (0, "")
    try:
        with warnings.catch_warnings(), _on_target_hardware(num_processes) if dry_run else contextlib.nullcontext():
            warnings.simplefilter("ignore", FutureWarning)  # transformers' own deprecation notes
            *parsed, leftover = parser.parse_args_and_config(argv, return_remaining_strings=True)
    except (ValueError, TypeError) as error:
        raise CommandError(str(error).strip().splitlines()[0]) from error
    if leftover:
        raise CommandError(f"unknown option(s) {' '.join(leftover)}; see `egsw train --help` for the options")
    model_args, script_args, training_args = parsed
    if not dry_run:
        num_processes = max(training_args.world_size, 1)
        source = "launched"
    return ParsedArguments(model_args, script_args, training_args, num_processes, source)


def parse_arguments(argv: Sequence[str]) -> tuple[Any, Any, Any]:
    """(model, script, training) arguments, or CommandError naming the bad option and the fix."""
    parsed = parse(argv)
    return parsed.model, parsed.script, parsed.training


# ---------------------------------------------------------------------------------------------
# Checks


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


def batch_layout(training_args: Any, num_processes: int) -> BatchLayout:  # noqa: ANN401 - an EGSWConfig
    """The batch arithmetic of ``training_args`` on ``num_processes`` processes."""
    steps_per_generation = training_args.steps_per_generation or training_args.gradient_accumulation_steps
    return BatchLayout(
        per_device=training_args.per_device_train_batch_size,
        accumulation=training_args.gradient_accumulation_steps,
        processes=num_processes,
        group_size=training_args.num_generations,
        steps_per_generation=steps_per_generation,
    )


def _sharded_training(training_args: Any) -> bool:  # noqa: ANN401
    """Whether parameters are sharded over processes (DeepSpeed or FSDP through accelerate or the config)."""
    env = os.environ
    return bool(
        getattr(training_args, "deepspeed", None)
        or getattr(training_args, "fsdp", None)
        or env.get("ACCELERATE_USE_DEEPSPEED", "").lower() in TRUE_STRINGS
        or env.get("ACCELERATE_USE_FSDP", "").lower() in TRUE_STRINGS
    )


def check_options(parsed: ParsedArguments, *, for_dry_run: bool) -> list[str]:
    """Problems that need no model, raised as CommandError; returns notes worth printing.

    Checks the model name, the reward functions, the batch arithmetic for the declared processes,
    the libraries the options need (PEFT, vLLM: a note in a dry run, which may run elsewhere), and
    the held-out evaluation under sharded multi-process training.
    """
    from egsw.models import ModelNotFoundError, check_model_name
    from egsw.rewards import REWARD_FUNCTIONS

    model_args, script_args, training_args = parsed.model, parsed.script, parsed.training
    notes: list[str] = []
    try:
        check_model_name(model_args.model_name_or_path)
    except ModelNotFoundError as error:
        raise CommandError(str(error)) from error
    unknown_rewards = [name for name in script_args.reward_funcs if name not in REWARD_FUNCTIONS]
    if unknown_rewards:
        raise CommandError(f"unknown reward function(s) {unknown_rewards}; choose from {', '.join(REWARD_FUNCTIONS)}")
    weights = training_args.reward_weights
    if weights is not None and len(weights) != len(script_args.reward_funcs):
        raise CommandError(
            f"--reward_weights has {len(weights)} values for {len(script_args.reward_funcs)} reward functions "
            f"({', '.join(script_args.reward_funcs)}); give one weight per function"
        )
    if training_args.resume_from_checkpoint:
        raise CommandError(
            "--resume_from_checkpoint is not used by egsw train; pass --resume with the run's --output_dir "
            "(it continues from the last complete checkpoint there)"
        )
    problems = batch_layout(training_args, parsed.num_processes).problems()
    if problems:
        raise CommandError(problems[0])
    if model_args.load_in_4bit or model_args.load_in_8bit:
        raise CommandError(
            "load_in_4bit/load_in_8bit are not supported by egsw train; "
            "use --use_peft with bf16 weights (--dtype bfloat16)"
        )
    missing = []
    if model_args.use_peft and importlib.util.find_spec("peft") is None:
        missing.append("--use_peft needs PEFT: pip install 'egsw[peft]'")
    if training_args.use_vllm and importlib.util.find_spec("vllm") is None:
        missing.append("--use_vllm needs vLLM on the training machine: pip install 'egsw[vllm]' (or --use_vllm false)")
    if missing and not for_dry_run:
        raise CommandError(missing[0])
    notes += [f"{message} (not installed here)" for message in missing]
    if training_args.use_vllm and training_args.vllm_mode == "colocate":
        tensor_parallel = training_args.vllm_tensor_parallel_size
        if parsed.num_processes % tensor_parallel:
            raise CommandError(
                f"vllm_tensor_parallel_size={tensor_parallel} must divide the {parsed.num_processes} processes in "
                f"colocate mode; change one of them"
            )
    max_length = training_args.vllm_max_model_length
    if training_args.use_vllm and max_length is not None and training_args.max_completion_length >= max_length:
        raise CommandError(
            f"max_completion_length={training_args.max_completion_length} leaves no room for the prompt within "
            f"vllm_max_model_length={max_length}; raise vllm_max_model_length or lower max_completion_length"
        )
    evaluates = script_args.eval_before or script_args.eval_after
    if evaluates and parsed.num_processes > 1:
        if not for_dry_run and _sharded_training(training_args):
            raise CommandError(
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


def validate_before_loading(model_args: Any, script_args: Any, training_args: Any) -> tuple[Any, Any]:  # noqa: ANN401
    """Checks that need no model: the options, the output folder, the training data.

    Returns ``(examples, resume_point)``: the task's (training, held-out) examples, and with
    ``--resume`` the checkpoint to continue from (None otherwise). Only the first process prepares
    the output folder (``--overwrite`` empties it); the others wait for it.
    """
    from egsw.experiments import check_output_dir, prepare_output_dir, task_examples

    parsed = ParsedArguments(model_args, script_args, training_args, max(training_args.world_size, 1), "launched")
    for note in check_options(parsed, for_dry_run=False):
        if training_args.process_index == 0:
            print(f"egsw train: note: {note}", file=sys.stderr, flush=True)
    output_dir = Path(training_args.output_dir)
    first = training_args.process_index == 0
    try:
        if first or script_args.resume:
            check_output_dir(output_dir, script_args.overwrite, script_args.resume)
        examples = task_examples(script_args, training_args)
        resume_point = prepare_output_dir(output_dir, script_args.overwrite, script_args.resume) if first else None
    except ValueError as error:
        raise CommandError(str(error)) from error
    if training_args.world_size > 1:
        from accelerate import PartialState

        PartialState().wait_for_everyone()
    if script_args.resume and resume_point is None:
        resume_point = check_output_dir(output_dir, script_args.overwrite, resume=True)
    return examples, resume_point


# ---------------------------------------------------------------------------------------------
# The dry run


def dry_run_report(parsed: ParsedArguments) -> str:
    """The resolved options as YAML, then what the run would do; CommandError on a problem."""
    import yaml

    from egsw.experiments import MATH_SYSTEM_PROMPT, MATH_TASK, MATH_TRAIN_PROBLEMS, check_output_dir, resolved_options
    from egsw.tasks.catalog import PRESETS, preset_files

    model_args, script_args, training_args = parsed.model, parsed.script, parsed.training
    notes = check_options(parsed, for_dry_run=True)
    output_dir = Path(training_args.output_dir)
    try:
        resume_point = check_output_dir(output_dir, script_args.overwrite, script_args.resume)
    except ValueError as error:
        raise CommandError(str(error)) from error
    data_dir = script_args.data_dir
    if (
        script_args.task == MATH_TASK
        and data_dir is not None
        and not preset_files(PRESETS[MATH_TASK], data_dir, "train")
    ):
        raise CommandError(
            f"{MATH_TASK}: no local copy in {data_dir}; put {MATH_TASK}/data/train-*.parquet there "
            f"(hf download --repo-type dataset {PRESETS[MATH_TASK].hub_id} --local-dir {data_dir}/{MATH_TASK})"
        )

    layout = batch_layout(training_args, parsed.num_processes)
    lora = (
        f"LoRA r={model_args.lora_r} alpha={model_args.lora_alpha} dropout={model_args.lora_dropout} on "
        f"{model_args.lora_target_modules or 'the default modules of the architecture'}"
        if model_args.use_peft
        else "full fine-tuning"
    )
    if script_args.task == MATH_TASK:
        source = script_args.data_dir or f"the Hugging Face Hub ({PRESETS[MATH_TASK].hub_id})"
        prompt = MATH_SYSTEM_PROMPT if script_args.system_prompt is None else script_args.system_prompt
        task = f"{MATH_TASK}: MATH's training split from {source}; system prompt {prompt[:60]!r}..."
    else:
        levels = ",".join(map(str, script_args.task_levels))
        task = f"procedural: kinds {','.join(script_args.task_kinds)}, levels {levels}"
    if training_args.egsw_mode == "none":
        method = "GRPO (egsw_mode none)"
    else:
        method = (
            f"GRPO+EGSW {training_args.egsw_mode}-wise: alpha {training_args.egsw_alpha}, temperature P "
            f"{training_args.egsw_temperature}, rescale {'on' if training_args.egsw_rescale else 'off'}"
        )
    if not training_args.use_vllm:
        generation = "transformers generate"
    elif training_args.vllm_mode == "colocate":
        generation = (
            f"vLLM colocate (tensor parallel {training_args.vllm_tensor_parallel_size}, "
            f"{training_args.vllm_gpu_memory_utilization:.0%} of each GPU's memory)"
        )
    else:
        where = training_args.vllm_server_base_url or (
            f"{training_args.vllm_server_host}:{training_args.vllm_server_port}"
        )
        generation = f"vLLM server at {where} (started beforehand on GPUs of its own: `trl vllm-serve`)"
    generation += f"; up to {training_args.max_completion_length} new tokens at temperature {training_args.temperature}"
    if training_args.max_steps > 0:
        steps = f"max_steps {training_args.max_steps} ({training_args.max_steps * layout.prompts_per_step} prompts)"
    else:
        steps = f"{training_args.num_train_epochs:g} epoch(s) of the training set"
        if script_args.task == MATH_TASK:
            per_epoch = MATH_TRAIN_PROBLEMS // layout.prompts_per_step
            steps += f" (MATH: {MATH_TRAIN_PROBLEMS:,} problems, {per_epoch} optimizer steps per epoch)"
    precision = (
        f"weights {model_args.dtype}, {'bf16 autocast' if training_args.bf16 else 'no bf16'}, gradient checkpointing "
        f"{'on' if training_args.gradient_checkpointing else 'off'}"
    )
    if resume_point is not None:
        output = f"{output_dir}: resume from {resume_point.checkpoint.name} (step {resume_point.step})"
    else:
        output = f"{output_dir} ({'replaced' if script_args.overwrite else 'new'})"
    rows = [
        ("model", f"{model_args.model_name_or_path} ({lora})"),
        ("task", task),
        ("method", method),
        ("processes", f"{parsed.num_processes} ({parsed.processes_source})"),
        (
            "batch",
            f"{layout.describe()} = {layout.completions_per_step} completions per optimizer step = "
            f"{layout.prompts_per_step} prompts x group size {layout.group_size}; generation batch "
            f"{layout.generation_batch} (group size divides both)",
        ),
        ("generation", generation),
        ("steps", steps),
        ("precision", precision),
        ("output", output),
        *(("note", note) for note in notes),
    ]
    options = resolved_options(script_args, training_args, model_args)
    lines = ["# resolved options (the run's config.yaml)", yaml.safe_dump(options, sort_keys=True).rstrip(), ""]
    lines.append("egsw train --dry-run: nothing loaded, nothing written")
    lines += [f"  {name:<12}{value}" for name, value in rows]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# The run


def print_summary(outcome: Any) -> None:  # noqa: ANN401 - an egsw.experiments.TrainOutcome
    """The few lines a user reads at the end: accuracy before -> after, time, where the files are."""
    from egsw.stats import paired_difference

    minutes, seconds = divmod(int(round(outcome.seconds)), 60)
    state = "interrupted" if outcome.interrupted else "done"
    lines = [f"egsw train: {state} in {minutes}m{seconds:02d}s"]
    before, after = outcome.before, outcome.after

    def accuracy(result: Any) -> str:  # noqa: ANN401
        return f"{100 * result.accuracy:.1f}% [{100 * result.accuracy_low:.1f}, {100 * result.accuracy_high:.1f}]"

    if before and after and before.per_problem_correct:
        diff = paired_difference(before.per_problem_correct, after.per_problem_correct)
        lines.append(
            f"  held-out accuracy ({before.num_problems} problems, greedy, 95% CI): {accuracy(before)} -> "
            f"{accuracy(after)}; change {100 * diff['mean']:+.1f} points [{100 * diff['low']:+.1f}, "
            f"{100 * diff['high']:+.1f}], McNemar p={diff['p_value']:.2g}"
        )
        lines.append(f"  mean completion length: {before.mean_length:.1f} -> {after.mean_length:.1f} tokens")
    elif before:
        lines.append(f"  held-out accuracy before training: {accuracy(before)}")
    elif after:
        lines.append(f"  held-out accuracy after training: {accuracy(after)}")
    folder = outcome.output_dir
    lines.append(f"  outputs in {folder}/: metrics.jsonl, eval.json, plots/, tensorboard/, " + (
        "checkpoint-*/ (continue with --resume)" if outcome.interrupted else "model/"
    ))  # fmt: skip
    print("\n".join(lines), flush=True)


def main(argv: Sequence[str]) -> int:
    """Parse and validate, then train; 0 when done, 130 when interrupted (outputs kept)."""
    if any(flag in argv for flag in ("-h", "--help")):
        build_parser().print_help()
        return 0
    parsed = parse(argv)
    if parsed.script.dry_run:
        report = dry_run_report(parsed)
        if os.environ.get("RANK", "0") == "0":
            print(report, flush=True)
        return 0
    model_args, script_args, training_args = parsed.model, parsed.script, parsed.training
    examples, resume_point = validate_before_loading(model_args, script_args, training_args)
    # A shell starts background jobs (`cmd &`, nohup, `egsw compare` run that way) with SIGINT
    # ignored, and Python then never raises KeyboardInterrupt: SIGINT would not save a checkpoint.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    from egsw.experiments import run_training

    warnings.filterwarnings("ignore", category=FutureWarning)  # transformers' deprecation notes, once per call

    outcome = run_training(
        script_args, training_args, model_args.model_name_or_path, model_args,
        examples=examples, resume_point=resume_point,
    )  # fmt: skip
    if training_args.process_index == 0:
        print_summary(outcome)
    return INTERRUPTED_STATUS if outcome.interrupted else 0
