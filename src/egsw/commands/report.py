"""``egsw report``: a study's report from its results folder alone.

    egsw report results/smollm2-2026-12
    egsw report results/tiny-arith-2026-12 --baseline grpo --output /tmp/report

The folder is what ``egsw compare --results`` keeps (egsw.study.results): ``<method>/seed-<n>/``
with each run's ``config.yaml``, ``eval.json`` and ``metrics.jsonl``, ``plan.json``, and optionally
``base-model/`` (an ``egsw eval`` output of the base model, for runs made with
``--eval_before false``). It writes ``report.md``, ``figures/`` and ``summary.json`` (the same report
as ``egsw compare``'s) into the folder, or into ``--output``. No model loads and nothing runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from egsw.commands.parsing import parser as one_line_parser
from egsw.errors import InputError
from egsw.study.comparison_report import format_summary_table, write_comparison_report
from egsw.study.results import BASE_MODEL_DIR, study_outcomes
from egsw.study.runs_data import BaseModel, read_base_model_eval
from egsw.study.summary import summarize_comparison


def main(argv: Sequence[str]) -> int:
    """Read the results, write the report, print its table."""
    parser = one_line_parser("egsw report", "Write a study's report (tables, figures) from its results folder.")
    parser.add_argument("results", type=Path, help="The results folder of a study (results/<study>).")
    parser.add_argument("--baseline", default="grpo", help="The method the others are paired with (default: grpo).")
    parser.add_argument("--output", type=Path, default=None, help="Where to write the report (default: the folder).")
    parser.add_argument("--title", default=None, help="The report's title (default: the folder's name).")
    options = parser.parse_args(list(argv))
    outcomes = study_outcomes(options.results)
    methods = {outcome.method for outcome in outcomes}
    if options.baseline not in methods:
        raise InputError(
            f"--baseline {options.baseline} has no runs in {options.results}; choose from {', '.join(sorted(methods))}"
        )
    base_model = study_base_model(options.results)
    title = options.title or f"egsw report: {options.results.name}"
    command = " ".join(["egsw", "report", *argv])
    report = write_comparison_report(
        outcomes, options.output or options.results, baseline=options.baseline, title=title, command=command,
        base_model=base_model,
    )  # fmt: skip
    print(format_summary_table(summarize_comparison(outcomes, options.baseline, base_model=base_model)))
    print(f"egsw report: {report}")
    return 0


def study_base_model(results: Path) -> BaseModel | None:
    """The base model's evaluation kept beside the runs (``base-model/<set>/results.json``), if any."""
    for path in sorted((results / BASE_MODEL_DIR).glob("*/results.json")):
        found = read_base_model_eval(path)
        if found is not None:
            return found
    return None
