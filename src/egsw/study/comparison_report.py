"""The comparison report of ``egsw compare``: ``report.md``, figures and ``summary.json``, and the terminal table.

Which method's training reward rises faster and ends higher, which generalises better on held-out
problems, and how long its completions are, with enough statistics to tell signal from seed noise:
the numbers come from egsw.study.summary, the wording is conservative (:func:`supported_claims`
calls a difference detected only when the paired tests agree).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from egsw.run.plots import CURVES
from egsw.stats import SIGN_FLIP_EXACT_MAX_PAIRS, SIGN_FLIP_RESAMPLES
from egsw.study.runs_data import (
    MEASURES,
    SIGNIFICANCE,
    BaseModel,
    ComparisonSummary,
    PairedComparison,
    RunOutcome,
    finished_rows,
    is_number,
    write_summary_json,
)
from egsw.study.summary import is_detected, seeds_for_detection, smallest_holm_p, summarize_comparison
from egsw.study.tables import (
    count_phrase,
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

# --- Text ----------------------------------------------------------------------------------------


def _measure_sentence(summary: ComparisonSummary, measure: str) -> str:
    """One conservative sentence about a measure's differences from the baseline."""
    name, baseline = MEASURES[measure], summary.baseline
    comparisons = [c for c in summary.paired.get(measure, []) if c.n >= 2 and is_number(c.mean)]
    if not comparisons:
        return f"{name.capitalize()}: n/a (fewer than 2 seeds paired with `{baseline}`)."
    seeds = count_phrase([c.n for c in comparisons], "paired seed")

    def described(c: PairedComparison) -> str:
        text = f"`{c.method}` {difference_text(c.mean, measure)} {interval_text(c.low, c.high, measure, True)}"
        text += f" (Holm-adjusted {p_value_phrase(c.p_holm)}, {c.n} seeds"
        if is_number(c.t_low) and c.t_low <= 0 <= c.t_high:
            text += f"; the paired t-interval {interval_text(c.t_low, c.t_high, measure, True)} includes 0"
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
        and is_number(s.steps_ratio.low)
        and is_number(s.steps_ratio.high)
        and not s.steps_ratio.low <= 1 <= s.steps_ratio.high
    ]
    if not clear:
        return f"Steps to reach `{baseline}`'s final training reward: no method's ratio interval excludes 1."
    parts = []
    for s in clear:
        ratio = s.steps_ratio
        assert ratio is not None
        interval = interval_text(ratio.low, ratio.high, "ratio")
        part = f"`{s.method}` needed {value_text(ratio.mean, 'ratio')} `{baseline}`'s steps {interval}"
        if s.not_reached:
            part += f" (a lower bound: {s.not_reached} of its runs never reached the threshold)"
        parts.append(part)
    sentence = (
        f"Steps to reach `{baseline}`'s final training reward (95% percentile bootstrap interval): "
        + "; ".join(parts)
        + "."
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
        f"Differences are `method - {baseline}` on the same seed, with 95% percentile bootstrap intervals; "
        "a difference counts as detected when the p-value of its exact sign-flip permutation test, Holm-adjusted "
        f"across methods, is < {SIGNIFICANCE} and its paired t-interval excludes 0."
    ]
    unreachable = _unreachable_sentence(summary)
    sentences += [unreachable] if unreachable else []
    sentences += [_measure_sentence(summary, measure) for measure in MEASURES]
    sentences.append(_efficiency_sentence(summary))
    if max(counts) < 10:
        sentences.append(
            f"With {count_phrase(counts, 'seed')} the bootstrap interval cannot be wider than the spread of the "
            "observed differences; read the paired t-intervals alongside, and add seeds before relying on a "
            "difference."
        )
    return sentences


def _unreachable_sentence(summary: ComparisonSummary) -> str | None:
    """Where too few seeds leave a Holm-adjusted sign-flip p < 0.05 out of reach (None: reachable everywhere).

    At n seeds the exact test's smallest p is 2 / 2^n, and Holm multiplies the smallest of m p-values by m.
    """
    families = {m: [c for c in cs if is_number(c.p_value)] for m, cs in summary.paired.items()}
    blocked = {m: cs for m, cs in families.items() if cs and smallest_holm_p(cs) >= SIGNIFICANCE}
    if not blocked:
        return None
    tested = [c for cs in blocked.values() for c in cs]
    seeds, methods = max(c.n for c in tested), max(len(cs) for cs in blocked.values())
    floor = min(c.smallest_p for c in tested)
    everywhere = len(blocked) == len(families)
    where = "on every measure" if everywhere else "on " + " and ".join(MEASURES[m] for m in blocked)
    holm = f", and Holm's correction over {methods} methods multiplies the smallest p by {methods}" * (methods > 1)
    return (
        f"With {seeds} paired seeds the exact sign-flip test cannot give a p below {p_floor_text(floor)} "
        f"(2 / 2^{seeds}: the observed signs and their mirror image are the two most extreme of the 2^{seeds} "
        f"sign patterns){holm}: a Holm-adjusted p < {SIGNIFICANCE} is out of reach {where}, so no difference "
        f"{'' if everywhere else 'there '}can be called detected, whatever its size. That takes at least "
        f"{seeds_for_detection(methods, SIGNIFICANCE)} paired seeds."
    )


def _comparison_table_rows(summary: ComparisonSummary) -> list[list[str]]:
    """Per method: seeds, held-out accuracy, held-out length, final reward; then the base model."""
    rows = [
        [
            f"`{s.method}`" + (" (baseline)" if s.method == summary.baseline else ""),
            f"{s.n_finished}/{s.n_runs}",
            estimate_text(s.accuracy, "accuracy"),
            estimate_text(s.mean_length, "mean_length"),
            estimate_text(s.final_reward, "final_reward"),
        ]
        for s in summary.method_summaries.values()
    ]
    base = summary.base_model
    if base is not None:
        interval = interval_text(base.low, base.high, "accuracy")
        problems = f", {base.num_problems} problems" if base.num_problems else ""
        rows.append(
            [
                "base model (before training)",
                "-",
                f"{value_text(base.accuracy, 'accuracy')} {interval} (Wilson{problems})",
                value_text(base.mean_length, "mean_length"),
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
        f"Threshold = `{baseline}`'s mean final training reward = {value_text(summary.threshold, 'final_reward')}. "
        f"A run reaches it at the first step where the trailing mean of its last {window} rewards is >= the "
        'threshold; a run that never does is counted at its last step ("not reached", censored), so a mean '
        "that includes such runs, and a ratio built on it, is a lower bound. The ratio is mean steps / "
        f"`{baseline}`'s mean steps, with a 95% percentile bootstrap interval ({summary.n_bootstrap} resamples, "
        "seeds resampled within each method).",
        "",
    ]
    body = []
    for s in summary.method_summaries.values():
        ratio = "1 (reference)" if s.steps_ratio is None else estimate_text(s.steps_ratio, "ratio")
        body.append([f"`{s.method}`", s.n_finished, estimate_text(s.steps_to_threshold, "steps"), s.not_reached, ratio])
    lines += [
        markdown_table(["method", "seeds", "mean steps [95% t-CI]", "not reached", f"ratio to `{baseline}`"], body),
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
    sampled = any(not c.exact for comparisons in summary.paired.values() for c in comparisons if c.n >= 2)
    lines += [
        f"For each seed that both the method and `{baseline}` finished, d = method - `{baseline}`. Shown: mean d, "
        f"its 95% percentile bootstrap interval ({summary.n_bootstrap} resamples of the seeds), the paired "
        "t-interval, the two-sided p-value of the exact sign-flip permutation test (the mean d against the means "
        "of all 2^n sign patterns of the n differences; it cannot go below 2 / 2^n: 0.25 at 3 seeds, 0.0625 at 5, "
        "0.002 at 10), the same p Holm-adjusted across methods per measure, and on how many seeds the method is "
        "higher / lower. Fewer than 2 paired seeds: n/a."
        + (f" Above {SIGN_FLIP_EXACT_MAX_PAIRS} seeds it uses {SIGN_FLIP_RESAMPLES} random sign patterns." * sampled),
        "",
    ]
    for measure, comparisons in summary.paired.items():
        body = [
            [
                f"`{c.method}`",
                c.n,
                difference_text(c.mean, measure),
                interval_text(c.low, c.high, measure, True),
                interval_text(c.t_low, c.t_high, measure, True),
                p_value_text(c.p_value),
                p_value_text(c.p_holm),
                f"{c.wins} / {c.losses}" if c.n else "n/a",
            ]
            for c in comparisons
        ]
        header = [
            "method",
            "seeds",
            "mean d",
            "95% bootstrap CI",
            "95% t-CI",
            "sign-flip p",
            "Holm p",
            "higher / lower",
        ]
        lines += [
            f"### {MEASURES[measure].capitalize()}",
            "",
            markdown_table(header, body) if body else "No other method.",
            "",
        ]
    return lines


def _comparison_markdown(
    summary: ComparisonSummary, output_dir: Path, title: str, command: str, notes: Sequence[str]
) -> str:
    """The whole comparison report."""
    lines = header_lines(title, command, notes)
    methods = ", ".join(f"`{m}`" for m in summary.methods) or "none"
    lines += [f"{status_counts(summary.runs)}. Methods: {methods}. Baseline: `{summary.baseline}`.", ""]
    claims = supported_claims(summary)
    lines += ["## What the data supports", "", claims[0], ""]
    if len(claims) > 1:
        lines += [f"- {claim}" for claim in claims[1:]] + [""]
    window = summary.smoothing_window
    threshold_note = " Dotted: the threshold of the sample-efficiency section." if is_number(summary.threshold) else ""
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
        markdown_table(
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
    lines += ["## Runs", "", runs_table(summary.runs, output_dir), ""]
    return "\n".join(lines)


# --- Figures -------------------------------------------------------------------------------------


def _no_data(axis: Any) -> None:
    """Say so on an empty plot."""
    axis.text(0.5, 0.5, "no finished runs", ha="center", va="center", transform=axis.transAxes, color="grey")


def _plot_curves(summary: ComparisonSummary, name: str, path: Path) -> Path:
    """One line (mean over seeds) and band (95% t-interval) per method."""
    plt = pyplot()
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
    if name == "reward" and is_number(summary.threshold):
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
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(max(4.5, 1.2 * len(summary.methods) + 2), 4), dpi=120)
    drawn = False
    for index, method in enumerate(summary.methods):
        values = [
            row.accuracy for row in finished_rows(summary.runs) if row.method == method and is_number(row.accuracy)
        ]
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


# --- Entry points --------------------------------------------------------------------------------


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
    base_model: BaseModel | None = None,
) -> Path:
    """Summarise ``runs`` against ``baseline`` and write the report (:func:`write_summary_report`).

    Failed, missing or unreadable runs are listed in the report and never stop it. Returns the
    path of ``report.md``.
    """
    summary = summarize_comparison(
        runs, baseline, smoothing_window=smoothing_window, n_bootstrap=n_bootstrap, rng_seed=rng_seed,
        base_model=base_model,
    )  # fmt: skip
    return write_summary_report(summary, output_dir, title=title, command=command, notes=notes)


def write_summary_report(
    summary: ComparisonSummary, output_dir: Path, *, title: str, command: str, notes: Sequence[str] = ()
) -> Path:
    """Write ``report.md``, ``figures/{reward,completion_length,accuracy}.png`` and ``summary.json``.

    Returns the path of ``report.md``.
    """
    output_dir = Path(output_dir)
    figures = output_dir / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    written = [_plot_curves(summary, name, figures / f"{name}.png") for name in CURVES]
    written.append(_plot_accuracy(summary, figures / "accuracy.png"))
    report = output_dir / "report.md"
    report.write_text(_comparison_markdown(summary, output_dir, title, command, notes))
    content = {"supported_claims": supported_claims(summary), **summary.to_dict()}
    write_summary_json(output_dir, "comparison", title, command, notes, written, content)
    return report


def format_summary_table(summary: ComparisonSummary) -> str:
    """A plain-text table of the comparison for the terminal, then what the data supports."""
    baseline = summary.baseline
    accuracy = {c.method: c for c in summary.paired.get("accuracy", [])}
    rows = []
    for s in summary.method_summaries.values():
        ratio = "1 (ref)" if s.method == baseline else estimate_text(s.steps_ratio, "ratio")
        paired = accuracy.get(s.method)
        difference = (
            "-" if paired is None else f"{difference_text(paired.mean, 'accuracy')} (p={p_value_text(paired.p_holm)})"
        )
        rows.append(
            [
                s.method,
                f"{s.n_finished}/{s.n_runs}",
                estimate_text(s.final_reward, "final_reward"),
                estimate_text(s.accuracy, "accuracy"),
                estimate_text(s.mean_length, "mean_length"),
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
    lines = [text_table(header, rows)]
    if summary.base_model is not None:
        lines.append(f"base model held-out accuracy: {value_text(summary.base_model.accuracy, 'accuracy')}")
    lines += ["", *supported_claims(summary)]
    return "\n".join(lines)
