"""``egsw report``: a study's report from its results folder alone.

    egsw report results/smollm2-2026-12
    egsw report results/tiny-arith-2026-12 --baseline grpo --output /tmp/report

The folder is what ``egsw compare --results`` keeps (egsw.study.results): ``<method>/seed-<n>/``
with each run's ``config.yaml``, ``eval.json`` and ``metrics.jsonl``, ``plan.json``, and optionally
``base-model/`` (an ``egsw eval`` output of the base model, for runs made with
``--eval_before false``). It writes ``report.md``, ``figures/`` and ``summary.json`` (the same report
as ``egsw compare``'s) into the folder, or into ``--output``. No model loads and nothing runs.

A study with a ``plan.json`` is reported only once every planned run has results: a pre-registered
analysis is made once, on all the runs, so a report of part of them is refused (one line saying how
many are missing). ``--progress`` counts the recorded runs per method without any statistics;
``--interim`` writes the report anyway, marked as interim at its top.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from egsw.commands.parsing import parser as one_line_parser
from egsw.errors import InputError
from egsw.study.comparison_report import format_summary_table, write_summary_report
from egsw.study.results import BASE_MODEL_DIR, planned_runs, study_outcomes, unrecorded_runs
from egsw.study.runs_data import BaseModel, RunOutcome, read_base_model_eval
from egsw.study.summary import summarize_comparison
from egsw.study.tables import text_table


def main(argv: Sequence[str]) -> int:
    """Read the results, write the report, print its table."""
    parser = one_line_parser("egsw report", "Write a study's report (tables, figures) from its results folder.")
    parser.add_argument("results", type=Path, help="The results folder of a study (results/<study>).")
    parser.add_argument("--baseline", default="grpo", help="The method the others are paired with (default: grpo).")
    parser.add_argument("--output", type=Path, default=None, help="Where to write the report (default: the folder).")
    parser.add_argument("--title", default=None, help="The report's title (default: the folder's name).")
    parser.add_argument(
        "--progress", action="store_true", help="Only count the planned runs that have results, per method."
    )
    parser.add_argument(
        "--interim",
        action="store_true",
        help="Report although planned runs are missing, marked as interim (default: refused until all are in).",
    )
    options = parser.parse_args(list(argv))
    outcomes = study_outcomes(options.results)
    if options.progress:
        print(progress_table(options.results, outcomes))
        return 0
    missing = unrecorded_runs(options.results, outcomes)
    notes = []
    if missing:
        planned = len(planned_runs(options.results))
        if not options.interim:
            raise InputError(
                f"{options.results}: {len(missing)} of {planned} planned runs have no results yet (next: "
                f"{missing[0][0]} seed {missing[0][1]}); the study's analysis waits for all of them: finish it "
                "with the command in plan.json, count them with --progress, or pass --interim"
            )
        notes.append(
            f"**Interim report**: {planned - len(missing)} of {planned} planned runs have results. "
            "The study's analysis is the one made when all of them are in; these figures are not it."
        )
        print(notes[0].replace("**", ""))
    methods = {outcome.method for outcome in outcomes}
    if options.baseline not in methods:
        raise InputError(
            f"--baseline {options.baseline} has no runs in {options.results}; choose from {', '.join(sorted(methods))}"
        )
    base_model = study_base_model(options.results)
    title = options.title or f"egsw report: {options.results.name}"
    command = " ".join(["egsw", "report", *argv])
    summary = summarize_comparison(outcomes, options.baseline, base_model=base_model)
    report = write_summary_report(summary, options.output or options.results, title=title, command=command, notes=notes)
    print(format_summary_table(summary))
    print(f"egsw report: {report}")
    return 0


def study_base_model(results: Path) -> BaseModel | None:
    """The base model's evaluation kept beside the runs (``base-model/<set>/results.json``), if any."""
    for path in sorted((results / BASE_MODEL_DIR).glob("*/results.json")):
        found = read_base_model_eval(path)
        if found is not None:
            return found
    return None


def progress_table(results: Path, outcomes: Sequence[RunOutcome]) -> str:
    """Per method, how many of the planned runs have results (no statistics: nothing about outcomes)."""
    planned = planned_runs(results)
    recorded = {(o.method, o.seed) for o in outcomes if o.status == "finished"}
    methods = list(dict.fromkeys([method for method, _ in planned] + [o.method for o in outcomes]))
    rows = []
    for method in methods:
        seeds = [seed for m, seed in planned if m == method]
        done = sum((method, seed) in recorded for seed in seeds)
        extra = sum(1 for m, seed in recorded if m == method and seed not in seeds)
        failed = sum(1 for o in outcomes if o.method == method and o.status != "finished")
        rows.append([method, f"{done}/{len(seeds)}", extra, failed])
    missing = unrecorded_runs(results, list(outcomes))
    total = f"{len(planned) - len(missing)} of {len(planned)} planned runs have results" if planned else "no plan.json"
    lines = [f"{results}: {total}", text_table(["method", "recorded", "not planned", "incomplete"], rows)]
    if missing:
        lines.append(f"next: {', '.join(f'{m} seed {s}' for m, s in missing[:4])}" + (" ..." * (len(missing) > 4)))
    return "\n".join(lines)
