"""``egsw train``: GRPO+EGSW fine-tuning with TRL's conventions.

Every ``EGSWConfig`` field (so every GRPOConfig/TrainingArguments field) and every
``TrainScriptArguments`` field is an option: from a YAML file (``--config FILE``), overridden on
the command line. With no arguments it runs ``egsw.recipes.DEFAULT_RECIPE``: the bundled
SmolLM2-135M-Instruct on the procedural arithmetic task. All input is validated before any model
is loaded; a bad option ends with one line on stderr and exit status 2.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from egsw.commands import CommandError

INTERRUPTED_STATUS = 130


@dataclass
class ModelArguments:
    """Which model to train (TRL's scripts call this option ``--model_name_or_path`` too)."""

    model_name_or_path: str = field(
        default="smollm2-135m-instruct",
        metadata={"help": "A hub id, a local folder, an `egsw train` output folder, or a built-in name."},
    )


def build_parser() -> Any:  # noqa: ANN401 - a TrlParser
    """TRL's parser over (ModelArguments, TrainScriptArguments, EGSWConfig) with the default recipe."""
    from trl import TrlParser

    from egsw.config import EGSWConfig
    from egsw.recipes import DEFAULT_RECIPE, TrainScriptArguments

    class OneLineErrorParser(TrlParser):
        def error(self, message: str) -> NoReturn:
            raise CommandError(f"{message}; see `egsw train --help`")

    parser = OneLineErrorParser((ModelArguments, TrainScriptArguments, EGSWConfig), prog="egsw train")
    parser.set_defaults(
        **DEFAULT_RECIPE, output_dir=str(Path("runs") / time.strftime("train-%Y%m%d-%H%M%S"))
    )  # fmt: skip
    return parser


def parse_arguments(argv: Sequence[str]) -> tuple[Any, Any, Any]:
    """(model, script, training) arguments, or CommandError naming the bad option and the fix."""
    import yaml

    argv = list(argv)
    if "--config" in argv:
        index = argv.index("--config")
        if index + 1 >= len(argv):
            raise CommandError("--config needs a YAML file path")
        config_path = Path(argv[index + 1])
        if not config_path.is_file():
            raise CommandError(
                f"config file {config_path} does not exist; pass a YAML file such as configs/smollm2-cpu.yaml"
            )
        try:
            yaml.safe_load(config_path.read_text())
        except yaml.YAMLError as error:
            raise CommandError(f"config file {config_path} is not valid YAML: {str(error).splitlines()[0]}") from error
    parser = build_parser()
    known = {action.dest for action in parser._actions}
    if "--config" in argv:
        config = yaml.safe_load(Path(argv[argv.index("--config") + 1]).read_text()) or {}
        if not isinstance(config, dict):
            raise CommandError(
                f"config file {argv[argv.index('--config') + 1]} must hold a YAML mapping of option: value"
            )
        unknown = sorted(set(config) - known - {"env"})
        if unknown:
            raise CommandError(
                f"unknown option(s) {', '.join(unknown)} in {argv[argv.index('--config') + 1]}; "
                f"see `egsw train --help` for the options"
            )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # transformers' own deprecation notes
            *parsed, leftover = parser.parse_args_and_config(argv, return_remaining_strings=True)
    except (ValueError, TypeError) as error:
        raise CommandError(str(error).strip().splitlines()[0]) from error
    if leftover:
        raise CommandError(f"unknown option(s) {' '.join(leftover)}; see `egsw train --help` for the options")
    model_args, script_args, training_args = parsed
    return model_args, script_args, training_args


def validate_before_loading(model_args: Any, script_args: Any, training_args: Any) -> None:  # noqa: ANN401
    """Checks that need no model: the model name, the output folder, the batch arithmetic."""
    from egsw.experiments import prepare_output_dir
    from egsw.models import ModelNotFoundError, check_model_name
    from egsw.rewards import REWARD_FUNCTIONS

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
    try:
        from egsw.experiments import task_examples

        task_examples(script_args, training_args)
        prepare_output_dir(Path(training_args.output_dir), script_args.overwrite)
    except ValueError as error:
        raise CommandError(str(error)) from error


def print_summary(outcome: Any) -> None:  # noqa: ANN401 - an egsw.experiments.TrainOutcome
    """The few lines a user reads at the end: accuracy before -> after, time, where the files are."""
    from egsw.stats import paired_difference

    minutes, seconds = divmod(int(round(outcome.seconds)), 60)
    state = "interrupted" if outcome.interrupted else "done"
    lines = [f"egsw train: {state} in {minutes}m{seconds:02d}s"]
    before, after = outcome.before, outcome.after

    def accuracy(result: Any) -> str:  # noqa: ANN401
        return f"{100 * result.accuracy:.1f}% [{100 * result.accuracy_low:.1f}, {100 * result.accuracy_high:.1f}]"

    if before and after:
        diff = paired_difference(before.per_problem_correct, after.per_problem_correct)
        lines.append(
            f"  held-out accuracy ({before.num_problems} problems, greedy, 95% CI): {accuracy(before)} -> "
            f"{accuracy(after)}; change {100 * diff['mean']:+.1f} points [{100 * diff['low']:+.1f}, "
            f"{100 * diff['high']:+.1f}], McNemar p={diff['p_value']:.2g}"
        )
        lines.append(f"  mean completion length: {before.mean_length:.1f} -> {after.mean_length:.1f} tokens")
    elif before:
        lines.append(f"  held-out accuracy before training: {accuracy(before)}")
    folder = outcome.output_dir
    lines.append(f"  outputs in {folder}/: metrics.jsonl, eval.json, plots/, tensorboard/, " + (
        "checkpoint-*/ (resume from here)" if outcome.interrupted else "model/"
    ))  # fmt: skip
    print("\n".join(lines), flush=True)


def main(argv: Sequence[str]) -> int:
    """Parse and validate, then train; 0 when done, 130 when interrupted (outputs kept)."""
    if any(flag in argv for flag in ("-h", "--help")):
        build_parser().print_help()
        return 0
    model_args, script_args, training_args = parse_arguments(argv)
    validate_before_loading(model_args, script_args, training_args)

    from egsw.experiments import run_training

    warnings.filterwarnings("ignore", category=FutureWarning)  # transformers' deprecation notes, once per call

    outcome = run_training(script_args, training_args, model_args.model_name_or_path)
    print_summary(outcome)
    return INTERRUPTED_STATUS if outcome.interrupted else 0
