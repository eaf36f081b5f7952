"""``egsw train``: GRPO+EGSW fine-tuning with TRL's conventions.

Every ``EGSWConfig`` field (so every GRPOConfig/TrainingArguments field), every
``TrainScriptArguments`` field and every ``ModelArguments`` field (TRL's ``ModelConfig``: dtype,
LoRA through ``--use_peft`` and ``--lora_*``) is an option: from a YAML file (``--config FILE``),
overridden on the command line (egsw.run.options). With no arguments it runs
``egsw.run.recipes.DEFAULT_RECIPE``: the bundled SmolLM2-135M-Instruct on the procedural arithmetic
task; ``--model_name_or_path tiny-arith`` takes the testbed's recipe instead. All input is validated
before any model is loaded (egsw.run.checks); a bad option ends with one line on stderr and exit
status 2.

``--dry-run`` prints the resolved options, the number of processes and the effective batch
(egsw.run.dry_run). ``--resume`` continues the run in ``--output_dir`` from its last complete
checkpoint (egsw.run.run_folder).
"""

from __future__ import annotations

import os
import signal
import warnings
from collections.abc import Sequence

from egsw.run.checks import validate_before_loading
from egsw.run.dry_run import dry_run_report
from egsw.run.options import build_parser, parse
from egsw.run.training import TrainOutcome, run_training
from egsw.stats import paired_difference
from egsw.tasks.evaluation import EvalResult

INTERRUPTED_STATUS = 130


def print_summary(outcome: TrainOutcome) -> None:
    """The few lines a user reads at the end: accuracy before -> after, time, where the files are."""
    minutes, seconds = divmod(int(round(outcome.seconds)), 60)
    state = "interrupted" if outcome.interrupted else "done"
    lines = [f"egsw train: {state} in {minutes}m{seconds:02d}s"]
    before, after = outcome.before, outcome.after

    def accuracy(result: EvalResult) -> str:
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

    warnings.filterwarnings("ignore", category=FutureWarning)  # transformers' deprecation notes, once per call

    outcome = run_training(
        script_args, training_args, model_args.model_name_or_path, model_args,
        examples=examples, resume_point=resume_point,
    )  # fmt: skip
    if training_args.process_index == 0:
        print_summary(outcome)
    return INTERRUPTED_STATUS if outcome.interrupted else 0
