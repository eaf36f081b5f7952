"""A study's results kept as data: each finished run's small outputs, in a folder meant for git.

``egsw compare --results results/<study>`` copies, as each run finishes, the files a report needs
(``RESULT_FILES``: the resolved ``config.yaml``, ``eval.json``, ``metrics.jsonl``; never weights)
from the run folder ``<output>/<method>/seed-<n>/`` to ``results/<study>/<method>/seed-<n>/``, and
with ``--commit-results`` commits that folder at once. A run whose results are already there, with
the same options, is not run again: the study resumes from the repository on any machine.
``egsw report results/<study>`` writes the report from these folders alone.

Layout of a results folder::

    <method>/seed-<n>/{config.yaml,eval.json,metrics.jsonl}   one finished run
    plan.json                                                  the command that made them
    base-model/                                                optional: the base model's `egsw eval` output
    report.md, figures/, summary.json                          written by `egsw report`
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

from egsw.errors import InputError
from egsw.run.callbacks import METRICS_FILE
from egsw.run.run_folder import CONFIG_FILE, EVAL_FILE
from egsw.study.runs_data import RunOutcome

RESULT_FILES = (CONFIG_FILE, EVAL_FILE, METRICS_FILE)
SEED_FOLDER = re.compile(r"seed-(\d+)")
# The base model's held-out evaluation, when the runs themselves skip it (`--eval_before false`).
BASE_MODEL_DIR = "base-model"
GIT_ATTEMPTS = 5


def results_folder(run_folder: Path, output: Path, results: Path) -> Path:
    """Where a run of ``output`` keeps its results: the same relative path under ``results``."""
    return Path(results) / Path(run_folder).relative_to(output)


def has_results(folder: Path) -> bool:
    """Every file of ``RESULT_FILES`` is there and ``eval.json`` records a run that was not interrupted."""
    if not all((folder / name).is_file() for name in RESULT_FILES):
        return False
    try:
        record = json.loads((folder / EVAL_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return isinstance(record, dict) and record.get("interrupted") is False


def record_results(run_folder: Path, destination: Path) -> Path:
    """Copy a finished run's ``RESULT_FILES`` to ``destination`` (written whole, then renamed)."""
    partial = destination.with_name(destination.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for name in RESULT_FILES:
        shutil.copy2(run_folder / name, partial / name)
    shutil.rmtree(destination, ignore_errors=True)
    partial.rename(destination)
    return destination


def commit_results(folder: Path, message: str) -> str:
    """``git add`` and commit ``folder`` alone (other staged changes stay staged); returns what git said.

    Retried when another git command holds the repository's index lock. InputError when ``folder``
    is not in a git work tree or git refuses.
    """
    folder = Path(folder).resolve()
    root = _git(["rev-parse", "--show-toplevel"], folder.parent).strip()
    relative = str(folder.relative_to(root))
    for attempt in range(GIT_ATTEMPTS):
        try:
            _git(["add", "--", relative], Path(root))
            return _git(["commit", "--quiet", "-m", message, "--only", "--", relative], Path(root))
        except InputError as error:
            if "index.lock" not in str(error) or attempt == GIT_ATTEMPTS - 1:
                raise
            time.sleep(2 * (attempt + 1))
    raise AssertionError("unreachable")


def _git(arguments: list[str], where: Path) -> str:
    try:
        done = subprocess.run(["git", *arguments], cwd=where, capture_output=True, text=True, check=False)
    except OSError as error:
        raise InputError(f"cannot run git to commit results: {error}; install git or drop --commit-results") from None
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        raise InputError(f"git {arguments[0]} in {where} failed: {why}")
    return done.stdout


def study_outcomes(results: Path) -> list[RunOutcome]:
    """Every ``<method>/seed-<n>/`` of a results folder as a run outcome, methods in plan order.

    The order of methods is ``plan.json``'s when there is one (the baseline first), otherwise
    alphabetical; a seed folder without every result file is a failed run naming what is missing.
    """
    results = Path(results)
    if not results.is_dir():
        raise InputError(f"{results} is not a folder; pass the results folder of a study (results/<study>)")
    methods = [path.name for path in sorted(results.iterdir()) if path.is_dir() and _seed_folders(path)]
    if not methods:
        raise InputError(f"{results} holds no <method>/seed-<n>/ folders; pass the results folder of a study")
    order = {method: index for index, method in enumerate(planned_methods(results))}
    methods.sort(key=lambda method: (order.get(method, len(order)), method))
    outcomes = []
    for method in methods:
        for seed, folder in _seed_folders(results / method):
            if has_results(folder):
                outcomes.append(RunOutcome(method, seed, folder, "finished"))
            else:
                missing = [name for name in RESULT_FILES if not (folder / name).is_file()]
                why = f"missing {', '.join(missing)}" if missing else "eval.json records an interrupted run"
                outcomes.append(RunOutcome(method, seed, folder, "failed", error=why))
    return outcomes


def planned_methods(results: Path) -> list[str]:
    """The method labels of ``plan.json`` in plan order (empty without a readable plan)."""
    labels = [run.get("label") for run in _plan_runs(results)]
    return list(dict.fromkeys(label for label in labels if isinstance(label, str)))


def planned_runs(results: Path) -> list[tuple[str, int]]:
    """``(method, seed)`` of every run ``plan.json`` lists, in plan order (empty without a readable plan)."""
    runs = _plan_runs(results)
    return [(r["label"], r["seed"]) for r in runs if isinstance(r.get("label"), str) and isinstance(r.get("seed"), int)]


def _plan_runs(results: Path) -> list[dict]:
    try:
        plan = json.loads((Path(results) / "plan.json").read_text())
    except (OSError, json.JSONDecodeError):
        return []
    runs = plan.get("runs", []) if isinstance(plan, dict) else []
    return [run for run in runs if isinstance(run, dict)] if isinstance(runs, list) else []


def unrecorded_runs(results: Path, outcomes: list[RunOutcome]) -> list[tuple[str, int]]:
    """The planned ``(method, seed)`` runs that have no finished results in ``outcomes`` yet, in plan order."""
    recorded = {(outcome.method, outcome.seed) for outcome in outcomes if outcome.status == "finished"}
    return [run for run in planned_runs(results) if run not in recorded]


def _seed_folders(method_folder: Path) -> list[tuple[int, Path]]:
    found = [(SEED_FOLDER.fullmatch(path.name), path) for path in method_folder.iterdir() if path.is_dir()]
    return sorted((int(match.group(1)), path) for match, path in found if match)
