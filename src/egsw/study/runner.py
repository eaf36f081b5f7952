"""Many ``egsw train`` runs as independent processes: plan them, reuse finished ones, run the rest.

``egsw compare`` (methods x seeds) and ``egsw sweep`` (EGSW hyper-parameters x seeds) are both a
list of ``PlannedRun``: the ``egsw train`` options of one run and the folder it writes. Each run is
its own process, so one that fails (bad luck, out of memory, a crash) is reported and the others
go on. A run whose folder already holds a finished run with the same options is reused, one with a
complete checkpoint is resumed (``egsw train --resume``), anything else in its folder is replaced;
so running the same command again continues a long comparison where it stopped. A folder that
holds a run with *different* options is refused before anything starts.

Layout of the output folder::

    <method>/seed-<k>/   one egsw train output folder per run (checkpoints removed once finished)
    logs/                one log per run: the egsw train output
    plan.json            the command and every run's options
    report.md, figures/, summary.json   written by egsw.study.comparison_report (egsw.study.sweep_report for a sweep)
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from egsw.errors import InputError
from egsw.models import TRAIN_OUTPUT_MODEL
from egsw.run.checkpoints import CHECKPOINT_PREFIX, last_complete_checkpoint
from egsw.run.checks import check_options
from egsw.run.options import parse
from egsw.run.run_folder import CONFIG_FILE, EVAL_FILE, existing_run_entries, resolved_options
from egsw.study.plans import PlannedRun
from egsw.study.results import commit_results, has_results, record_results, results_folder
from egsw.study.runs_data import RunOutcome

PLAN_FILE = "plan.json"
LOGS_DIR = "logs"
# Options that differ between the runs of one plan by construction, or name where a run is.
PER_RUN_OPTIONS = frozenset({"seed", "output_dir", "logging_dir", "run_name"})
# Options that cannot change what a finished run computed: a run is reused whatever their value.
OUTCOME_NEUTRAL_OPTIONS = frozenset({"max_unscorable_batches"})
# Options added to egsw after runs may have been made, with the value that does what egsw did before.
ADDED_OPTION_DEFAULTS: dict[str, Any] = {"entropy_advantage_beta": 0.0, "entropy_advantage_kappa": 2.0}
# How long Ctrl-C waits for interrupted runs to write their checkpoint.
INTERRUPT_GRACE_SECONDS = 180


@dataclass
class RunResult:
    """What became of a planned run: ``status`` is finished, failed or missing (not run)."""

    run: PlannedRun
    status: str
    error: str | None = None
    seconds: float = 0.0
    reused: bool = False


# ---------------------------------------------------------------------------------------------
# What a run folder holds


def expected_options(run: PlannedRun) -> dict[str, Any]:
    """Every resolved option of ``run`` as its config.yaml will hold it; InputError on a bad option."""
    parsed = parse(list(run.argv))
    check_options(parsed, for_dry_run=False)
    return resolved_options(parsed.script, parsed.training, parsed.model)


def option_differences(saved: Mapping[str, Any], expected: Mapping[str, Any]) -> list[str]:
    """``key: saved -> expected`` for each option (except per-run ones) that differs.

    An option missing from ``saved`` (added to egsw after that run) counts as its
    ``ADDED_OPTION_DEFAULTS`` value, which reproduces what egsw did before it existed.
    """
    keys = (set(saved) | set(expected)) - PER_RUN_OPTIONS - OUTCOME_NEUTRAL_OPTIONS
    saved = {**{k: v for k, v in ADDED_OPTION_DEFAULTS.items() if k not in saved}, **saved}
    return [
        f"{key}: {saved.get(key)!r} -> {expected.get(key)!r}"
        for key in sorted(keys)
        if _comparable(saved.get(key)) != _comparable(expected.get(key))
    ]


def _comparable(value: Any) -> Any:  # noqa: ANN401
    return json.loads(json.dumps(value, default=str))


def is_finished(folder: Path) -> bool:
    """A run that ended normally: its final model is saved and eval.json says it was not interrupted."""
    try:
        record = json.loads((folder / EVAL_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return (folder / TRAIN_OUTPUT_MODEL).is_dir() and record.get("interrupted") is False and _evaluated(folder, record)


def _evaluated(folder: Path, record: Mapping[str, Any]) -> bool:
    import yaml

    try:
        config = yaml.safe_load((folder / CONFIG_FILE).read_text()) or {}
    except (OSError, yaml.YAMLError):
        return False
    return record.get("after") is not None or config.get("eval_after") is False


def folder_state(run: PlannedRun, expected: Mapping[str, Any], recorded: Path | None = None) -> tuple[str, list[str]]:
    """``(state, differences)``: state is recorded, new, finished, resumable, incomplete or different.

    ``recorded`` is where the run's results are kept (egsw.study.results): results there with the
    same options make the run ``recorded``, whatever its run folder holds.
    """
    import yaml

    if recorded is not None and has_results(recorded):
        try:
            saved = yaml.safe_load((recorded / CONFIG_FILE).read_text()) or {}
        except (OSError, yaml.YAMLError):
            saved = None
        differences = option_differences(saved, expected) if isinstance(saved, dict) else ["config.yaml unreadable"]
        return ("different", differences) if differences else ("recorded", [])
    if not existing_run_entries(run.folder):
        return "new", []
    try:
        saved = yaml.safe_load((run.folder / CONFIG_FILE).read_text()) or {}
    except (OSError, yaml.YAMLError):
        return "incomplete", []
    differences = option_differences(saved, expected)
    if differences:
        return "different", differences
    if is_finished(run.folder):
        return "finished", []
    if last_complete_checkpoint(run.folder) is not None and not (run.folder / TRAIN_OUTPUT_MODEL).exists():
        return "resumable", []
    return "incomplete", []


# ---------------------------------------------------------------------------------------------
# Running


def last_line(log: Path) -> str:
    """The last non-empty line of a log, the one that says why a run stopped (trimmed to 300 characters)."""
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    # Progress bars end with carriage returns; keep the last segment.
    text = lines[-1].split("\r")[-1] if lines else "the run printed nothing"
    return text[:300]


def run_command(run: PlannedRun, state: str) -> list[str]:
    """The ``egsw train`` process for ``run``: resume a resumable folder, replace an incomplete one."""
    extra = {"resumable": ["--resume"], "incomplete": ["--overwrite"]}.get(state, [])
    return [sys.executable, "-m", "egsw.cli", "train", *run.argv, *extra]


def child_environment(threads: int) -> dict[str, str]:
    """The environment of a run: ``threads`` CPU threads, so that parallel runs do not oversubscribe the cores."""
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[name] = str(threads)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def remove_checkpoints(folder: Path) -> None:
    """Checkpoints only serve --resume; a finished run does not need them (each is model + optimiser)."""
    for path in folder.glob(f"{CHECKPOINT_PREFIX}*"):
        shutil.rmtree(path, ignore_errors=True)


class Interrupted(Exception):
    """Ctrl-C (or SIGTERM) stopped the plan; the runs in flight saved checkpoints and can be resumed."""


def execute(
    todo: Sequence[tuple[PlannedRun, str]],
    logs: Path,
    *,
    jobs: int = 1,
    threads: int = 1,
    keep_checkpoints: bool = False,
    report: Callable[[str], None] = print,
    on_finished: Callable[[PlannedRun], None] | None = None,
) -> list[RunResult]:
    """Run each ``(run, state)`` as its own ``egsw train`` process, ``jobs`` at a time.

    A run that exits non-zero is a failed result with its log's last line; the others continue.
    ``on_finished`` is called with each run that finished (egsw.study.results keeps its results).
    On Ctrl-C/SIGTERM the runs in flight are interrupted (they write a checkpoint; SIGTERM lets them
    finish their step first) and Interrupted is raised once they have exited.
    """
    logs.mkdir(parents=True, exist_ok=True)
    pending = list(todo)
    running: list[tuple[subprocess.Popen, PlannedRun, float, Any]] = []
    results: list[RunResult] = []
    total, started_at = len(pending), time.monotonic()
    received: list[int] = []

    def stop(signum: int, frame: Any) -> None:  # noqa: ANN401
        received.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    previous_interrupt = signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started in background
    try:
        while pending or running:
            while pending and len(running) < jobs:
                run, state = pending.pop(0)
                log = (logs / run.log_name).open("a")
                log.write(f"\n# {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(run_command(run, state))}\n")
                log.flush()
                process = subprocess.Popen(
                    run_command(run, state), stdout=log, stderr=subprocess.STDOUT, env=child_environment(threads)
                )
                running.append((process, run, time.monotonic(), log))
                action = {"resumable": "resuming", "incomplete": "restarting"}.get(state, "starting")
                report(f"egsw: {action} {run.label} seed {run.seed} ({len(results) + len(running)}/{total})")
            time.sleep(0.5)
            for entry in list(running):
                process, run, began, log = entry
                if process.poll() is None:
                    continue
                running.remove(entry)
                log.close()
                result = _result_of(run, process.returncode, logs / run.log_name, time.monotonic() - began)
                if result.status == "finished" and not keep_checkpoints:
                    remove_checkpoints(run.folder)
                results.append(result)
                report(_progress_line(result, len(results), total, time.monotonic() - started_at))
                if result.status == "finished" and on_finished is not None:
                    on_finished(run)
    except KeyboardInterrupt:
        # SIGTERM is passed on as SIGTERM (each run finishes its step and saves), Ctrl-C as SIGINT (at once).
        forwarded = signal.SIGTERM if received else signal.SIGINT
        for process, *_ in running:
            if process.poll() is None:
                process.send_signal(forwarded)
        deadline = time.monotonic() + INTERRUPT_GRACE_SECONDS
        for process, run, _, log in running:
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 1))
            except subprocess.TimeoutExpired:
                process.kill()
            log.close()
            report(f"egsw: interrupted {run.label} seed {run.seed}; run the same command again to resume it")
        raise Interrupted from None
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_interrupt)
    return results


def _result_of(run: PlannedRun, returncode: int, log: Path, seconds: float) -> RunResult:
    if returncode == 0 and is_finished(run.folder):
        return RunResult(run, "finished", seconds=seconds)
    why = last_line(log) if returncode != 0 else "exited 0 but left no finished run (model/ or eval.json missing)"
    return RunResult(run, "failed", error=f"exit status {returncode}: {why}", seconds=seconds)


def _progress_line(result: RunResult, done: int, total: int, elapsed: float) -> str:
    run = result.run
    minutes, seconds = divmod(int(result.seconds), 60)
    line = f"egsw: [{done}/{total}] {run.label} seed {run.seed}: {result.status} in {minutes}m{seconds:02d}s"
    if result.status == "finished":
        line += _run_figures(run.folder)
    else:
        line += f" - {result.error}"
    if done < total:
        remaining = elapsed / done * (total - done)
        line += f"; about {int(remaining // 60)} min left"
    return line


def _run_figures(folder: Path) -> str:
    try:
        after = json.loads((folder / EVAL_FILE).read_text()).get("after") or {}
    except (OSError, json.JSONDecodeError):
        return ""
    return f" (held-out accuracy {100 * after['accuracy']:.1f}%)" if "accuracy" in after else ""


def write_plan(output: Path, command: Sequence[str], runs: Sequence[PlannedRun]) -> None:
    """``plan.json``: the command and each run's label, seed, folder and ``egsw train`` options."""
    plan = {
        "command": " ".join(command),
        "runs": [
            {"label": r.label, "seed": r.seed, "folder": str(r.folder), "argv": list(r.argv), "params": dict(r.params)}
            for r in runs
        ],
    }
    output.mkdir(parents=True, exist_ok=True)
    (output / PLAN_FILE).write_text(json.dumps(plan, indent=2, default=str) + "\n")


# ---------------------------------------------------------------------------------------------
# A whole plan

# What a second invocation does with a run folder in each state.
STATE_ACTIONS = {
    "recorded": "reuse",  # its results are kept (--results): nothing to run, even on another machine
    "finished": "reuse",
    "resumable": "resume",
    "incomplete": "replace",
    "new": "run",
}


@dataclass(frozen=True)
class ResultsKeeping:
    """Where a plan keeps its runs' results (``--results``) and whether each is committed at once."""

    output: Path
    results: Path
    commit: bool = False

    def folder_of(self, run: PlannedRun) -> Path:
        return results_folder(run.folder, self.output, self.results)


def plan_states(runs: Sequence[PlannedRun], overwrite: bool, keeping: ResultsKeeping | None = None) -> list[str]:
    """Each run's state (``STATE_ACTIONS``), every run's options checked before any run starts.

    InputError names the run whose options are bad, or the folder (run or results) that holds a
    run with other options (unless ``overwrite``, which replaces it).
    """
    states: list[str] = []
    for run in runs:
        try:
            expected = expected_options(run)
        except InputError as error:
            raise InputError(f"{run.label} seed {run.seed}: {error}") from None
        recorded = keeping.folder_of(run) if keeping else None
        state, differences = folder_state(run, expected, recorded)
        if state == "different":
            if not overwrite:
                where = recorded if recorded is not None and has_results(recorded) else run.folder
                raise InputError(
                    f"{where} holds a run with other options ({'; '.join(differences[:2])}); pass --overwrite "
                    f"to replace it or choose another --output"
                )
            state = "incomplete"
        states.append(state)
    return states


@dataclass
class PlanOutcome:
    """What running a plan gave: one outcome per planned run (in plan order), the failed runs, Ctrl-C."""

    outcomes: list[RunOutcome]
    failed: list[RunResult]
    interrupted: bool


def run_plan(
    runs: Sequence[PlannedRun],
    states: Sequence[str],
    output: Path,
    command: Sequence[str],
    *,
    jobs: int,
    threads: int,
    keep_checkpoints: bool = False,
    report_only: bool = False,
    report: Callable[[str], None] = print,
    keeping: ResultsKeeping | None = None,
) -> PlanOutcome:
    """Reuse the finished runs, run (or, with ``report_only``, skip) the others; collect every outcome.

    With ``keeping``, each run that finishes has its results copied (and committed), and a recorded
    run is read from its results folder.
    """
    write_plan(output, command, runs)
    if keeping is not None:
        write_plan(keeping.results, command, runs)
    pairs = list(zip(runs, states, strict=True))
    results = [
        RunResult(replace(run, folder=keeping.folder_of(run)) if state == "recorded" and keeping else run,
                  "finished", reused=True)
        for run, state in pairs if state in ("finished", "recorded")
    ]  # fmt: skip
    if keeping is not None:  # finished runs of an earlier invocation without --results
        for run, state in pairs:
            if state == "finished":
                keep_results(run, keeping, report)
    todo = [(run, state) for run, state in pairs if state not in ("finished", "recorded")]
    interrupted = False
    if report_only:
        results += [RunResult(run, "missing", error="not run yet") for run, _ in todo]
    else:
        report(f"egsw: {len(runs)} runs, {len(results)} already finished (reused), {len(todo)} to run")
        try:
            results += execute(
                todo, output / LOGS_DIR, jobs=jobs, threads=threads, keep_checkpoints=keep_checkpoints, report=report,
                on_finished=None if keeping is None else lambda run: keep_results(run, keeping, report),
            )  # fmt: skip
        except Interrupted:
            interrupted = True
            done = {(result.run.label, result.run.seed) for result in results}
            results += [
                RunResult(run, "missing", error="interrupted") for run in runs if (run.label, run.seed) not in done
            ]
    order = {(run.label, run.seed): index for index, run in enumerate(runs)}
    results.sort(key=lambda result: order[(result.run.label, result.run.seed)])
    outcomes = [
        RunOutcome(r.run.label, r.run.seed, r.run.folder, r.status, error=r.error, params=dict(r.run.params))
        for r in results
    ]
    return PlanOutcome(outcomes, [r for r in results if r.status == "failed"], interrupted)


def keep_results(run: PlannedRun, keeping: ResultsKeeping, report: Callable[[str], None]) -> None:
    """Copy a finished run's results to its results folder and, with ``keeping.commit``, commit them.

    A failure (a full disk, git refusing) is reported and leaves the run folder intact: the runs go on,
    and the next invocation copies the results again.
    """
    destination = keeping.folder_of(run)
    try:
        record_results(run.folder, destination)
        if keeping.commit:
            commit_results(destination, f"results: {keeping.results.name} {run.label} seed {run.seed}")
    except (OSError, InputError) as error:
        report(f"egsw: could not keep the results of {run.label} seed {run.seed} in {destination}: {error}")
        return
    report(f"egsw: results of {run.label} seed {run.seed} {'committed' if keeping.commit else 'kept'} in {destination}")
