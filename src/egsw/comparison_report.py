"""Compare training methods over seeds: statistics, figures, ``report.md`` and ``summary.json``.

``egsw compare`` runs methods x seeds and ``egsw sweep`` a grid of (mode, alpha, temperature) x
seeds; every run is an ``egsw train`` output folder (``metrics.jsonl``, ``eval.json``). This module
reads those folders and answers, with enough statistics to tell signal from seed noise: which
method's training reward rises faster and ends higher, which generalises better on held-out
problems, and how long its completions are. Per-run numbers first (:class:`RunRow`), then per
method over seeds (t-intervals), then paired by seed against the baseline (bootstrap, Holm).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from egsw.report import CURVES, moving_average, read_metrics
from egsw.stats import bootstrap_ratio, holm_adjust, paired_bootstrap, t_interval

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
        finite = [float(v) for v in values if _is_number(v)]
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
    steps_ratio: Estimate | None  # mean steps / baseline's, 95% bootstrap interval; None for the baseline


@dataclass(frozen=True)
class PairedComparison:
    """``method - baseline`` on one measure over the seeds both have."""

    method: str
    measure: str
    n: int
    seeds: list[int]
    mean: float
    low: float  # 95% paired-bootstrap percentile interval
    high: float
    p_value: float  # two-sided bootstrap p-value
    p_holm: float  # Holm-adjusted across the methods, per measure
    t_low: float  # paired t-interval, for comparison (wider with few seeds)
    t_high: float
    wins: int  # seeds where the method's value is higher
    losses: int


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
class SweepSummary:
    """Everything the sweep report shows; :meth:`to_dict` is ``summary.json``."""

    modes: list[str]
    cells: list[SweepCell]
    reference: SweepCell | None
    best: dict[str, BestCell | None]
    base_model: BaseModel | None
    runs: list[RunRow]
    unplaced: list[str]  # runs that are neither a grid cell nor the grpo reference

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: NaN and infinities become None."""
        return _jsonable(asdict(self))


# --- Reading runs --------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    """A finite real number (not a bool)."""
    return (
        isinstance(value, int | float | np.integer | np.floating)
        and not isinstance(value, bool)
        and math.isfinite(value)
    )


def _eval_number(evaluation: Mapping[str, Any] | None, key: str) -> float:
    """``evaluation[key]`` as a float, NaN when absent or not a number."""
    value = evaluation.get(key) if evaluation else None
    return float(value) if _is_number(value) else math.nan


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
        if _is_number(record.get("train_runtime")):
            runtime = float(record["train_runtime"])
        if _is_number(record.get("step")) and _is_number(record.get("reward")):
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
        completion_length=np.asarray([float(v) if _is_number(v) else math.nan for v in length]),
        runtime=runtime,
        eval_before=before if isinstance(before, Mapping) else None,
        eval_after=after if isinstance(after, Mapping) else None,
        interrupted=bool(evaluation.get("interrupted", False)),
    )
    return data, None


def load_run(outcome: RunOutcome) -> RunData | None:
    """Metrics and evaluation of a finished run; None when it did not finish or left nothing readable."""
    return _read_run(outcome)[0]


def _load_all(runs: Sequence[RunOutcome]) -> list[tuple[RunOutcome, RunData | None, str | None]]:
    """Every run with its data (or None) and the reason it has none."""
    return [(outcome, *_read_run(outcome)) for outcome in runs]


def _base_model(runs: Sequence[RunOutcome]) -> BaseModel | None:
    """The base model's held-out evaluation from the first run folder whose eval.json has "before"."""
    for outcome in runs:
        before = _read_eval(Path(outcome.folder) / "eval.json").get("before")
        if isinstance(before, Mapping) and _is_number(before.get("accuracy")):
            problems = before.get("num_problems")
            return BaseModel(
                accuracy=float(before["accuracy"]),
                low=_eval_number(before, "accuracy_low"),
                high=_eval_number(before, "accuracy_high"),
                mean_length=_eval_number(before, "mean_length"),
                num_problems=int(problems) if _is_number(problems) else None,
                folder=str(outcome.folder),
            )
    return None


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


def _run_row(outcome: RunOutcome, data: RunData | None, error: str | None, threshold: float, window: int) -> RunRow:
    """The table row of one run; a run marked finished without readable data is "unreadable"."""
    status = outcome.status if data is not None or outcome.status != "finished" else "unreadable"
    nan = math.nan
    reach: tuple[float, bool | None] = (nan, None)
    if data is not None and math.isfinite(threshold):
        reach = steps_to_threshold(data.steps, data.reward, threshold, window)
    return RunRow(
        method=outcome.method,
        seed=int(outcome.seed),
        status=status,
        error=error,
        folder=str(outcome.folder),
        params=dict(outcome.params),
        steps=int(data.steps[-1]) if data is not None else None,
        final_reward=data.final_reward if data is not None else nan,
        accuracy=data.accuracy if data is not None else nan,
        mean_length=data.mean_length if data is not None else nan,
        runtime=data.runtime if data is not None else nan,
        interrupted=data.interrupted if data is not None else False,
        steps_to_threshold=reach[0],
        reached_threshold=reach[1],
    )


# --- Over seeds ----------------------------------------------------------------------------------


def _ordered(labels: Sequence[str]) -> list[str]:
    """Unique labels in order of first appearance."""
    return list(dict.fromkeys(labels))


def _curve_band(runs: Sequence[RunData], name: str, window: int) -> CurveBand:
    """Each run's curve smoothed by a trailing moving average, then per step mean and t-interval over runs."""
    per_step: dict[int, list[float]] = {}
    for data in runs:
        steps, values = data.curve(name)
        for step, value in zip(steps, moving_average(values, window), strict=True):
            per_step.setdefault(int(step), []).append(float(value))
    steps = sorted(per_step)
    stats = [t_interval(per_step[s]) for s in steps]
    return CurveBand(
        steps=steps,
        mean=[s[0] for s in stats],
        low=[s[1] for s in stats],
        high=[s[2] for s in stats],
        n=[len(per_step[s]) for s in steps],
    )


def _finished(rows: Sequence[RunRow]) -> list[RunRow]:
    """The rows with readable data."""
    return [row for row in rows if row.status == "finished"]


def _method_summary(
    method: str, rows: Sequence[RunRow], baseline_steps: list[float] | None, n_bootstrap: int, rng_seed: int
) -> MethodSummary:
    """One method over its seeds; ``baseline_steps`` None for the baseline itself (no ratio)."""
    done = _finished(rows)
    steps = [row.steps_to_threshold for row in done]
    ratio = None
    if baseline_steps is not None:
        value, low, high = bootstrap_ratio(steps, baseline_steps, n_bootstrap=n_bootstrap, rng_seed=rng_seed)
        ratio = Estimate(value, low, high, sum(_is_number(s) for s in steps))
    return MethodSummary(
        method=method,
        n_runs=len(rows),
        n_finished=len(done),
        seeds=[row.seed for row in done],
        final_reward=Estimate.of([row.final_reward for row in done]),
        accuracy=Estimate.of([row.accuracy for row in done]),
        mean_length=Estimate.of([row.mean_length for row in done]),
        steps_to_threshold=Estimate.of(steps),
        not_reached=sum(row.reached_threshold is False for row in done),
        steps_ratio=ratio,
    )


def _by_seed(rows: Sequence[RunRow], measure: str) -> dict[int, float]:
    """``seed -> value`` of a measure over finished rows (the first run of a seed counts)."""
    values: dict[int, float] = {}
    for row in _finished(rows):
        value = getattr(row, measure)
        if _is_number(value) and row.seed not in values:
            values[row.seed] = float(value)
    return values


def _paired(
    method: str, measure: str, rows: Sequence[RunRow], baseline_rows: Sequence[RunRow], n_bootstrap: int, rng_seed: int
) -> PairedComparison:
    """``method - baseline`` on the seeds both have (Holm adjustment filled in later)."""
    ours, theirs = _by_seed(rows, measure), _by_seed(baseline_rows, measure)
    seeds = sorted(set(ours) & set(theirs))
    differences = np.asarray([ours[s] - theirs[s] for s in seeds], dtype=float)
    boot = paired_bootstrap(differences, n_bootstrap=n_bootstrap, rng_seed=rng_seed)
    _, t_low, t_high = t_interval(differences) if differences.size >= 2 else (math.nan, math.nan, math.nan)
    return PairedComparison(
        method=method,
        measure=measure,
        n=len(seeds),
        seeds=seeds,
        mean=boot["mean"],
        low=boot["low"],
        high=boot["high"],
        p_value=boot["p_value"],
        p_holm=math.nan,
        t_low=t_low,
        t_high=t_high,
        wins=int(np.sum(differences > 0)),
        losses=int(np.sum(differences < 0)),
    )


def summarize_comparison(
    runs: Sequence[RunOutcome],
    baseline: str = "grpo",
    *,
    smoothing_window: int = 5,
    n_bootstrap: int = 10_000,
    rng_seed: int = 0,
) -> ComparisonSummary:
    """All the numbers of a methods x seeds comparison (see the module docstring).

    Methods keep their order of first appearance in ``runs``. The reward threshold is the
    baseline's mean final training reward; without a finished baseline run there is no threshold,
    no ratio and no paired comparison (NaN / empty).
    """
    loaded = _load_all(runs)
    methods = _ordered([outcome.method for outcome in runs])
    data_by_method = {m: [d for o, d, _ in loaded if o.method == m and d is not None] for m in methods}
    baseline_data = data_by_method.get(baseline, [])
    threshold = float(np.mean([d.final_reward for d in baseline_data])) if baseline_data else math.nan
    rows = [_run_row(o, d, e, threshold, smoothing_window) for o, d, e in loaded]
    rows_by_method = {m: [row for row in rows if row.method == m] for m in methods}
    baseline_rows = rows_by_method.get(baseline, [])
    present = bool(baseline_data)
    baseline_steps = [row.steps_to_threshold for row in _finished(baseline_rows)]
    summaries = {
        m: _method_summary(
            m, rows_by_method[m], None if (m == baseline or not present) else baseline_steps, n_bootstrap, rng_seed
        )
        for m in methods
    }
    paired: dict[str, list[PairedComparison]] = {}
    if present:
        for measure in MEASURES:
            found = [
                _paired(m, measure, rows_by_method[m], baseline_rows, n_bootstrap, rng_seed)
                for m in methods
                if m != baseline
            ]
            adjusted = holm_adjust([c.p_value for c in found])
            paired[measure] = [replace(c, p_holm=p) for c, p in zip(found, adjusted, strict=True)]
    curves = {name: {m: _curve_band(data_by_method[m], name, smoothing_window) for m in methods} for name in CURVES}
    return ComparisonSummary(
        baseline=baseline,
        baseline_present=present,
        methods=methods,
        method_summaries=summaries,
        threshold=threshold,
        paired=paired,
        curves=curves,
        base_model=_base_model(runs),
        runs=rows,
        smoothing_window=smoothing_window,
        n_bootstrap=n_bootstrap,
        rng_seed=rng_seed,
    )


# --- Formatting ----------------------------------------------------------------------------------

_SCALE = {"accuracy": 100.0, "final_reward": 1.0, "mean_length": 1.0, "steps": 1.0, "ratio": 1.0}
_DIGITS = {"accuracy": 1, "final_reward": 3, "mean_length": 1, "steps": 1, "ratio": 2}
_UNIT = {"accuracy": "%", "final_reward": "", "mean_length": "", "steps": "", "ratio": "x"}
_DIFF_UNIT = {"accuracy": " pp", "final_reward": "", "mean_length": " tokens"}


def _number(value: Any, kind: str, signed: bool = False) -> str:
    """``value`` in the display units of ``kind`` (no unit), "n/a" when not a finite number."""
    if not _is_number(value):
        return "n/a"
    sign = "+" if signed else ""
    return f"{float(value) * _SCALE[kind]:{sign}.{_DIGITS[kind]}f}"


def _value(value: Any, kind: str) -> str:
    """A value with its unit: "52.0%", "0.812", "1.23x"."""
    text = _number(value, kind)
    return text if text == "n/a" else text + _UNIT[kind]


def _interval(low: float, high: float, kind: str, signed: bool = False) -> str:
    """Interval as "[low, high]" in display units, "n/a" when either end is missing."""
    if not (_is_number(low) and _is_number(high)):
        return "n/a"
    return f"[{_number(low, kind, signed)}, {_number(high, kind, signed)}]"


def _estimate(estimate: Estimate | None, kind: str) -> str:
    """Estimate as "52.0% [45.1, 58.8]"; one seed: "52.0% (1 seed)"; none: "n/a"."""
    if estimate is None or estimate.n == 0 or not _is_number(estimate.mean):
        return "n/a"
    if estimate.n == 1:
        return f"{_value(estimate.mean, kind)} (1 seed)"
    return f"{_value(estimate.mean, kind)} {_interval(estimate.low, estimate.high, kind)}"


def _difference(value: float, measure: str) -> str:
    """A signed difference with its unit: "+3.5 pp"."""
    text = _number(value, measure, signed=True)
    return text if text == "n/a" else text + _DIFF_UNIT[measure]


def _p(value: float) -> str:
    """A p-value: "0.034", "<0.001", "n/a"."""
    if not _is_number(value):
        return "n/a"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def _p_phrase(value: float) -> str:
    """A p-value in a sentence: "p = 0.034", "p < 0.001", "p n/a"."""
    text = _p(value)
    return "p " + text if text == "n/a" else ("p < 0.001" if text == "<0.001" else f"p = {text}")


def _duration(seconds: float) -> str:
    """Duration as "10m 54s", "1h 02m", "n/a"."""
    if not _is_number(seconds):
        return "n/a"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s"


def _count_phrase(counts: Sequence[int], noun: str) -> str:
    """Counts as "3 seeds" or "2-3 seeds"."""
    low, high = min(counts), max(counts)
    plural = noun if high == 1 else noun + "s"
    return f"{low} {plural}" if low == high else f"{low}-{high} {plural}"


def _cell(text: Any) -> str:
    """A Markdown table cell: pipes escaped, newlines flattened."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub Markdown table."""
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _text_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table with aligned columns, for the terminal."""
    table = [[str(c) for c in header], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _folder_link(folder: str, output_dir: Path) -> str:
    """The run folder relative to the report (so links work on GitHub), as inline code."""
    try:
        shown = os.path.relpath(Path(folder).resolve(), Path(output_dir).resolve())
    except ValueError:
        shown = folder
    return f"`{shown}`"


def _status(row: RunRow) -> str:
    """Status as shown: "finished", "finished (interrupted)", "failed: <why>"."""
    status = row.status + (" (interrupted)" if row.interrupted else "")
    return f"{status}: {row.error}" if row.error and row.status != "finished" else status


def _runs_table(rows: Sequence[RunRow], output_dir: Path, first_column: str = "method") -> str:
    """The table of runs: one line each, failed and missing ones with the reason."""
    body = [
        [
            row.method,
            row.seed,
            _status(row),
            _value(row.final_reward, "final_reward"),
            _value(row.accuracy, "accuracy"),
            row.steps if row.steps is not None else "n/a",
            _duration(row.runtime),
            _folder_link(row.folder, output_dir),
        ]
        for row in rows
    ]
    header = [first_column, "seed", "status", "final reward", "held-out acc", "steps", "runtime", "folder"]
    return _md_table(header, body)


def _header_lines(title: str, command: str, notes: Sequence[str]) -> list[str]:
    """Title, the regenerating command, and the notes."""
    lines = [f"# {title}", "", "Regenerate this report with:", "", "```bash", command, "```", ""]
    if notes:
        lines += [f"- {note}" for note in notes] + [""]
    return lines


def _status_counts(rows: Sequence[RunRow]) -> str:
    """Counts of runs by status: "9 runs: 7 finished, 1 failed, 1 missing"."""
    counts = {s: sum(row.status == s for row in rows) for s in _ordered([row.status for row in rows])}
    parts = ", ".join(f"{n} {s}" for s, n in counts.items())
    return f"{len(rows)} runs" + (f": {parts}" if parts else "")


# --- Comparison: text ----------------------------------------------------------------------------


def is_detected(comparison: PairedComparison) -> bool:
    """A difference the report calls detected: Holm-adjusted bootstrap p < 0.05 *and* a paired t-interval without 0.

    With few seeds the bootstrap alone is degenerate (two same-signed differences give p ~ 1/B
    whatever their spread), so the wider paired t-interval must agree.
    """
    return (
        _is_number(comparison.p_holm)
        and comparison.p_holm < SIGNIFICANCE
        and _is_number(comparison.t_low)
        and not comparison.t_low <= 0 <= comparison.t_high
    )


def _measure_sentence(summary: ComparisonSummary, measure: str) -> str:
    """One conservative sentence about a measure's differences from the baseline."""
    name, baseline = MEASURES[measure], summary.baseline
    comparisons = [c for c in summary.paired.get(measure, []) if c.n >= 2 and _is_number(c.mean)]
    if not comparisons:
        return f"{name.capitalize()}: n/a (fewer than 2 seeds paired with `{baseline}`)."
    seeds = _count_phrase([c.n for c in comparisons], "paired seed")

    def described(c: PairedComparison) -> str:
        text = f"`{c.method}` {_difference(c.mean, measure)} {_interval(c.low, c.high, measure, True)}"
        text += f" (Holm-adjusted {_p_phrase(c.p_holm)}, {c.n} seeds"
        if _is_number(c.t_low) and c.t_low <= 0 <= c.t_high:
            text += f"; the paired t-interval {_interval(c.t_low, c.t_high, measure, True)} includes 0"
        return text + ")"

    significant = [c for c in comparisons if is_detected(c)]
    if significant:
        sentence = f"{name.capitalize()}: differs from `{baseline}` for " + "; ".join(map(described, significant)) + "."
        others = len(comparisons) - len(significant)
        if others:
            verb = "method does" if others == 1 else f"{others} methods do"
            sentence += f" The other {verb} not differ detectably."
        return sentence
    largest = max(comparisons, key=lambda c: abs(c.mean))
    return (
        f"{name.capitalize()}: no method differs detectably from `{baseline}` at {seeds}; "
        f"the largest observed difference is {described(largest)}."
    )


def _efficiency_sentence(summary: ComparisonSummary) -> str:
    """Which methods' steps-to-threshold ratio interval excludes 1."""
    baseline = summary.baseline
    clear = [
        s
        for s in summary.method_summaries.values()
        if s.steps_ratio is not None
        and _is_number(s.steps_ratio.low)
        and _is_number(s.steps_ratio.high)
        and not s.steps_ratio.low <= 1 <= s.steps_ratio.high
    ]
    if not clear:
        return f"Steps to reach `{baseline}`'s final training reward: no method's ratio interval excludes 1."
    parts = []
    for s in clear:
        ratio = s.steps_ratio
        assert ratio is not None
        interval = _interval(ratio.low, ratio.high, "ratio")
        part = f"`{s.method}` needed {_value(ratio.mean, 'ratio')} `{baseline}`'s steps {interval}"
        if s.not_reached:
            part += f" (a lower bound: {s.not_reached} of its runs never reached the threshold)"
        parts.append(part)
    sentence = (
        f"Steps to reach `{baseline}`'s final training reward (95% bootstrap interval): " + "; ".join(parts) + "."
    )
    reference = summary.method_summaries.get(baseline)
    if reference is not None and reference.not_reached:
        sentence += (
            f" {reference.not_reached} of `{baseline}`'s own runs never reached it, so its mean steps are a lower "
            "bound too and the ratios are not bounds in either direction."
        )
    return sentence


def supported_claims(summary: ComparisonSummary) -> list[str]:
    """The "What the data supports" sentences: conservative, from the paired tests and the ratios."""
    baseline = summary.baseline
    if not summary.baseline_present:
        return [
            f"There is no finished run of the baseline `{baseline}`, so no method is compared with it: "
            "the tables describe each method on its own and say nothing about differences."
        ]
    counts = [c.n for comparisons in summary.paired.values() for c in comparisons if c.n >= 2]
    if not counts:
        return [f"Fewer than 2 seeds of any method are paired with `{baseline}`: no difference can be assessed (n/a)."]
    sentences = [
        f"Differences are `method - {baseline}` on the same seed, with 95% paired-bootstrap intervals; "
        f"a difference counts as detected when its Holm-adjusted p < {SIGNIFICANCE} and its paired t-interval "
        "excludes 0."
    ]
    sentences += [_measure_sentence(summary, measure) for measure in MEASURES]
    sentences.append(_efficiency_sentence(summary))
    if max(counts) < 10:
        sentences.append(
            f"With {_count_phrase(counts, 'seed')} the bootstrap interval cannot be wider than the spread of the "
            "observed differences and its p-values are optimistic; read the paired t-intervals alongside, and add "
            "seeds before relying on a difference."
        )
    return sentences


def _comparison_table_rows(summary: ComparisonSummary) -> list[list[str]]:
    """Per method: seeds, held-out accuracy, held-out length, final reward; then the base model."""
    rows = [
        [
            f"`{s.method}`" + (" (baseline)" if s.method == summary.baseline else ""),
            f"{s.n_finished}/{s.n_runs}",
            _estimate(s.accuracy, "accuracy"),
            _estimate(s.mean_length, "mean_length"),
            _estimate(s.final_reward, "final_reward"),
        ]
        for s in summary.method_summaries.values()
    ]
    base = summary.base_model
    if base is not None:
        interval = _interval(base.low, base.high, "accuracy")
        problems = f", {base.num_problems} problems" if base.num_problems else ""
        rows.append(
            [
                "base model (before training)",
                "-",
                f"{_value(base.accuracy, 'accuracy')} {interval} (Wilson{problems})",
                _value(base.mean_length, "mean_length"),
                "-",
            ]
        )
    return rows


def _efficiency_section(summary: ComparisonSummary) -> list[str]:
    """Steps to reach the baseline's final training reward, and the ratio to the baseline."""
    baseline, window = summary.baseline, summary.smoothing_window
    lines = [f"## Sample efficiency: steps to reach `{baseline}`'s final training reward", ""]
    if not summary.baseline_present:
        return lines + [f"n/a: there is no finished `{baseline}` run to set the threshold.", ""]
    lines += [
        f"Threshold = `{baseline}`'s mean final training reward = {_value(summary.threshold, 'final_reward')}. "
        f"A run reaches it at the first step where the trailing mean of its last {window} rewards is >= the "
        'threshold; a run that never does is counted at its last step ("not reached", censored), so a mean '
        "that includes such runs, and a ratio built on it, is a lower bound. The ratio is mean steps / "
        f"`{baseline}`'s mean steps, with a 95% bootstrap interval (seeds resampled within each method).",
        "",
    ]
    body = []
    for s in summary.method_summaries.values():
        ratio = "1 (reference)" if s.steps_ratio is None else _estimate(s.steps_ratio, "ratio")
        body.append([f"`{s.method}`", s.n_finished, _estimate(s.steps_to_threshold, "steps"), s.not_reached, ratio])
    lines += [
        _md_table(["method", "seeds", "mean steps [95% t-CI]", "not reached", f"ratio to `{baseline}`"], body),
        "",
    ]
    baseline_summary = summary.method_summaries.get(baseline)
    if baseline_summary is not None and baseline_summary.not_reached:
        lines += [
            f"{baseline_summary.not_reached} `{baseline}` run(s) never reached their own method's mean final "
            "reward: the denominator is itself a lower bound, so the ratios are not bounds in either direction.",
            "",
        ]
    return lines


def _paired_section(summary: ComparisonSummary) -> list[str]:
    """Per measure, each method minus the baseline over the same seeds."""
    baseline = summary.baseline
    lines = [f"## Paired comparison with `{baseline}` (same seeds)", ""]
    if not summary.baseline_present:
        return lines + [f"n/a: there is no finished `{baseline}` run, so there are no pairs.", ""]
    lines += [
        f"For each seed that both the method and `{baseline}` finished, d = method - `{baseline}`. Shown: mean d, "
        "its 95% paired-bootstrap percentile interval, the paired t-interval (for comparison), the two-sided "
        f"bootstrap p-value (centred differences resampled {summary.n_bootstrap} times, p = (count + 1) / (B + 1)), "
        "the same p Holm-adjusted across methods per measure, and on how many seeds the method is higher / lower. "
        "Fewer than 2 paired seeds: n/a.",
        "",
    ]
    for measure, comparisons in summary.paired.items():
        body = [
            [
                f"`{c.method}`",
                c.n,
                _difference(c.mean, measure),
                _interval(c.low, c.high, measure, True),
                _interval(c.t_low, c.t_high, measure, True),
                _p(c.p_value),
                _p(c.p_holm),
                f"{c.wins} / {c.losses}" if c.n else "n/a",
            ]
            for c in comparisons
        ]
        header = ["method", "seeds", "mean d", "95% bootstrap CI", "95% t-CI", "p", "Holm p", "higher / lower"]
        lines += [
            f"### {MEASURES[measure].capitalize()}",
            "",
            _md_table(header, body) if body else "No other method.",
            "",
        ]
    return lines


def _comparison_markdown(
    summary: ComparisonSummary, output_dir: Path, title: str, command: str, notes: Sequence[str]
) -> str:
    """The whole comparison report."""
    lines = _header_lines(title, command, notes)
    methods = ", ".join(f"`{m}`" for m in summary.methods) or "none"
    lines += [f"{_status_counts(summary.runs)}. Methods: {methods}. Baseline: `{summary.baseline}`.", ""]
    claims = supported_claims(summary)
    lines += ["## What the data supports", "", claims[0], ""]
    if len(claims) > 1:
        lines += [f"- {claim}" for claim in claims[1:]] + [""]
    window = summary.smoothing_window
    threshold_note = " Dotted: the threshold of the sample-efficiency section." if _is_number(summary.threshold) else ""
    caption = (
        f"Mean over seeds (line) and 95% t-interval over seeds (band), per logged step; each run's curve is "
        f"lightly smoothed first with a trailing moving average over {window} logged steps."
    )
    lines += [
        "## Training curves",
        "",
        "![training reward](figures/reward.png)",
        "",
        f"*Training reward. {caption}{threshold_note}*",
        "",
        "![completion length](figures/completion_length.png)",
        "",
        f"*Mean completion length (tokens) during training. {caption}*",
        "",
        "## Held-out accuracy, completion length and final training reward",
        "",
        _md_table(
            [
                "method",
                "finished",
                "held-out accuracy [95% t-CI]",
                "held-out mean length, tokens [95% t-CI]",
                "final training reward [95% t-CI]",
            ],
            _comparison_table_rows(summary),
        ),
        "",
        'Held-out numbers are `eval.json`\'s "after" evaluation; intervals are t-intervals over seeds. The final '
        "training reward of a run is its mean reward over the last 20% of its logged steps (at least one).",
        "",
        "![held-out accuracy](figures/accuracy.png)",
        "",
        "*Held-out accuracy per method: mean over seeds with its 95% t-interval, each seed as a dot; dashed line: "
        "the base model before training.*",
        "",
    ]
    lines += _efficiency_section(summary)
    lines += _paired_section(summary)
    lines += ["## Runs", "", _runs_table(summary.runs, output_dir), ""]
    return "\n".join(lines)


# --- Figures -------------------------------------------------------------------------------------


def _pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _no_data(axis: Any) -> None:
    """Say so on an empty plot."""
    axis.text(0.5, 0.5, "no finished runs", ha="center", va="center", transform=axis.transAxes, color="grey")


def _plot_curves(summary: ComparisonSummary, name: str, path: Path) -> Path:
    """One line (mean over seeds) and band (95% t-interval) per method."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(7, 4), dpi=120)
    drawn = False
    for index, method in enumerate(summary.methods):
        band = summary.curves[name][method]
        if not band.steps:
            continue
        color = f"C{index % 10}"
        axis.plot(band.steps, band.mean, "-", color=color, linewidth=2, label=f"{method} (n={max(band.n)})")
        axis.fill_between(band.steps, band.low, band.high, color=color, alpha=0.2, linewidth=0)
        drawn = True
    if name == "reward" and _is_number(summary.threshold):
        axis.axhline(summary.threshold, color="black", linestyle=":", linewidth=1, label="threshold")
    if drawn:
        axis.legend(loc="best", fontsize=8)
    else:
        _no_data(axis)
    axis.set_xlabel("step")
    axis.set_ylabel(f"{CURVES[name][1]}, smoothed")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def _plot_accuracy(summary: ComparisonSummary, path: Path) -> Path:
    """Held-out accuracy per method: mean with t-interval error bars, seeds as dots, base model dashed."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(max(4.5, 1.2 * len(summary.methods) + 2), 4), dpi=120)
    drawn = False
    for index, method in enumerate(summary.methods):
        values = [row.accuracy for row in _finished(summary.runs) if row.method == method and _is_number(row.accuracy)]
        estimate = summary.method_summaries[method].accuracy
        if not values:
            continue
        color = f"C{index % 10}"
        jitter = np.linspace(-0.12, 0.12, len(values)) if len(values) > 1 else np.zeros(1)
        axis.plot(index + 0.25 + jitter, values, "o", color=color, alpha=0.4, markersize=4)
        error = [[estimate.mean - estimate.low], [estimate.high - estimate.mean]]
        axis.errorbar([index], [estimate.mean], yerr=error, fmt="o", color=color, capsize=5, markersize=7)
        drawn = True
    base = summary.base_model
    if base is not None:
        axis.axhline(base.accuracy, color="grey", linestyle="--", linewidth=1, label="base model")
        axis.legend(loc="best", fontsize=8)
    if not drawn:
        _no_data(axis)
    axis.set_xticks(range(len(summary.methods)), summary.methods, rotation=20, ha="right")
    axis.set_xlim(-0.6, len(summary.methods) - 0.4)
    axis.set_ylabel("held-out accuracy")
    axis.grid(alpha=0.3, axis="y")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


# --- Comparison: entry points --------------------------------------------------------------------


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


def _write_json(path: Path, content: Mapping[str, Any]) -> None:
    """Strict JSON (no NaN), indented."""
    path.write_text(json.dumps(_jsonable(content), indent=2, allow_nan=False) + "\n")


def write_comparison_report(
    runs: Sequence[RunOutcome],
    output_dir: Path,
    *,
    baseline: str = "grpo",
    title: str,
    command: str,
    notes: Sequence[str] = (),
    smoothing_window: int = 5,
    n_bootstrap: int = 10_000,
    rng_seed: int = 0,
) -> Path:
    """Write ``report.md``, ``figures/{reward,completion_length,accuracy}.png`` and ``summary.json``.

    Failed, missing or unreadable runs are listed in the report and never stop it. Returns the
    path of ``report.md``.
    """
    output_dir = Path(output_dir)
    figures = output_dir / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    summary = summarize_comparison(
        runs, baseline, smoothing_window=smoothing_window, n_bootstrap=n_bootstrap, rng_seed=rng_seed
    )
    written = [_plot_curves(summary, name, figures / f"{name}.png") for name in CURVES]
    written.append(_plot_accuracy(summary, figures / "accuracy.png"))
    report = output_dir / "report.md"
    report.write_text(_comparison_markdown(summary, output_dir, title, command, notes))
    content = {
        "kind": "comparison",
        "title": title,
        "command": command,
        "notes": list(notes),
        "figures": [str(p.relative_to(output_dir)) for p in written],
        "supported_claims": supported_claims(summary),
        **summary.to_dict(),
    }
    _write_json(output_dir / "summary.json", content)
    return report


def format_summary_table(summary: ComparisonSummary) -> str:
    """A plain-text table of the comparison for the terminal, then what the data supports."""
    baseline = summary.baseline
    accuracy = {c.method: c for c in summary.paired.get("accuracy", [])}
    rows = []
    for s in summary.method_summaries.values():
        ratio = "1 (ref)" if s.method == baseline else _estimate(s.steps_ratio, "ratio")
        paired = accuracy.get(s.method)
        difference = "-" if paired is None else f"{_difference(paired.mean, 'accuracy')} (p={_p(paired.p_holm)})"
        rows.append(
            [
                s.method,
                f"{s.n_finished}/{s.n_runs}",
                _estimate(s.final_reward, "final_reward"),
                _estimate(s.accuracy, "accuracy"),
                _estimate(s.mean_length, "mean_length"),
                ratio,
                difference,
            ]
        )
    header = [
        "method",
        "runs",
        "final reward [95% CI]",
        "held-out acc [95% CI]",
        "length",
        f"steps/{baseline}",
        f"acc - {baseline} (Holm p)",
    ]
    lines = [_text_table(header, rows)]
    if summary.base_model is not None:
        lines.append(f"base model held-out accuracy: {_value(summary.base_model.accuracy, 'accuracy')}")
    lines += ["", *supported_claims(summary)]
    return "\n".join(lines)


# --- Sweep ---------------------------------------------------------------------------------------


def _param(value: Any) -> Any:
    """A grid value: numbers as floats, anything else (e.g. "auto") as is."""
    if _is_number(value):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


def _param_text(value: Any) -> str:
    """A grid value as shown: "0.1", "1", "auto", "-"."""
    if value is None:
        return "-"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _param_order(value: Any) -> tuple[int, float, str]:
    """Numbers first, ascending; then the rest by name."""
    return (0, float(value), "") if isinstance(value, float) else (1, 0.0, str(value))


def _is_reference(outcome: RunOutcome) -> bool:
    """A plain GRPO run of a sweep: method "grpo" with no EGSW mode."""
    return outcome.method == "grpo" and str(outcome.params.get("egsw_mode", "none")) == "none"


def _cell_key(outcome: RunOutcome) -> tuple[str, Any, Any] | None:
    """``(mode, alpha, temperature)`` of a grid run; None for the reference or an unplaceable run."""
    mode = outcome.params.get("egsw_mode")
    if _is_reference(outcome) or mode is None or str(mode) == "none":
        return None
    return str(mode), _param(outcome.params.get("egsw_alpha")), _param(outcome.params.get("egsw_temperature"))


def _sweep_cell(label: str, key: tuple[str, Any, Any], rows: Sequence[RunRow]) -> SweepCell:
    """One grid cell over its seeds."""
    done = _finished(rows)
    return SweepCell(
        label=label,
        mode=key[0],
        alpha=key[1],
        temperature=key[2],
        n_runs=len(rows),
        seeds=[row.seed for row in done],
        final_reward=Estimate.of([row.final_reward for row in done]),
        accuracy=Estimate.of([row.accuracy for row in done]),
        mean_length=Estimate.of([row.mean_length for row in done]),
    )


def _overlap(a: Estimate, b: Estimate) -> bool | None:
    """Whether two 95% t-intervals overlap; None when either rests on fewer than 2 seeds."""
    if a.n < 2 or b.n < 2 or not all(_is_number(v) for v in (a.low, a.high, b.low, b.high)):
        return None
    return a.low <= b.high and b.low <= a.high


def _grid_neighbours(cell: SweepCell, cells: Sequence[SweepCell]) -> list[SweepCell]:
    """The cells next to ``cell`` in its mode's alpha x temperature grid (one step along one axis)."""
    same_mode = [c for c in cells if c.mode == cell.mode]
    alphas = sorted({c.alpha for c in same_mode}, key=_param_order)
    temperatures = sorted({c.temperature for c in same_mode}, key=_param_order)
    row, column = alphas.index(cell.alpha), temperatures.index(cell.temperature)
    wanted = set()
    for r, c in ((row - 1, column), (row + 1, column), (row, column - 1), (row, column + 1)):
        if 0 <= r < len(alphas) and 0 <= c < len(temperatures):
            wanted.add((alphas[r], temperatures[c]))
    return [c for c in same_mode if (c.alpha, c.temperature) in wanted]


def _verdict(best: SweepCell, measure: str, neighbours: Sequence[Neighbour], reference: Estimate | None) -> str:
    """Whether the best cell is distinguishable from its neighbours and from grpo (t-interval overlap)."""
    estimate: Estimate = getattr(best, measure)
    if estimate.n < 2:
        return "Fewer than 2 seeds: its interval cannot be compared with any other."
    parts = []
    judged = [n for n in neighbours if n.overlaps is not None]
    overlapping = [n.label for n in judged if n.overlaps]
    if not neighbours:
        parts.append("It has no grid neighbours.")
    elif not judged:
        parts.append("Its neighbours have fewer than 2 seeds each: no comparison.")
    elif overlapping:
        parts.append(
            f"Its 95% t-interval overlaps those of {len(overlapping)} of {len(judged)} comparable neighbours "
            f"({', '.join(f'`{label}`' for label in overlapping)}): not distinguishable from them."
        )
    else:
        parts.append(f"Its 95% t-interval is separate from those of all {len(judged)} comparable neighbours.")
    if reference is not None:
        overlaps = _overlap(estimate, reference)
        if overlaps is None:
            parts.append("The grpo reference has fewer than 2 seeds: no comparison.")
        else:
            relation = "overlaps grpo's: not distinguishable from grpo" if overlaps else "is separate from grpo's"
            parts.append(f"Its interval {relation}.")
    return " ".join(parts)


def _best_cell(cells: Sequence[SweepCell], measure: str, reference: SweepCell | None) -> BestCell | None:
    """The cell with the highest mean on ``measure`` (first on ties), with its comparisons."""
    candidates = [c for c in cells if _is_number(getattr(c, measure).mean)]
    if not candidates:
        return None
    best = max(candidates, key=lambda c: getattr(c, measure).mean)
    estimate: Estimate = getattr(best, measure)
    neighbours = [
        Neighbour(c.label, getattr(c, measure), _overlap(estimate, getattr(c, measure)))
        for c in _grid_neighbours(best, cells)
        if getattr(c, measure).n > 0
    ]
    ref = getattr(reference, measure) if reference is not None and getattr(reference, measure).n > 0 else None
    return BestCell(
        measure=measure,
        label=best.label,
        mode=best.mode,
        alpha=best.alpha,
        temperature=best.temperature,
        estimate=estimate,
        neighbours=neighbours,
        reference=ref,
        reference_overlaps=_overlap(estimate, ref) if ref is not None else None,
        verdict=_verdict(best, measure, neighbours, ref),
    )


def summarize_sweep(runs: Sequence[RunOutcome]) -> SweepSummary:
    """Per (mode, alpha, temperature) cell: final training reward and held-out accuracy over seeds.

    Cells come from the runs' ``params`` (``egsw_mode``, ``egsw_alpha``, ``egsw_temperature``); runs
    of method "grpo" without an EGSW mode form the reference. The label of a cell is the method of
    its first run.
    """
    rows = [_run_row(o, d, e, math.nan, 1) for o, d, e in _load_all(runs)]
    keys = [_cell_key(outcome) for outcome in runs]
    modes = _ordered([key[0] for key in keys if key is not None])
    grouped: dict[tuple[str, Any, Any], list[RunRow]] = {}
    labels: dict[tuple[str, Any, Any], str] = {}
    for outcome, key, row in zip(runs, keys, rows, strict=True):
        if key is not None:
            grouped.setdefault(key, []).append(row)
            labels.setdefault(key, outcome.method)
    order = sorted(grouped, key=lambda k: (modes.index(k[0]), _param_order(k[1]), _param_order(k[2])))
    cells = [_sweep_cell(labels[key], key, grouped[key]) for key in order]
    reference_rows = [row for outcome, row in zip(runs, rows, strict=True) if _is_reference(outcome)]
    reference = _sweep_cell("grpo", ("none", None, None), reference_rows) if reference_rows else None
    unplaced = [
        f"{o.method} seed {o.seed}" for o, key in zip(runs, keys, strict=True) if key is None and not _is_reference(o)
    ]
    return SweepSummary(
        modes=modes,
        cells=cells,
        reference=reference,
        best={measure: _best_cell(cells, measure, reference) for measure in SWEEP_MEASURES},
        base_model=_base_model(runs),
        runs=rows,
        unplaced=unplaced,
    )


def _safe_name(text: str) -> str:
    """A file-name-safe version of ``text``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "mode"


def _plot_heatmap(cells: Sequence[SweepCell], mode: str, measure: str, path: Path) -> Path:
    """alpha (rows) x temperature (columns) of the mean ``measure``, annotated with the value and seeds."""
    plt = _pyplot()
    alphas = sorted({c.alpha for c in cells}, key=_param_order)
    temperatures = sorted({c.temperature for c in cells}, key=_param_order)
    values = np.full((len(alphas), len(temperatures)), np.nan)
    seeds = np.zeros(values.shape, dtype=int)
    for c in cells:
        estimate: Estimate = getattr(c, measure)
        i, j = alphas.index(c.alpha), temperatures.index(c.temperature)
        values[i, j], seeds[i, j] = estimate.mean, estimate.n
    figure, axis = plt.subplots(figsize=(1.4 * len(temperatures) + 2.5, 1.0 * len(alphas) + 1.8), dpi=120)
    colormap = plt.get_cmap("viridis").with_extremes(bad="lightgrey")
    finite = values[np.isfinite(values)]
    image = axis.imshow(np.ma.masked_invalid(values), cmap=colormap, aspect="auto")
    middle = float(np.mean([finite.min(), finite.max()])) if finite.size else 0.0
    kind = "accuracy" if measure == "accuracy" else "final_reward"
    for i in range(len(alphas)):
        for j in range(len(temperatures)):
            if math.isfinite(values[i, j]):
                text, color = (
                    f"{_value(values[i, j], kind)}\nn={seeds[i, j]}",
                    "white" if values[i, j] < middle else "black",
                )
            else:
                text, color = "n/a", "black"
            axis.text(j, i, text, ha="center", va="center", fontsize=8, color=color)
    axis.set_xticks(range(len(temperatures)), [f"P={_param_text(t)}" for t in temperatures])
    axis.set_yticks(range(len(alphas)), [f"alpha={_param_text(a)}" for a in alphas])
    axis.set_xlabel("EGSW temperature P")
    axis.set_ylabel("EGSW alpha")
    axis.set_title(f"{mode}: mean {MEASURES[measure]}", fontsize=10)
    figure.colorbar(image, ax=axis, label=MEASURES[measure])
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def _cell_rows(summary: SweepSummary) -> list[list[str]]:
    """Per cell, then the grpo reference: mode, alpha, P, finished/runs, final reward and accuracy estimates."""
    cells = [*summary.cells, *([summary.reference] if summary.reference is not None else [])]
    return [
        [
            "grpo (reference)" if c is summary.reference else c.mode,
            _param_text(c.alpha),
            _param_text(c.temperature),
            f"{len(c.seeds)}/{c.n_runs}",
            _estimate(c.final_reward, "final_reward"),
            _estimate(c.accuracy, "accuracy"),
        ]
        for c in cells
    ]


def _sweep_markdown(summary: SweepSummary, output_dir: Path, title: str, command: str, notes: Sequence[str]) -> str:
    """The whole sweep report."""
    lines = _header_lines(title, command, notes)
    lines += [
        f"{_status_counts(summary.runs)}; {len(summary.cells)} grid cells over modes "
        f"{', '.join(f'`{m}`' for m in summary.modes) or 'none'}"
        + ("; a `grpo` reference." if summary.reference is not None else "; no `grpo` reference runs."),
        "",
        "## Best settings",
        "",
        "Best = highest mean over seeds. Distinguishable means the 95% t-intervals over seeds do not overlap "
        "(interval-overlap check, conservative: separate intervals show a difference, overlapping ones do not "
        "prove there is none). Neighbours are the cells one step away in alpha or P within the same mode.",
        "",
    ]
    for measure in SWEEP_MEASURES:
        best = summary.best[measure]
        kind = "accuracy" if measure == "accuracy" else "final_reward"
        if best is None:
            lines += [f"- **{MEASURES[measure]}**: n/a (no cell has a value).", ""]
            continue
        reference = f" grpo reference: {_estimate(best.reference, kind)}." if best.reference is not None else ""
        lines += [
            f"- **{MEASURES[measure]}**: `{best.label}` with {_estimate(best.estimate, kind)} "
            f"({best.estimate.n} seeds).{reference} {best.verdict}",
            "",
        ]
    lines += ["## Heatmaps", ""]
    for mode in summary.modes:
        for measure in SWEEP_MEASURES:
            name = f"sweep-{_safe_name(mode)}-{measure}.png"
            lines += [f"![{mode} {MEASURES[measure]}](figures/{name})", ""]
        lines += [f"*Mode `{mode}`: mean over seeds per alpha (rows) x P (columns); n = seeds in the cell.*", ""]
    body = _cell_rows(summary)
    if summary.base_model is not None:
        body.append(["base model", "-", "-", "-", "-", _value(summary.base_model.accuracy, "accuracy")])
    lines += [
        "## All cells",
        "",
        _md_table(["mode", "alpha", "P", "seeds", "final reward [95% t-CI]", "held-out accuracy [95% t-CI]"], body),
        "",
        "The final training reward of a run is its mean reward over the last 20% of its logged steps.",
        "",
    ]
    if summary.unplaced:
        lines += [f"Runs without a grid position (not in the heatmaps): {', '.join(summary.unplaced)}.", ""]
    lines += ["## Runs", "", _runs_table(summary.runs, output_dir, "cell"), ""]
    return "\n".join(lines)


def write_sweep_report(
    runs: Sequence[RunOutcome], output_dir: Path, *, title: str, command: str, notes: Sequence[str] = ()
) -> Path:
    """Write ``report.md``, ``figures/sweep-<mode>-{final_reward,accuracy}.png`` and ``summary.json``.

    Returns the path of ``report.md``; failed or missing runs are listed and never stop it.
    """
    output_dir = Path(output_dir)
    figures = output_dir / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    summary = summarize_sweep(runs)
    written = [
        _plot_heatmap(
            [c for c in summary.cells if c.mode == mode],
            mode,
            measure,
            figures / f"sweep-{_safe_name(mode)}-{measure}.png",
        )
        for mode in summary.modes
        for measure in SWEEP_MEASURES
    ]
    report = output_dir / "report.md"
    report.write_text(_sweep_markdown(summary, output_dir, title, command, notes))
    content = {
        "kind": "sweep",
        "title": title,
        "command": command,
        "notes": list(notes),
        "figures": [str(p.relative_to(output_dir)) for p in written],
        **summary.to_dict(),
    }
    _write_json(output_dir / "summary.json", content)
    return report


def format_sweep_table(summary: SweepSummary) -> str:
    """A plain-text table of the sweep's cells for the terminal, then the best cell per measure."""
    rows = _cell_rows(summary)
    lines = [_text_table(["mode", "alpha", "P", "seeds", "final reward [95% CI]", "held-out acc [95% CI]"], rows), ""]
    for measure in SWEEP_MEASURES:
        best = summary.best[measure]
        kind = "accuracy" if measure == "accuracy" else "final_reward"
        if best is None:
            lines.append(f"best {MEASURES[measure]}: n/a")
        else:
            lines.append(f"best {MEASURES[measure]}: {best.label} {_estimate(best.estimate, kind)}. {best.verdict}")
    return "\n".join(lines)
