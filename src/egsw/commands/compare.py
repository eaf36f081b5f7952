"""``egsw compare``: several methods on the same model, task, budget and seeds, and one report.

    egsw compare --model tiny-arith --methods grpo,egsw-step,egsw-trajectory --seeds 5 --output runs/cmp
    egsw compare --model smollm2-135m-instruct --methods grpo,egsw-step --seeds 3 --output runs/cmp --max_steps 50

Every option that ``egsw train`` takes (any ``EGSWConfig`` field, ``--config FILE``, ...) passes
through to every run. Methods are listed by ``egsw compare --list-methods`` (egsw.study.methods). Each
run is its own ``egsw train`` process (egsw.study.runner): one that fails is reported, not fatal, and
running the same command again reuses the finished runs and resumes the interrupted ones. The
report (``report.md`` with figures, ``summary.json``) comes from egsw.study.comparison_report.

Exit status: 0 when every run finished, 1 when some failed (the report lists them), 2 for bad
input (refused before any run starts), 130 on Ctrl-C (run the command again to resume).
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from egsw.commands.many_runs import common_train_options, execute_plan, parse_seeds, plan_parser
from egsw.study.comparison_report import format_summary_table, write_comparison_report
from egsw.study.methods import METHOD_OPTIONS, METHODS, parse_methods
from egsw.study.plans import check_common_options, method_plan
from egsw.study.summary import summarize_comparison


def main(argv: Sequence[str]) -> int:
    """Parse, check every run, run, report."""
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
    methods = parse_methods(options.methods)
    check_common_options(rest, METHOD_OPTIONS, "egsw compare")
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
