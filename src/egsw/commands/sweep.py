"""``egsw sweep``: EGSW's sensitivity to alpha and P, a grid of runs over seeds, reported as heatmaps.

    egsw sweep --model tiny-arith --alphas 0,0.1,0.5 --temperatures 0.5,1,2 --modes step,trajectory \\
        --seeds 2 --output runs/sweep

Each cell (mode, alpha, P) runs every seed; ``--grpo`` (on by default) adds plain GRPO runs with the
same seeds as the reference. Other options pass through to every ``egsw train`` run, and finished
runs are reused as in ``egsw compare`` (egsw.study.runner). The report (egsw.study.sweep_report) holds
heatmaps of the final training reward and the held-out accuracy per mode, and a seed-blocked
two-way ANOVA (egsw.study.anova) that says whether alpha, P or their combination matter beyond seed noise.
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from egsw.commands.many_runs import common_train_options, execute_plan, parse_seeds, plan_parser
from egsw.errors import InputError
from egsw.study.plans import SWEPT_OPTIONS, check_common_options, sweep_plan
from egsw.study.summary import summarize_sweep
from egsw.study.sweep_report import format_sweep_table, write_sweep_report
from egsw.weights import MODES


def parse_numbers(name: str, text: str, positive: bool) -> list[float]:
    """``"0,0.1,0.5"`` -> floats, distinct and finite (> 0 when ``positive``); InputError otherwise."""
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise InputError(f"--{name} takes comma-separated numbers such as 0.5,1,2, got {text!r}") from None
    bad = [v for v in values if v != v or v in (float("inf"), float("-inf")) or (positive and v <= 0)]
    if not values or bad or len(set(values)) != len(values):
        need = "distinct finite numbers > 0" if positive else "distinct finite numbers"
        raise InputError(f"--{name} takes {need}, got {text!r}")
    return values


def main(argv: Sequence[str]) -> int:
    """Parse, check every run, run the grid, write the heatmaps."""
    parser = plan_parser("egsw sweep", "Sweep EGSW's alpha x temperature (x mode) over seeds; heatmaps.")
    parser.add_argument("--alphas", default="0,0.1,0.5", help="egsw_alpha values (entropy weight).")
    parser.add_argument("--temperatures", default="0.5,1,2", help="egsw_temperature values P > 0.")
    parser.add_argument("--modes", default="step", help=f"EGSW modes, comma-separated ({', '.join(MODES)}).")
    parser.add_argument(
        "--grpo", action=argparse.BooleanOptionalAction, default=True, help="Add plain GRPO runs as the reference."
    )
    options, rest = parser.parse_known_args(list(argv))
    modes = [mode.strip() for mode in options.modes.split(",") if mode.strip()]
    if not modes or any(mode not in MODES for mode in modes) or len(set(modes)) != len(modes):
        raise InputError(f"--modes takes distinct modes from {', '.join(MODES)}, got {options.modes!r}")
    alphas = parse_numbers("alphas", options.alphas, positive=False)
    temperatures = parse_numbers("temperatures", options.temperatures, positive=True)
    check_common_options(rest, SWEPT_OPTIONS, "egsw sweep")
    seeds = parse_seeds(options.seeds)
    common = common_train_options(options, rest)
    runs = sweep_plan(modes, alphas, temperatures, seeds, options.output, common, options.grpo)
    command = ["egsw", "sweep", *argv]
    title = f"egsw sweep: EGSW alpha x P on {options.model or 'the default model'}"

    def write_report(outcomes: list[Any]) -> Path:
        return write_sweep_report(outcomes, options.output, title=title, command=shlex.join(command))

    def format_table(outcomes: list[Any]) -> str:
        return format_sweep_table(summarize_sweep(outcomes))

    return execute_plan(options, runs, command, write_report, format_table)
