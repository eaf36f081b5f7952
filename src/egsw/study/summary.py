"""The statistics of a comparison or sweep, from the runs' data to the summaries the reports show.

Comparison (:func:`summarize_comparison`): per-run numbers first (:class:`RunRow`), then per method
over seeds (t-intervals, training curves as bands), then paired by seed against the baseline
(bootstrap interval, exact sign-flip permutation test, Holm); :func:`is_detected` says which paired
differences count and :func:`smallest_holm_p` whether any could. Sweep
(:func:`summarize_sweep`): per (mode, alpha, temperature) cell over seeds, and the best cell per
measure against its grid neighbours and the grpo reference (t-interval overlap). Pure numbers: no
markdown, no figures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from egsw.run.plots import CURVES, moving_average
from egsw.stats import (
    bootstrap_mean,
    bootstrap_ratio,
    holm_adjust,
    paired_permutation_test,
    smallest_sign_flip_p,
    t_interval,
)
from egsw.study.anova import blocked_two_factor_anova
from egsw.study.runs_data import (
    MEASURES,
    SIGNIFICANCE,
    SWEEP_MEASURES,
    BaseModel,
    BestCell,
    ComparisonSummary,
    CurveBand,
    Estimate,
    MethodSummary,
    Neighbour,
    PairedComparison,
    RunData,
    RunOutcome,
    RunRow,
    Sensitivity,
    SweepCell,
    SweepSummary,
    finished_rows,
    is_number,
    load_runs,
    read_base_model,
    steps_to_threshold,
    unique_in_order,
)

# --- Per-run numbers -----------------------------------------------------------------------------


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


# --- Comparison: over seeds, paired with the baseline --------------------------------------------


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


def _method_summary(
    method: str, rows: Sequence[RunRow], baseline_steps: list[float] | None, n_bootstrap: int, rng_seed: int
) -> MethodSummary:
    """One method over its seeds; ``baseline_steps`` None for the baseline itself (no ratio)."""
    done = finished_rows(rows)
    steps = [row.steps_to_threshold for row in done]
    ratio = None
    if baseline_steps is not None:
        value, low, high = bootstrap_ratio(steps, baseline_steps, n_bootstrap=n_bootstrap, rng_seed=rng_seed)
        ratio = Estimate(value, low, high, sum(is_number(s) for s in steps))
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
    for row in finished_rows(rows):
        value = getattr(row, measure)
        if is_number(value) and row.seed not in values:
            values[row.seed] = float(value)
    return values


def _paired(
    method: str, measure: str, rows: Sequence[RunRow], baseline_rows: Sequence[RunRow], n_bootstrap: int, rng_seed: int
) -> PairedComparison:
    """``method - baseline`` on the seeds both have (Holm adjustment filled in later)."""
    ours, theirs = _by_seed(rows, measure), _by_seed(baseline_rows, measure)
    seeds = sorted(set(ours) & set(theirs))
    differences = np.asarray([ours[s] - theirs[s] for s in seeds], dtype=float)
    mean, low, high = bootstrap_mean(differences, n_bootstrap=n_bootstrap, rng_seed=rng_seed)
    test = paired_permutation_test(differences, rng_seed=rng_seed)
    _, t_low, t_high = t_interval(differences) if differences.size >= 2 else (math.nan, math.nan, math.nan)
    return PairedComparison(
        method=method,
        measure=measure,
        n=len(seeds),
        seeds=seeds,
        mean=mean,
        low=low,
        high=high,
        p_value=test["p_value"],
        p_holm=math.nan,
        t_low=t_low,
        t_high=t_high,
        wins=int(np.sum(differences > 0)),
        losses=int(np.sum(differences < 0)),
        test=test["test"],
        exact=test["exact"],
        smallest_p=test["smallest_p"],
    )


def _paired_with_holm(
    groups: Sequence[tuple[str, Sequence[RunRow]]],
    measure: str,
    baseline_rows: Sequence[RunRow],
    n_bootstrap: int,
    rng_seed: int,
) -> list[PairedComparison]:
    """Each (label, rows) group minus the baseline on ``measure``, Holm-adjusted over the groups."""
    found = [_paired(label, measure, rows, baseline_rows, n_bootstrap, rng_seed) for label, rows in groups]
    adjusted = holm_adjust([c.p_value for c in found])
    return [replace(c, p_holm=p) for c, p in zip(found, adjusted, strict=True)]


def summarize_comparison(
    runs: Sequence[RunOutcome],
    baseline: str = "grpo",
    *,
    smoothing_window: int = 5,
    n_bootstrap: int = 10_000,
    rng_seed: int = 0,
    base_model: BaseModel | None = None,
) -> ComparisonSummary:
    """All the numbers of a methods x seeds comparison (see the module docstring).

    ``base_model`` is the base model's evaluation when the runs did not evaluate it themselves
    (by default it is read from the first run whose eval.json has "before").

    Methods keep their order of first appearance in ``runs``. The reward threshold is the
    baseline's mean final training reward; without a finished baseline run there is no threshold,
    no ratio and no paired comparison (NaN / empty).
    """
    loaded = load_runs(runs)
    methods = unique_in_order([outcome.method for outcome in runs])
    data_by_method = {m: [d for o, d, _ in loaded if o.method == m and d is not None] for m in methods}
    baseline_data = data_by_method.get(baseline, [])
    threshold = float(np.mean([d.final_reward for d in baseline_data])) if baseline_data else math.nan
    rows = [_run_row(o, d, e, threshold, smoothing_window) for o, d, e in loaded]
    rows_by_method = {m: [row for row in rows if row.method == m] for m in methods}
    baseline_rows = rows_by_method.get(baseline, [])
    present = bool(baseline_data)
    baseline_steps = [row.steps_to_threshold for row in finished_rows(baseline_rows)]
    summaries = {
        m: _method_summary(
            m, rows_by_method[m], None if (m == baseline or not present) else baseline_steps, n_bootstrap, rng_seed
        )
        for m in methods
    }
    paired: dict[str, list[PairedComparison]] = {}
    if present:
        for measure in MEASURES:
            groups = [(m, rows_by_method[m]) for m in methods if m != baseline]
            paired[measure] = _paired_with_holm(groups, measure, baseline_rows, n_bootstrap, rng_seed)
    curves = {name: {m: _curve_band(data_by_method[m], name, smoothing_window) for m in methods} for name in CURVES}
    return ComparisonSummary(
        baseline=baseline,
        baseline_present=present,
        methods=methods,
        method_summaries=summaries,
        threshold=threshold,
        paired=paired,
        curves=curves,
        base_model=base_model or read_base_model(runs),
        runs=rows,
        smoothing_window=smoothing_window,
        n_bootstrap=n_bootstrap,
        rng_seed=rng_seed,
    )


def is_detected(comparison: PairedComparison) -> bool:
    """A difference the report calls detected: Holm-adjusted sign-flip p < 0.05 *and* a paired t-interval without 0.

    Differences of one sign give the sign-flip test its smallest p, 2 / 2^n, however widely they
    spread (from 6 seeds on that is below 0.05), so the paired t-interval, which weighs the spread
    against the mean, must agree.
    """
    return (
        is_number(comparison.p_holm)
        and comparison.p_holm < SIGNIFICANCE
        and is_number(comparison.t_low)
        and not comparison.t_low <= 0 <= comparison.t_high
    )


def seeds_for_detection(tests: int, alpha: float = SIGNIFICANCE) -> int:
    """The fewest paired seeds at which a Holm-adjusted sign-flip p over ``tests`` comparisons can be < ``alpha``.

    The smallest n with ``tests * smallest_sign_flip_p(n) < alpha``: 6 for one comparison, 7 for two or
    three, 8 for four to six (at alpha 0.05).
    """
    n = 1
    while tests * smallest_sign_flip_p(n) >= alpha:
        n += 1
    return n


def smallest_holm_p(comparisons: Sequence[PairedComparison]) -> float:
    """The smallest Holm-adjusted p any data could give this family of comparisons (one measure).

    Holm multiplies the smallest of the m p-values by m, and no comparison's p can go below its
    ``smallest_p`` (2 / 2^n at n seeds), so it is ``m * min(smallest_p)`` over the m comparisons with
    a p-value, capped at 1; NaN when none has one. At or above 0.05 nothing can be detected.
    """
    tested = [c for c in comparisons if is_number(c.p_value)]
    if not tested:
        return math.nan
    return min(1.0, len(tested) * min(c.smallest_p for c in tested))


# --- Sweep: grid cells over seeds ----------------------------------------------------------------


def _param(value: Any) -> Any:
    """A grid value: numbers as floats, anything else (e.g. "auto") as is."""
    if is_number(value):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


def grid_value_order(value: Any) -> tuple[int, float, str]:
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
    done = finished_rows(rows)
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
    if a.n < 2 or b.n < 2 or not all(is_number(v) for v in (a.low, a.high, b.low, b.high)):
        return None
    return a.low <= b.high and b.low <= a.high


def _grid_neighbours(cell: SweepCell, cells: Sequence[SweepCell]) -> list[SweepCell]:
    """The cells next to ``cell`` in its mode's alpha x temperature grid (one step along one axis)."""
    same_mode = [c for c in cells if c.mode == cell.mode]
    alphas = sorted({c.alpha for c in same_mode}, key=grid_value_order)
    temperatures = sorted({c.temperature for c in same_mode}, key=grid_value_order)
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
    candidates = [c for c in cells if is_number(getattr(c, measure).mean)]
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


def _sensitivity(mode: str, measure: str, grouped: dict[tuple[str, Any, Any], list[RunRow]]) -> Sensitivity:
    """The seed-blocked ANOVA of ``measure`` over ``mode``'s alpha x temperature grid (egsw.study.anova)."""
    keys = [key for key in grouped if key[0] == mode]
    alphas = sorted({key[1] for key in keys}, key=grid_value_order)
    temperatures = sorted({key[2] for key in keys}, key=grid_value_order)
    values = {
        key: {
            row.seed: getattr(row, measure) for row in finished_rows(grouped[key]) if is_number(getattr(row, measure))
        }
        for key in keys
    }
    seeds = sorted(set.intersection(*(set(by_seed) for by_seed in values.values())))

    def untested(note: str) -> Sensitivity:
        return Sensitivity(mode, measure, seeds, len(keys), 0, {}, note)

    if len(keys) < len(alphas) * len(temperatures):
        return untested("the alpha x P grid is incomplete")
    if len(keys) < 2 or len(seeds) < 2:
        return untested("needs at least 2 cells and 2 seeds that every cell finished")
    array = np.array([[[values[(mode, a, t)][s] for s in seeds] for t in temperatures] for a in alphas])
    return Sensitivity(
        mode, measure, seeds, len(keys), (len(keys) - 1) * (len(seeds) - 1), blocked_two_factor_anova(array), None
    )


def _versus_reference(
    cells: Sequence[tuple[str, Sequence[RunRow]]], reference_rows: Sequence[RunRow], n_bootstrap: int, rng_seed: int
) -> list[dict[str, PairedComparison]]:
    """Per (label, rows) cell and measure, ``cell - grpo`` paired by seed; Holm-adjusted over the cells."""
    if not finished_rows(reference_rows):
        return [{} for _ in cells]
    by_measure = {m: _paired_with_holm(cells, m, reference_rows, n_bootstrap, rng_seed) for m in SWEEP_MEASURES}
    return [{m: by_measure[m][i] for m in SWEEP_MEASURES} for i in range(len(cells))]


def summarize_sweep(runs: Sequence[RunOutcome], *, n_bootstrap: int = 10_000, rng_seed: int = 0) -> SweepSummary:
    """Per (mode, alpha, temperature) cell: final training reward and held-out accuracy over seeds.

    Cells come from the runs' ``params`` (``egsw_mode``, ``egsw_alpha``, ``egsw_temperature``); runs
    of method "grpo" without an EGSW mode form the reference. The label of a cell is the method of
    its first run. ``sensitivity`` tests, per mode and measure, whether alpha, P or their combination
    matter beyond seed noise (:func:`egsw.study.anova.blocked_two_factor_anova`, seeds as blocks). Each
    cell's ``versus_reference`` is its paired difference from grpo on the seeds both finished.
    """
    rows = [_run_row(o, d, e, math.nan, 1) for o, d, e in load_runs(runs)]
    keys = [_cell_key(outcome) for outcome in runs]
    modes = unique_in_order([key[0] for key in keys if key is not None])
    grouped: dict[tuple[str, Any, Any], list[RunRow]] = {}
    labels: dict[tuple[str, Any, Any], str] = {}
    for outcome, key, row in zip(runs, keys, rows, strict=True):
        if key is not None:
            grouped.setdefault(key, []).append(row)
            labels.setdefault(key, outcome.method)
    order = sorted(grouped, key=lambda k: (modes.index(k[0]), grid_value_order(k[1]), grid_value_order(k[2])))
    reference_rows = [row for outcome, row in zip(runs, rows, strict=True) if _is_reference(outcome)]
    reference = _sweep_cell("grpo", ("none", None, None), reference_rows) if reference_rows else None
    versus = _versus_reference([(labels[key], grouped[key]) for key in order], reference_rows, n_bootstrap, rng_seed)
    cells = [
        replace(_sweep_cell(labels[key], key, grouped[key]), versus_reference=paired)
        for key, paired in zip(order, versus, strict=True)
    ]
    unplaced = [
        f"{o.method} seed {o.seed}" for o, key in zip(runs, keys, strict=True) if key is None and not _is_reference(o)
    ]
    return SweepSummary(
        modes=modes,
        cells=cells,
        reference=reference,
        best={measure: _best_cell(cells, measure, reference) for measure in SWEEP_MEASURES},
        base_model=read_base_model(runs),
        runs=rows,
        unplaced=unplaced,
        sensitivity=[_sensitivity(mode, measure, grouped) for mode in modes for measure in SWEEP_MEASURES],
    )
