"""What ``egsw compare`` and ``egsw sweep`` share: the plan options, seeds, and running a plan with its printing.

Any option these commands do not know is an ``egsw train`` option and goes to every run.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from egsw.commands.parsing import parser as one_line_parser
from egsw.errors import InputError
from egsw.study.plans import PlannedRun
from egsw.study.runner import STATE_ACTIONS, ResultsKeeping, plan_states, run_plan

INTERRUPTED_STATUS = 130
FAILED_RUNS_STATUS = 1


def plan_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """The options ``egsw compare`` and ``egsw sweep`` share; the rest go to every ``egsw train``."""
    parser = one_line_parser(
        prog, description,
        epilog="Any other option is an `egsw train` option and applies to every run (e.g. --max_steps 50).",
    )  # fmt: skip
    parser.add_argument("--model", default=None, help="Model of every run (egsw train --model_name_or_path).")
    parser.add_argument(
        "--seeds", default="3", help="How many seeds (N runs seeds 0..N-1) or a list of seeds such as 0,3,7."
    )
    parser.add_argument("--output", required=True, type=Path, help="Folder of the runs and the report.")
    parser.add_argument(
        "--jobs", type=int, default=1,
        help="Runs at once; the CPU cores are shared between them (each run gets cores/jobs threads).",
    )  # fmt: skip
    parser.add_argument(
        "--threads", type=int, default=None,
        help="CPU threads of each run (default: cores / jobs). Keep jobs x threads <= cores: oversubscribed "
        "OpenMP threads spin and can slow every run several times over.",
    )  # fmt: skip
    parser.add_argument(
        "--overwrite", action="store_true", help="Replace run folders that hold runs with other options."
    )
    parser.add_argument("--report-only", action="store_true", help="Write the report from the runs already there.")
    parser.add_argument("--dry-run", action="store_true", help="Print the plan: runs, what is reused, commands.")
    parser.add_argument(
        "--keep-checkpoints", action="store_true", help="Keep finished runs' checkpoints (by default removed)."
    )
    parser.add_argument(
        "--results", type=Path, default=None,
        help="Keep each finished run's config.yaml, eval.json and metrics.jsonl in RESULTS/<method>/seed-<n>/ "
        "(a folder meant for git, e.g. results/<study>); a run whose results are there is not run again.",
    )  # fmt: skip
    parser.add_argument(
        "--commit-results", action="store_true", help="Commit each run's results folder with git as it finishes."
    )
    return parser


def parse_seeds(text: str) -> list[int]:
    """``"5"`` -> [0..4]; ``"0,3,7"`` -> [0, 3, 7]; InputError otherwise."""
    try:
        if "," in text:
            seeds = [int(part) for part in text.split(",") if part.strip()]
            if len(set(seeds)) != len(seeds) or any(seed < 0 for seed in seeds):
                raise ValueError
            return seeds
        count = int(text)
    except ValueError:
        raise InputError(f"--seeds takes a count (3) or distinct seeds >= 0 (0,3,7), got {text!r}") from None
    if count < 1:
        raise InputError(f"--seeds must be at least 1, got {count}")
    return list(range(count))


def common_train_options(options: argparse.Namespace, rest: Sequence[str]) -> list[str]:
    """The ``egsw train`` options every run gets: ``--model_name_or_path`` and the pass-through ones."""
    common = list(rest)
    if options.model is not None:
        common = ["--model_name_or_path", options.model, *common]
    return common


def execute_plan(
    options: argparse.Namespace,
    runs: Sequence[PlannedRun],
    command: Sequence[str],
    write_report: Callable[[list[Any]], Path],
    format_table: Callable[[list[Any]], str],
) -> int:
    """Check every run, then run what is not finished, then write the report; returns the exit status."""
    if options.jobs < 1:
        raise InputError(f"--jobs must be at least 1, got {options.jobs}")
    if options.threads is not None and options.threads < 1:
        raise InputError(f"--threads must be at least 1, got {options.threads}")
    if options.commit_results and options.results is None:
        raise InputError("--commit-results commits the --results folder; add --results results/<study>")
    keeping = None
    if options.results is not None:
        keeping = ResultsKeeping(options.output, options.results, options.commit_results)
    states = plan_states(runs, options.overwrite, keeping)
    if options.dry_run:
        for run, state in zip(runs, states, strict=True):
            print(f"{STATE_ACTIONS[state]:<8} {run.label} seed {run.seed}: egsw train {shlex.join(run.argv)}")
        return 0
    threads = options.threads or max(1, (os.cpu_count() or 1) // options.jobs)
    outcome = run_plan(
        runs, states, options.output, command, jobs=options.jobs, threads=threads,
        keep_checkpoints=options.keep_checkpoints, report_only=options.report_only,
        report=lambda line: print(line, flush=True), keeping=keeping,
    )  # fmt: skip
    report = write_report(outcome.outcomes)
    print(format_table(outcome.outcomes))
    for result in outcome.failed:
        print(f"egsw: {result.run.label} seed {result.run.seed} failed: {result.error}", file=sys.stderr)
    print(f"egsw: report in {report}", flush=True)
    if outcome.interrupted:
        return INTERRUPTED_STATUS
    return FAILED_RUNS_STATUS if outcome.failed else 0
