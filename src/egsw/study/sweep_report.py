"""The sweep report of ``egsw sweep``: ``report.md``, heatmaps and ``summary.json``, and the terminal table.

Per mode, a heatmap of alpha x temperature for the final training reward and the held-out accuracy;
the best cell per measure with whether it is distinguishable from its grid neighbours and from the
grpo reference; each cell against grpo by its paired t-interval and an exact sign-flip permutation
test, Holm-adjusted over the cells. The numbers come from egsw.study.summary (:func:`summarize_sweep`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from egsw.stats import holm_adjust
from egsw.study.runs_data import (
    MEASURES,
    SIGNIFICANCE,
    SWEEP_MEASURES,
    Estimate,
    RunOutcome,
    SweepCell,
    SweepSummary,
    write_summary_json,
)
from egsw.study.summary import grid_value_order, is_detected, seeds_for_detection, smallest_holm_p, summarize_sweep
from egsw.study.tables import (
    difference_text,
    estimate_text,
    header_lines,
    interval_text,
    markdown_table,
    p_floor_text,
    p_value_phrase,
    p_value_text,
    pyplot,
    runs_table,
    status_counts,
    text_table,
    value_text,
)


def _param_text(value: Any) -> str:
    """A grid value as shown: "0.1", "1", "auto", "-"."""
    if value is None:
        return "-"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _safe_name(text: str) -> str:
    """A file-name-safe version of ``text``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "mode"


def _plot_heatmap(cells: Sequence[SweepCell], mode: str, measure: str, path: Path) -> Path:
    """alpha (rows) x temperature (columns) of the mean ``measure``, annotated with the value and seeds."""
    plt = pyplot()
    alphas = sorted({c.alpha for c in cells}, key=grid_value_order)
    temperatures = sorted({c.temperature for c in cells}, key=grid_value_order)
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
                    f"{value_text(values[i, j], kind)}\nn={seeds[i, j]}",
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


def _table_cells(summary: SweepSummary) -> list[SweepCell]:
    """The grid cells, then the grpo reference when there is one: the rows of the cell tables."""
    return [*summary.cells, *([summary.reference] if summary.reference is not None else [])]


def _cell_rows(summary: SweepSummary) -> list[list[str]]:
    """Per cell, then the grpo reference: mode, alpha, P, finished/runs, final reward and accuracy estimates."""
    cells = _table_cells(summary)
    return [
        [
            "grpo (reference)" if c is summary.reference else c.mode,
            _param_text(c.alpha),
            _param_text(c.temperature),
            f"{len(c.seeds)}/{c.n_runs}",
            estimate_text(c.final_reward, "final_reward"),
            estimate_text(c.accuracy, "accuracy"),
        ]
        for c in cells
    ]


def _versus_text(cell: SweepCell, measure: str) -> str:
    """``+0.029 [-0.010, +0.068]``: the cell minus grpo, mean and paired t-interval over common seeds."""
    paired = cell.versus_reference.get(measure)
    if paired is None or paired.n == 0:
        return "-"
    return f"{difference_text(paired.mean, measure)} {interval_text(paired.t_low, paired.t_high, measure, True)}"


def versus_reference_sentence(summary: SweepSummary) -> str:
    """Which cells' paired t-interval against grpo lies wholly above or below 0, per measure."""
    if summary.reference is None:
        return "No `grpo` runs: no cell is compared with GRPO."
    parts = []
    for measure in SWEEP_MEASURES:
        above = [c.label for c in summary.cells if _t_side(c, measure) > 0]
        below = [c.label for c in summary.cells if _t_side(c, measure) < 0]
        named = [
            f"above grpo: {', '.join(f'`{label}`' for label in above)}" if above else "",
            f"below grpo: {', '.join(f'`{label}`' for label in below)}" if below else "",
        ]
        found = "; ".join(text for text in named if text) or "no cell's interval excludes 0"
        parts.append(f"{MEASURES[measure]}: {found}")
    return (
        "Paired 95% t-intervals of cell - grpo over common seeds, uncorrected for the number of cells ("
        + "; ".join(parts)
        + ")."
    )


def _tested_against_reference(summary: SweepSummary, measure: str) -> str:
    """What the Holm-adjusted sign-flip tests of cell - grpo on ``measure`` find, or why they cannot find anything."""
    pairs = [(c.label, c.versus_reference[measure]) for c in summary.cells if measure in c.versus_reference]
    tested = [(label, paired) for label, paired in pairs if math.isfinite(paired.p_value)]
    if not tested:
        return f"{MEASURES[measure]}: n/a (fewer than 2 common seeds)"
    floor = smallest_holm_p([paired for _, paired in tested])
    if floor >= SIGNIFICANCE:
        seeds = max(paired.n for _, paired in tested)
        smallest = min(paired.smallest_p for _, paired in tested)
        return (
            f"{MEASURES[measure]}: p_Holm < {SIGNIFICANCE:g} is out of reach at {seeds} seeds (no p below "
            f"2 / 2^{seeds} = {p_floor_text(smallest)}, and Holm over {len(tested)} cells makes it >= "
            f"{p_floor_text(floor)}; that takes {seeds_for_detection(len(tested), SIGNIFICANCE)} seeds)"
        )
    detected = [f"`{label}`" for label, paired in tested if is_detected(paired)]
    if detected:
        return f"{MEASURES[measure]}: detected for {', '.join(detected)}"
    best = min(paired.p_holm for _, paired in tested)
    return f"{MEASURES[measure]}: none detected (smallest {p_value_phrase(best, 'p_Holm')})"


def versus_reference_test_sentence(summary: SweepSummary) -> str:
    """Which cells differ detectably from grpo by the comparison's rule, Holm-adjusted over the cells."""
    if summary.reference is None:
        return ""
    parts = [_tested_against_reference(summary, measure) for measure in SWEEP_MEASURES]
    exact = all(paired.exact for c in summary.cells for paired in c.versus_reference.values() if paired.n >= 2)
    name = (
        "Exact sign-flip permutation tests"
        if exact
        else "Sign-flip permutation tests (random sign patterns above 16 seeds)"
    )
    return (
        f"{name} of cell - grpo, Holm-adjusted over the cells, with `egsw compare`'s rule (detected: p_Holm < "
        f"{SIGNIFICANCE:g} and the paired t-interval excludes 0): " + "; ".join(parts) + "."
    )


def _t_side(cell: SweepCell, measure: str) -> int:
    """+1 / -1 when the cell's paired t-interval against grpo lies wholly above / below 0, else 0."""
    paired = cell.versus_reference.get(measure)
    if paired is None or not (math.isfinite(paired.t_low) and math.isfinite(paired.t_high)):
        return 0
    return 1 if paired.t_low > 0 else -1 if paired.t_high < 0 else 0


_EFFECT_NAMES = {"alpha": "alpha", "temperature": "P", "interaction": "alpha x P", "cells": "any cell"}


def _effect_text(effect: Any, residual_dof: int) -> str:
    """``F(2, 16) = 0.84, p = 0.45`` for an ``egsw.study.anova.Effect`` tested on ``residual_dof``."""
    if not math.isfinite(effect.f):
        return f"F({effect.dof}, {residual_dof}) n/a"
    return f"F({effect.dof}, {residual_dof}) = {effect.f:.2f}, {p_value_phrase(effect.p_value)}"


def _sensitivity_rows(summary: SweepSummary) -> list[list[str]]:
    """Per mode and measure: seeds, then each effect's F test, or why there is none."""
    rows = []
    for test in summary.sensitivity:
        cells = [
            _effect_text(test.effects[name], test.residual_dof) if name in test.effects else "-"
            for name in _EFFECT_NAMES
        ]
        if test.note is not None:
            cells = [test.note, *["-"] * (len(_EFFECT_NAMES) - 1)]
        rows.append([test.mode, MEASURES[test.measure], str(len(test.seeds)), *cells])
    return rows


def _seed_range(tests: Sequence[Any]) -> str:
    """ "3" or "2-3": the seeds the tests rest on."""
    low, high = min(len(t.seeds) for t in tests), max(len(t.seeds) for t in tests)
    return str(low) if low == high else f"{low}-{high}"


def sensitivity_sentence(summary: SweepSummary) -> str:
    """What the ANOVA supports: the effects with p < 0.05 after Holm's correction over the table's tests.

    Effects below 0.05 only before the correction are named as leads, not as detected dependence.
    """
    tested = [t for t in summary.sensitivity if t.effects]
    if not tested:
        return "No sensitivity test could be run (see the table)."
    tests = [(t, name, e.p_value) for t in tested for name, e in t.effects.items() if math.isfinite(e.p_value)]
    adjusted = holm_adjust([p for *_, p in tests])

    def named(found: Sequence[tuple[Any, str, float]], label: str) -> str:
        return "; ".join(
            f"{MEASURES[t.measure]} in `{t.mode}` on {_EFFECT_NAMES[name]} ({p_value_phrase(p, label)})"
            for t, name, p in found
        )

    raw = [(t, name, p) for t, name, p in tests if p < SIGNIFICANCE]
    holm = [(t, name, q) for (t, name, _), q in zip(tests, adjusted, strict=True) if q < SIGNIFICANCE]
    if holm:
        return f"Dependence detected after Holm's correction over the {len(tests)} tests: {named(holm, 'p_Holm')}."
    if raw:
        return (
            f"Below p = {SIGNIFICANCE:g} for that test alone: {named(raw, 'p')}; after Holm's correction over the "
            f"{len(tests)} tests none remains (smallest adjusted p = {p_value_text(min(adjusted))}): leads for more "
            "seeds, not detected dependence."
        )
    return (
        f"No measure depends detectably on alpha, P or their combination at {_seed_range(tested)} seeds per "
        f"cell (every p >= {SIGNIFICANCE:g}); within this grid the choice of alpha and P is not "
        "distinguishable from seed noise."
    )


def _sweep_markdown(summary: SweepSummary, output_dir: Path, title: str, command: str, notes: Sequence[str]) -> str:
    """The whole sweep report."""
    lines = header_lines(title, command, notes)
    lines += [
        f"{status_counts(summary.runs)}; {len(summary.cells)} grid cells over modes "
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
        reference = f" grpo reference: {estimate_text(best.reference, kind)}." if best.reference is not None else ""
        lines += [
            f"- **{MEASURES[measure]}**: `{best.label}` with {estimate_text(best.estimate, kind)} "
            f"({best.estimate.n} seeds).{reference} {best.verdict}",
            "",
        ]
    lines += [
        "## Sensitivity to alpha and P",
        "",
        "Two-way ANOVA per mode and measure, the seeds as blocks (every cell runs the same seeds, and a seed "
        "fixes the data order and the sampling stream): F of each effect against the cell x seed residual, "
        "its degrees of freedom and p. `any cell` tests alpha, P and alpha x P together. It assumes normal, "
        "equal-variance noise; with few seeds a large p means *not detected*, not *no effect*.",
        "",
        markdown_table(["mode", "measure", "seeds", *(_EFFECT_NAMES.values())], _sensitivity_rows(summary)),
        "",
        sensitivity_sentence(summary),
        "",
        "## Heatmaps",
        "",
    ]
    for mode in summary.modes:
        for measure in SWEEP_MEASURES:
            name = f"sweep-{_safe_name(mode)}-{measure}.png"
            lines += [f"![{mode} {MEASURES[measure]}](figures/{name})", ""]
        lines += [f"*Mode `{mode}`: mean over seeds per alpha (rows) x P (columns); n = seeds in the cell.*", ""]
    body = [
        [*row, *(_versus_text(cell, measure) for measure in SWEEP_MEASURES)]
        for row, cell in zip(_cell_rows(summary), _table_cells(summary), strict=True)
    ]
    if summary.base_model is not None:
        body.append(["base model", "-", "-", "-", "-", value_text(summary.base_model.accuracy, "accuracy"), "-", "-"])
    header = ["mode", "alpha", "P", "seeds", "final reward [95% t-CI]", "held-out accuracy [95% t-CI]"]
    header += ["reward - grpo [paired t-CI]", "accuracy - grpo [paired t-CI]"]
    lines += [
        "## All cells",
        "",
        markdown_table(header, body),
        "",
        "The final training reward of a run is its mean reward over the last 20% of its logged steps. "
        + versus_reference_sentence(summary),
        "",
    ]
    tests = versus_reference_test_sentence(summary)
    lines += [tests, ""] if tests else []
    if summary.unplaced:
        lines += [f"Runs without a grid position (not in the heatmaps): {', '.join(summary.unplaced)}.", ""]
    lines += ["## Runs", "", runs_table(summary.runs, output_dir, "cell"), ""]
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
    write_summary_json(output_dir, "sweep", title, command, notes, written, summary.to_dict())
    return report


def format_sweep_table(summary: SweepSummary) -> str:
    """A plain-text table of the sweep's cells for the terminal, then the best cell per measure."""
    rows = _cell_rows(summary)
    lines = [text_table(["mode", "alpha", "P", "seeds", "final reward [95% CI]", "held-out acc [95% CI]"], rows), ""]
    for measure in SWEEP_MEASURES:
        best = summary.best[measure]
        kind = "accuracy" if measure == "accuracy" else "final_reward"
        if best is None:
            lines.append(f"best {MEASURES[measure]}: n/a")
        else:
            lines.append(f"best {MEASURES[measure]}: {best.label} {estimate_text(best.estimate, kind)}. {best.verdict}")
    lines += ["", text_table(["mode", "measure", "seeds", *(_EFFECT_NAMES.values())], _sensitivity_rows(summary))]
    lines.append(sensitivity_sentence(summary))
    tests = versus_reference_test_sentence(summary)
    lines += [tests] if tests else []
    return "\n".join(lines)
