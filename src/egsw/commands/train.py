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
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from egsw.models import ModelUnavailableError, check_model_name
from egsw.run.pre_pass import pre_pass
from egsw.stats import paired_difference

if TYPE_CHECKING:
    from egsw.run.training import TrainOutcome
    from egsw.tasks.evaluation import EvalResult

INTERRUPTED_STATUS = 130
FAILED_STATUS = 1


def print_summary(outcome: TrainOutcome) -> None:
    """The few lines a user reads at the end: accuracy before -> after, time, where the files are."""
    minutes, seconds = divmod(int(round(outcome.seconds)), 60)
    state = "stopped by SIGTERM" if outcome.terminated else "interrupted" if outcome.interrupted else "done"
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
        "checkpoint-*/ (continue with --resume auto)" if outcome.interrupted else "model/"
    ))  # fmt: skip
    print("\n".join(lines), flush=True)


def main(argv: Sequence[str]) -> int:
    """Parse and validate, then train; 0 when done, 130 on Ctrl-C, 143 on SIGTERM (a complete checkpoint kept).

    1 when the run could not go on: a write failed (a full disk: the last complete checkpoint is
    intact, continue with ``--resume auto``) or a reward function scored nothing (``max_unscorable_batches``).
    """
    if any(flag in argv for flag in ("-h", "--help")):
        from egsw.run.options import build_parser

        build_parser().print_help()
        return 0
    # An unknown model is refused before TRL and transformers' training stack are imported (seconds).
    early = pre_pass(argv)
    try:
        check_model_name(early.model)
    except ModelUnavailableError:
        if not early.dry_run:  # a dry run may check a GPU recipe where its hub model cannot be had: a note
            raise

    from egsw.reward_guard import UnscorableRewardsError
    from egsw.run.checks import validate_before_loading
    from egsw.run.dry_run import dry_run_report
    from egsw.run.options import parse
    from egsw.run.run_folder import auto_resume_decision, last_complete_checkpoint
    from egsw.run.termination import TERMINATED_STATUS, StopRequest
    from egsw.run.training import run_training

    parsed = parse(argv)
    if parsed.script.dry_run:
        report = dry_run_report(parsed)
        if os.environ.get("RANK", "0") == "0":
            print(report, flush=True)
        return 0
    model_args, script_args, training_args = parsed.model, parsed.script, parsed.training
    output_dir = Path(training_args.output_dir)
    if script_args.resume == "auto" and auto_resume_decision(output_dir) == "finished":
        if training_args.process_index == 0:
            print(f"egsw train: the run in {output_dir} has finished (model/ exists); nothing to do", flush=True)
        return 0
    # SIGTERM (cluster preemption, time limits) finishes the step in flight and saves, from here on.
    stop_request = StopRequest()
    stop_request.install()
    examples, resume_point = validate_before_loading(model_args, script_args, training_args)
    # A shell starts background jobs (`cmd &`, nohup, `egsw compare` run that way) with SIGINT
    # ignored, and Python then never raises KeyboardInterrupt: SIGINT would not save a checkpoint.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    warnings.filterwarnings("ignore", category=FutureWarning)  # transformers' deprecation notes, once per call

    try:
        outcome = run_training(
            script_args, training_args, model_args.model_name_or_path, model_args,
            examples=examples, resume_point=resume_point, stop_request=stop_request,
        )  # fmt: skip
    except UnscorableRewardsError as error:
        print(f"egsw train: error: {error}", file=sys.stderr, flush=True)
        return FAILED_STATUS
    except OSError as error:
        last = last_complete_checkpoint(output_dir)
        kept = f"the last complete checkpoint, {last.name}, is intact" if last else "no complete checkpoint was written"
        print(
            f"egsw train: error: writing the run in {output_dir} failed ({error.strerror or error}"
            f"{f': {error.filename}' if error.filename else ''}); {kept}: free space or fix the folder, then "
            f"continue with --resume auto",
            file=sys.stderr, flush=True,
        )  # fmt: skip
        return FAILED_STATUS
    if training_args.process_index == 0:
        print_summary(outcome)
    if outcome.terminated:
        return TERMINATED_STATUS
    return INTERRUPTED_STATUS if outcome.interrupted else 0
