"""``egsw compare``: several methods on the same model, task, budget and seeds, and one report.

    egsw compare --model tiny-arith --methods grpo,egsw-step,egsw-trajectory --seeds 5 --output runs/cmp
    egsw compare --model smollm2-135m-instruct --methods grpo,egsw-step --seeds 3 --output runs/cmp --max_steps 50

Every option that ``egsw train`` takes (any ``EGSWConfig`` field, ``--config FILE``, ...) passes
through to every run. Methods are listed by ``egsw compare --list-methods`` (egsw.methods). Each
run is its own ``egsw train`` process (egsw.compare): one that fails is reported, not fatal, and
running the same command again reuses the finished runs and resumes the interrupted ones. The
report (``report.md`` with figures, ``summary.json``) comes from egsw.comparison_report.

Exit status: 0 when every run finished, 1 when some failed (the report lists them), 2 for bad
input (refused before any run starts), 130 on Ctrl-C (run the command again to resume).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from egsw.commands import CommandError

INTERRUPTED_STATUS = 130
FAILED_RUNS_STATUS = 1


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message: str):  # type: ignore[override]  # noqa: ANN201
        raise CommandError(f"{message}; see `{self.prog} --help`")


def plan_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """The options ``egsw compare`` and ``egsw sweep`` share; the rest go to every ``egsw train``."""
    parser = _OneLineParser(
        prog=prog,
        description=description,
        allow_abbrev=False,  # --seed (an egsw train option) must not be read as --seeds
        epilog="Any other option is an `egsw train` option and applies to every run (e.g. --max_steps 50).",
    )
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
    return parser


def parse_seeds(text: str) -> list[int]:
    """``"5"`` -> [0..4]; ``"0,3,7"`` -> [0, 3, 7]; CommandError otherwise."""
    try:
        if "," in text:
            seeds = [int(part) for part in text.split(",") if part.strip()]
            if len(set(seeds)) != len(seeds) or any(seed < 0 for seed in seeds):
                raise ValueError
            return seeds
        count = int(text)
    except ValueError:
        raise CommandError(f"--seeds takes a count (3) or distinct seeds >= 0 (0,3,7), got {text!r}") from None
    if count < 1:
        raise CommandError(f"--seeds must be at least 1, got {count}")
    return list(range(count))


def common_train_options(options: argparse.Namespace, rest: Sequence[str]) -> list[str]:
    """The ``egsw train`` options every run gets: ``--model_name_or_path`` and the pass-through ones."""
    common = list(rest)
    if options.model is not None:
        common = ["--model_name_or_path", options.model, *common]
    return common


def execute_plan(
    options: argparse.Namespace,
    runs: Sequence[Any],
    command: Sequence[str],
    write_report: Callable[[list[Any]], Path],
    format_table: Callable[[list[Any]], str],
) -> int:
    """Check every run, then run what is not finished, then write the report; returns the exit status."""
    from egsw.compare import (
        LOGS_DIR,
        Interrupted,
        RunResult,
        execute,
        expected_options,
        folder_state,
        write_plan,
    )
    from egsw.comparison_data import RunOutcome

    if options.jobs < 1:
        raise CommandError(f"--jobs must be at least 1, got {options.jobs}")
    if options.threads is not None and options.threads < 1:
        raise CommandError(f"--threads must be at least 1, got {options.threads}")
    states: list[str] = []
    for run in runs:
        try:
            expected = expected_options(run)
        except CommandError as error:
            raise CommandError(f"{run.label} seed {run.seed}: {error}") from None
        state, differences = folder_state(run, expected)
        if state == "different":
            if not options.overwrite:
                raise CommandError(
                    f"{run.folder} holds a run with other options ({'; '.join(differences[:2])}); pass --overwrite "
                    f"to replace it or choose another --output"
                )
            state = "incomplete"
        states.append(state)
    if options.dry_run:
        for run, state in zip(runs, states, strict=True):
            action = {"finished": "reuse", "resumable": "resume", "incomplete": "replace", "new": "run"}[state]
            print(f"{action:<8} {run.label} seed {run.seed}: egsw train {shlex.join(run.argv)}")
        return 0

    output: Path = options.output
    write_plan(output, command, runs)
    reused = sum(state == "finished" for state in states)
    results = [
        RunResult(run, "finished", reused=True) for run, state in zip(runs, states, strict=True) if state == "finished"
    ]
    todo = [(run, state) for run, state in zip(runs, states, strict=True) if state != "finished"]
    status = 0
    if options.report_only:
        results += [RunResult(run, "missing", error="not run yet") for run, _ in todo]
    else:
        print(f"egsw: {len(runs)} runs, {reused} already finished (reused), {len(todo)} to run", flush=True)
        threads = options.threads or max(1, (os.cpu_count() or 1) // options.jobs)
        try:
            results += execute(
                todo, output / LOGS_DIR, jobs=options.jobs, threads=threads, keep_checkpoints=options.keep_checkpoints,
                report=lambda line: print(line, flush=True),
            )  # fmt: skip
        except Interrupted:
            status = INTERRUPTED_STATUS
            done = {id(result.run) for result in results}
            results += [RunResult(run, "missing", error="interrupted") for run in runs if id(run) not in done]
    order = {id(run): index for index, run in enumerate(runs)}
    results.sort(key=lambda result: order[id(result.run)])
    outcomes = [
        RunOutcome(r.run.label, r.run.seed, r.run.folder, r.status, error=r.error, params=dict(r.run.params))
        for r in results
    ]
    report = write_report(outcomes)
    print(format_table(outcomes))
    failed = [r for r in results if r.status == "failed"]
    for result in failed:
        print(f"egsw: {result.run.label} seed {result.run.seed} failed: {result.error}", file=sys.stderr)
    print(f"egsw: report in {report}", flush=True)
    if status == 0 and failed:
        status = FAILED_RUNS_STATUS
    return status


def main(argv: Sequence[str]) -> int:
    """Parse, check every run, run, report."""
    from egsw.compare import check_common_options, method_plan
    from egsw.comparison_report import format_summary_table, write_comparison_report
    from egsw.comparison_summary import summarize_comparison
    from egsw.methods import METHOD_OPTIONS, METHODS, parse_methods

    parser = plan_parser("egsw compare", "Compare training methods over seeds and write one report.")
    parser.add_argument(
        "--methods", default="grpo,egsw-step,egsw-trajectory",
        help=f"Comma-separated methods, the baseline (grpo) first; choose from {', '.join(METHODS)}.",
    )  # fmt: skip
    parser.add_argument("--list-methods", action="store_true", help="List the methods and what each sets.")
    if "--list-methods" in argv:
        for method in METHODS.values():
            print(f"{method.name:<20} {method.summary}  [{' '.join(method.argv())}]")
        return 0
    options, rest = parser.parse_known_args(list(argv))
    try:
        methods = parse_methods(options.methods)
        check_common_options(rest, METHOD_OPTIONS, "egsw compare")
    except ValueError as error:
        raise CommandError(str(error)) from None
    seeds = parse_seeds(options.seeds)
    runs = method_plan(methods, seeds, options.output, common_train_options(options, rest))
    baseline = "grpo" if any(method.name == "grpo" for method in methods) else methods[0].name
    command = ["egsw", "compare", *argv]
    title = f"egsw compare: {', '.join(m.name for m in methods)} on {options.model or 'the default model'}"

    def write_report(outcomes: list[Any]) -> Path:
        return write_comparison_report(
            outcomes, options.output, baseline=baseline, title=title, command=shlex.join(command)
        )

    def format_table(outcomes: list[Any]) -> str:
        return format_summary_table(summarize_comparison(outcomes, baseline=baseline))

    return execute_plan(options, runs, command, write_report, format_table)
