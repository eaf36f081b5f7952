"""The runs of a comparison or sweep as data: what each run is, what it left on disk, what the reports hold.

``egsw compare`` runs methods x seeds and ``egsw sweep`` a grid of (mode, alpha, temperature) x
seeds; every run is an ``egsw train`` output folder (``metrics.jsonl``, ``eval.json``). This module
holds the dataclasses of both reports (a run as the orchestrator saw it end, :class:`RunOutcome`;
what it left, :class:`RunData`; the summaries built in egsw.study.summary), reads run folders,
computes the per-run numbers (final training reward, steps to a reward threshold) and writes
``summary.json``. No statistics over seeds, no text, no figures.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from egsw.run.plots import CURVES, moving_average, read_metrics
from egsw.stats import t_interval

FINAL_SHARE = 0.2  # final training reward: mean over the last 20% of the logged steps
SIGNIFICANCE = 0.05
MEASURES = {
    "accuracy": "held-out accuracy",
    "final_reward": "final training reward",
    "mean_length": "held-out mean completion length",
}
SWEEP_MEASURES = ("final_reward", "accuracy")


# --- Inputs --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunOutcome:
    """One ``egsw train`` run of a comparison or sweep, as the orchestrator saw it end."""

    method: str  # e.g. "grpo"; for a sweep a cell label like "step a=0.1 P=1"
    seed: int
    folder: Path  # the egsw train output folder
    status: str  # "finished" | "failed" | "missing"
    error: str | None = None  # for failed runs: one line saying why
    params: Mapping[str, Any] = field(default_factory=dict)  # sweep: egsw_mode, egsw_alpha, egsw_temperature


@dataclass(frozen=True, eq=False)
class RunData:
    """What a finished run left behind: its logged training curves and its held-out evaluation.

    ``steps`` are the logged steps that carry a training reward (ascending, one entry per step);
    ``completion_length`` is NaN where a step did not log it. ``runtime`` is the trainer's
    ``train_runtime`` in seconds (NaN when absent); the evaluations are ``eval.json``'s
    ``before``/``after`` dicts (None when absent).
    """

    outcome: RunOutcome
    steps: np.ndarray
    reward: np.ndarray
    completion_length: np.ndarray
    runtime: float
    eval_before: Mapping[str, Any] | None
    eval_after: Mapping[str, Any] | None
    interrupted: bool

    @property
    def final_reward(self) -> float:
        """Mean training reward over the last ``max(1, round(0.2 * steps))`` logged steps."""
        return final_training_reward(self.reward)

    @property
    def accuracy(self) -> float:
        """Held-out accuracy after training (NaN without an evaluation)."""
        return _eval_number(self.eval_after, "accuracy")

    @property
    def mean_length(self) -> float:
        """Held-out mean completion length after training, in tokens (NaN without an evaluation)."""
        return _eval_number(self.eval_after, "mean_length")

    def curve(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(steps, values)`` of the curve ``name`` ("reward" or "completion_length"), finite points only."""
        values = self.reward if name == "reward" else self.completion_length
        keep = np.isfinite(values)
        return self.steps[keep], values[keep]


# --- Outputs -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    """A mean over seeds with its 95% t-interval; ``n`` is the number of values it rests on."""

    mean: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Estimate:
        """The t-interval estimate of the finite entries of ``values``."""
        finite = [float(v) for v in values if is_number(v)]
        mean, low, high = t_interval(finite)
        return cls(mean, low, high, len(finite))


@dataclass(frozen=True)
class RunRow:
    """The per-run numbers of the report's table of runs."""

    method: str
    seed: int
    status: str  # finished | failed | missing | unreadable (marked finished, but nothing to read)
    error: str | None
    folder: str
    params: dict[str, Any]
    steps: int | None  # last logged step
    final_reward: float
    accuracy: float
    mean_length: float
    runtime: float
    interrupted: bool
    steps_to_threshold: float  # NaN without a threshold; the last step when never reached
    reached_threshold: bool | None  # None without a threshold


@dataclass(frozen=True)
class CurveBand:
    """A training curve over seeds: per step, mean and 95% t-interval of the smoothed runs."""

    steps: list[int]
    mean: list[float]
    low: list[float]
    high: list[float]
    n: list[int]


@dataclass(frozen=True)
class BaseModel:
    """The base model's held-out evaluation ("before"), the reference every method starts from."""

    accuracy: float
    low: float  # Wilson interval over problems, as eval.json gives it
    high: float
    mean_length: float
    num_problems: int | None
    folder: str  # the run whose eval.json it was read from


@dataclass(frozen=True)
class MethodSummary:
    """One method over its seeds."""

    method: str
    n_runs: int
    n_finished: int
    seeds: list[int]
    final_reward: Estimate
    accuracy: Estimate
    mean_length: Estimate
    steps_to_threshold: Estimate  # censored runs count at their last step
    not_reached: int
    steps_ratio: Estimate | None  # mean steps / baseline's, 95% percentile bootstrap; None for the baseline


@dataclass(frozen=True)
class PairedComparison:
    """``method - baseline`` on one measure over the seeds both have."""

    method: str
    measure: str
    n: int
    seeds: list[int]
    mean: float
    low: float  # 95% percentile bootstrap interval of the mean difference (scipy.stats.bootstrap)
    high: float
    p_value: float  # two-sided p of the sign-flip permutation test on the mean difference (NaN below 2 seeds)
    p_holm: float  # Holm-adjusted across the methods (comparison) or cells (sweep), per measure
    t_low: float  # paired t-interval (wider than the bootstrap's with few seeds)
    t_high: float
    wins: int  # seeds where the method's value is higher
    losses: int
    test: str  # the test behind p_value: "sign-flip permutation"
    exact: bool  # all 2^n sign patterns enumerated (up to 16 seeds), else random ones
    smallest_p: float  # the smallest p_value the test can give at n seeds: 2 / 2^n when exact


@dataclass(frozen=True)
class ComparisonSummary:
    """Everything the comparison report shows; :meth:`to_dict` is ``summary.json``."""

    baseline: str
    baseline_present: bool  # at least one finished, readable baseline run
    methods: list[str]
    method_summaries: dict[str, MethodSummary]
    threshold: float  # the baseline's mean final training reward
    paired: dict[str, list[PairedComparison]]  # measure -> one per non-baseline method
    curves: dict[str, dict[str, CurveBand]]  # "reward"/"completion_length" -> method -> band
    base_model: BaseModel | None
    runs: list[RunRow]
    smoothing_window: int
    n_bootstrap: int
    rng_seed: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: NaN and infinities become None."""
        return _jsonable(asdict(self))


@dataclass(frozen=True)
class SweepCell:
    """One (mode, alpha, temperature) setting over its seeds."""

    label: str
    mode: str
    alpha: Any
    temperature: Any
    n_runs: int
    seeds: list[int]
    final_reward: Estimate
    accuracy: Estimate
    mean_length: Estimate
    # per measure in SWEEP_MEASURES: this cell - grpo on their common seeds (empty without grpo runs)
    versus_reference: dict[str, PairedComparison] = field(default_factory=dict)


@dataclass(frozen=True)
class Neighbour:
    """A grid neighbour of the best cell and whether their 95% t-intervals overlap (None: cannot tell)."""

    label: str
    estimate: Estimate
    overlaps: bool | None


@dataclass(frozen=True)
class BestCell:
    """The cell with the highest mean on one measure, and how it stands against its neighbours."""

    measure: str
    label: str
    mode: str
    alpha: Any
    temperature: Any
    estimate: Estimate
    neighbours: list[Neighbour]
    reference: Estimate | None  # grpo's, when the sweep has grpo runs
    reference_overlaps: bool | None
    verdict: str


@dataclass(frozen=True)
class Sensitivity:
    """Whether one measure of one mode depends on alpha, P or their combination (egsw.study.anova), seeds as blocks.

    ``effects`` maps "alpha", "temperature", "interaction" and "cells" to an ``egsw.study.anova.Effect``;
    it is empty, with ``note`` saying why, when the grid is incomplete or has fewer than 2 common seeds.
    """

    mode: str
    measure: str
    seeds: list[int]  # the seeds every cell of the mode finished, the blocks of the test
    cells: int
    residual_dof: int
    effects: dict[str, Any]
    note: str | None


@dataclass(frozen=True)
class SweepSummary:
    """Everything the sweep report shows; :meth:`to_dict` is ``summary.json``."""

    modes: list[str]
    cells: list[SweepCell]
    reference: SweepCell | None
    best: dict[str, BestCell | None]
    base_model: BaseModel | None
    runs: list[RunRow]
    unplaced: list[str]  # runs that are neither a grid cell nor the grpo reference
    sensitivity: list[Sensitivity] = field(default_factory=list)  # per mode, then per measure

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: NaN and infinities become None."""
        return _jsonable(asdict(self))


# --- Reading runs --------------------------------------------------------------------------------


def is_number(value: Any) -> bool:
    """A finite real number (not a bool)."""
    return (
        isinstance(value, int | float | np.integer | np.floating)
        and not isinstance(value, bool)
        and math.isfinite(value)
    )


def _eval_number(evaluation: Mapping[str, Any] | None, key: str) -> float:
    """``evaluation[key]`` as a float, NaN when absent or not a number."""
    value = evaluation.get(key) if evaluation else None
    return float(value) if is_number(value) else math.nan


def _read_eval(path: Path) -> dict[str, Any]:
    """``eval.json`` as a dict; empty when absent or unreadable."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _read_run(outcome: RunOutcome) -> tuple[RunData | None, str | None]:
    """The run's data, or None and one line saying why there is none."""
    if outcome.status != "finished":
        return None, outcome.error
    folder = Path(outcome.folder)
    metrics_path = folder / "metrics.jsonl"
    if not metrics_path.is_file():
        return None, f"no metrics.jsonl in {folder}"
    try:
        records = read_metrics(metrics_path)
    except (OSError, UnicodeDecodeError) as error:
        return None, f"cannot read {metrics_path}: {error}"
    by_step: dict[int, Mapping[str, Any]] = {}
    runtime = math.nan
    for record in records:
        if not isinstance(record, dict):
            continue
        if is_number(record.get("train_runtime")):
            runtime = float(record["train_runtime"])
        if is_number(record.get("step")) and is_number(record.get("reward")):
            by_step[int(record["step"])] = record  # a resumed run may log a step again: the last wins
    if not by_step:
        return None, "metrics.jsonl has no logged training reward"
    steps = sorted(by_step)
    length_key = CURVES["completion_length"][0]
    length = [by_step[s].get(length_key) for s in steps]
    evaluation = _read_eval(folder / "eval.json")
    before, after = evaluation.get("before"), evaluation.get("after")
    data = RunData(
        outcome=outcome,
        steps=np.asarray(steps, dtype=int),
        reward=np.asarray([float(by_step[s]["reward"]) for s in steps]),
        completion_length=np.asarray([float(v) if is_number(v) else math.nan for v in length]),
        runtime=runtime,
        eval_before=before if isinstance(before, Mapping) else None,
        eval_after=after if isinstance(after, Mapping) else None,
        interrupted=bool(evaluation.get("interrupted", False)),
    )
    return data, None


def load_run(outcome: RunOutcome) -> RunData | None:
    """Metrics and evaluation of a finished run; None when it did not finish or left nothing readable."""
    return _read_run(outcome)[0]


def load_runs(runs: Sequence[RunOutcome]) -> list[tuple[RunOutcome, RunData | None, str | None]]:
    """Every run with its data (or None) and the reason it has none."""
    return [(outcome, *_read_run(outcome)) for outcome in runs]


def read_base_model(runs: Sequence[RunOutcome]) -> BaseModel | None:
    """The base model's held-out evaluation from the first run folder whose eval.json has "before"."""
    for outcome in runs:
        before = _read_eval(Path(outcome.folder) / "eval.json").get("before")
        if isinstance(before, Mapping) and is_number(before.get("accuracy")):
            return _base_model(before, str(outcome.folder))
    return None


def read_base_model_eval(results_json: Path) -> BaseModel | None:
    """The base model's evaluation from an ``egsw eval`` ``results.json`` (the keys of eval.json's "before")."""
    evaluation = _read_eval(results_json)
    return _base_model(evaluation, str(results_json)) if is_number(evaluation.get("accuracy")) else None


def _base_model(evaluation: Mapping[str, Any], where: str) -> BaseModel:
    problems = evaluation.get("num_problems")
    return BaseModel(
        accuracy=float(evaluation["accuracy"]),
        low=_eval_number(evaluation, "accuracy_low"),
        high=_eval_number(evaluation, "accuracy_high"),
        mean_length=_eval_number(evaluation, "mean_length"),
        num_problems=int(problems) if is_number(problems) else None,
        folder=where,
    )


# --- Per-run numbers -----------------------------------------------------------------------------


def final_training_reward(reward: Sequence[float]) -> float:
    """Mean reward over the last ``max(1, round(0.2 * n))`` of the ``n`` logged steps (NaN when none)."""
    values = np.asarray(reward, dtype=float)
    if values.size == 0:
        return math.nan
    tail = max(1, round(FINAL_SHARE * values.size))
    return float(values[-tail:].mean())


def steps_to_threshold(
    steps: Sequence[int], reward: Sequence[float], threshold: float, window: int
) -> tuple[float, bool]:
    """The first step at which the trailing moving average of ``reward`` reaches ``threshold``.

    The average is over full windows of ``window`` logged steps (from the ``window``-th step on, or
    the last step of a shorter run), so one lucky early step cannot count as reaching it. Returns
    ``(step, True)``; a run that never reaches it is censored at its last step, ``(last_step,
    False)``. Without a threshold (NaN) or without steps: ``(nan, False)``.
    """
    steps_array, values = np.asarray(steps), np.asarray(reward, dtype=float)
    if not math.isfinite(threshold) or values.size == 0:
        return math.nan, False
    first_full = min(max(window, 1), values.size) - 1
    reached = first_full + np.flatnonzero(moving_average(values, window)[first_full:] >= threshold)
    if reached.size:
        return float(steps_array[reached[0]]), True
    return float(steps_array[-1]), False


# --- Over runs -----------------------------------------------------------------------------------


def unique_in_order(labels: Sequence[str]) -> list[str]:
    """Unique labels in order of first appearance."""
    return list(dict.fromkeys(labels))


def finished_rows(rows: Sequence[RunRow]) -> list[RunRow]:
    """The rows with readable data."""
    return [row for row in rows if row.status == "finished"]


# --- summary.json --------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    """``value`` with NaN/inf as None, numpy scalars as Python numbers, paths (and other objects) as strings."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_jsonable(v) for v in value.tolist()]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if value is None or isinstance(value, str):
        return value
    return str(value)  # paths and anything else JSON cannot hold


def write_summary_json(
    output_dir: Path,
    kind: str,
    title: str,
    command: str,
    notes: Sequence[str],
    figures: Sequence[Path],
    content: Mapping[str, Any],
) -> None:
    """``output_dir/summary.json``: kind, title, command, notes, figures (relative to ``output_dir``), then ``content``.

    Strict JSON (NaN and infinities as null), indented.
    """
    heading = {
        "kind": kind,
        "title": title,
        "command": command,
        "notes": list(notes),
        "figures": [str(p.relative_to(output_dir)) for p in figures],
    }
    text = json.dumps(_jsonable({**heading, **content}), indent=2, allow_nan=False)
    (output_dir / "summary.json").write_text(text + "\n")
