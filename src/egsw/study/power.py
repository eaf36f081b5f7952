"""How many seeds a paired comparison needs: power of the seed-level test, and the effect a budget can detect.

The studies test each method against ``grpo`` by the exact sign-flip permutation test over seeds
(egsw.stats.paired_permutation_test), Holm-adjusted over the methods. Its power under normal
paired differences is close to the paired t-test's, which has a closed form through the noncentral
t distribution; that form sizes the study, and a simulation of the sign-flip test itself checks it
at the chosen number of seeds. For power the adjustment is taken at its strictest, Bonferroni
``alpha / methods`` (the Holm threshold of the comparison with the smallest p): a method whose
effect is the only one present is detected with at least this power.

    python -m egsw.study.power --differences=1,10,-17 --differences=-5.5,3,-16.5 --effect 3 --methods 3 \\
        --minutes-per-run 17 --jobs 2 --hours 8
    python -m egsw.study.power --results results/tiny-arith-2026-12 --effect 3

``--results`` reads the paired differences from a study's results folder (egsw.study.results): each
method's held-out accuracy after training minus the baseline's on the same seed, in percentage
points. It then also evaluates the study's own number of seeds, so its output is the minimum
detectable effect the study had as run, and the variance to plan the next one with.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from egsw.errors import InputError
from egsw.stats import paired_permutation_test
from egsw.study.results import study_outcomes
from egsw.study.runs_data import load_run


def pooled_sd(groups: Sequence[Sequence[float]]) -> tuple[float, int]:
    """The pooled standard deviation of several samples (each about its own mean) and its degrees of freedom."""
    squares, dof = 0.0, 0
    for group in groups:
        values = np.asarray(group, dtype=float)
        if values.size >= 2:
            squares += float(((values - values.mean()) ** 2).sum())
            dof += values.size - 1
    if dof == 0:
        raise ValueError("the standard deviation needs a group of at least two differences")
    return math.sqrt(squares / dof), dof


def study_differences(results: Path, baseline: str = "grpo") -> dict[str, list[float]]:
    """Per method other than ``baseline``: held-out accuracy minus the baseline's, in points, on each shared seed.

    Only runs with results and a held-out accuracy count; seeds are ascending. Methods keep the
    study's order (``plan.json``'s).
    """
    accuracy: dict[str, dict[int, float]] = {}
    for outcome in study_outcomes(results):
        data = load_run(outcome)  # None unless the run finished
        if data is not None and math.isfinite(data.accuracy):
            accuracy.setdefault(outcome.method, {})[outcome.seed] = 100 * data.accuracy
    if baseline not in accuracy:
        found = ", ".join(accuracy) or "none"
        raise InputError(f"{results}: the baseline {baseline} has no finished runs (methods with runs: {found})")
    reference = accuracy.pop(baseline)
    return {
        method: [values[seed] - reference[seed] for seed in sorted(set(values) & set(reference))]
        for method, values in accuracy.items()
    }


def t_test_power(n: int, effect: float, sd: float, alpha: float) -> float:
    """Power of the two-sided paired t-test on ``n`` pairs for a true mean difference ``effect`` (SD ``sd``)."""
    from scipy import stats

    if n < 2:
        return 0.0
    dof = n - 1
    critical = stats.t.ppf(1 - alpha / 2, dof)
    shift = effect / (sd / math.sqrt(n))
    # The far tail is below 1e-12 wherever it matters and scipy can return NaN for it: count it as 0.
    upper, lower = stats.nct.sf(critical, dof, shift), stats.nct.cdf(-critical, dof, shift)
    return float(np.nan_to_num(upper) + np.nan_to_num(lower))


def seeds_for_power(effect: float, sd: float, alpha: float, power: float = 0.8, most: int = 10_000) -> int:
    """The fewest pairs at which the paired t-test reaches ``power`` (``most + 1`` when even ``most`` do not)."""
    n = 2
    while n <= most and t_test_power(n, effect, sd, alpha) < power:
        n += 1
    return n


def minimum_detectable_effect(n: int, sd: float, alpha: float, power: float = 0.8) -> float:
    """The true mean difference the paired t-test on ``n`` pairs detects with probability ``power``."""
    from scipy.optimize import brentq

    return float(brentq(lambda effect: t_test_power(n, effect, sd, alpha) - power, 1e-9 * sd, 30 * sd))


def simulated_sign_flip_power(
    n: int, effect: float, sd: float, alpha: float, simulations: int = 400, rng_seed: int = 0
) -> float:
    """Share of ``simulations`` normal samples (mean ``effect``, SD ``sd``, ``n`` pairs) with sign-flip p < alpha."""
    rng = np.random.default_rng(rng_seed)
    hits = sum(
        paired_permutation_test(rng.normal(effect, sd, n), rng_seed=index)["p_value"] < alpha
        for index in range(simulations)
    )
    return hits / simulations


def main(argv: Sequence[str] | None = None) -> int:
    """Print the power analysis of a paired study from the differences of earlier runs."""
    parser = argparse.ArgumentParser(prog="python -m egsw.study.power", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--differences", action="append", default=[],
        help="Per-seed differences (method - baseline) of one earlier method, comma-separated; repeat per method.",
    )  # fmt: skip
    parser.add_argument("--sd", type=float, default=None, help="The SD of the paired differences, if known instead.")
    parser.add_argument(
        "--results", type=Path, default=None,
        help="A study's results folder (results/<study>): its per-seed accuracy differences, in points.",
    )  # fmt: skip
    parser.add_argument("--baseline", default="grpo", help="With --results: the method paired with (default: grpo).")
    parser.add_argument("--effect", type=float, required=True, help="The difference to detect (same unit).")
    parser.add_argument(
        "--methods", type=int, default=None,
        help="Methods tested against the baseline (Holm family; default: --results' count, else 1).",
    )  # fmt: skip
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--power", type=float, default=0.8)
    parser.add_argument("--minutes-per-run", type=float, default=None, help="Wall time of one run alone.")
    parser.add_argument("--jobs", type=int, default=1, help="Runs at once (at that wall time each).")
    parser.add_argument("--hours", type=float, default=None, help="The machine time the study may take.")
    parser.add_argument("--seeds", type=int, default=None, help="Evaluate this number of seeds too.")
    options = parser.parse_args(argv)
    if sum(bool(given) for given in (options.sd is not None, options.differences, options.results)) > 1:
        parser.error("give one of --differences, --sd and --results")
    study_seeds = None
    if options.results is not None:
        try:
            differences = study_differences(options.results, options.baseline)
            sd, dof = pooled_sd(list(differences.values()))
        except (InputError, ValueError) as error:
            raise SystemExit(f"python -m egsw.study.power: {error}") from None
        for method, values in differences.items():
            spread = f"SD {np.std(values, ddof=1):.2f}" if len(values) >= 2 else "too few seeds for an SD"
            print(f"{method} - {options.baseline}: {len(values)} seeds, mean {np.mean(values):+.2f} points, {spread}")
        print(f"pooled SD of the paired differences: {sd:.2f} points ({dof} degrees of freedom)")
        study_seeds = min(len(values) for values in differences.values())
        if options.methods is None:
            options.methods = len(differences)
    elif options.sd is not None:
        sd = options.sd
        print(f"SD of the paired differences (given): {sd:.2f}")
    elif options.differences:
        groups = [[float(value) for value in text.split(",")] for text in options.differences]
        sd, dof = pooled_sd(groups)
        print(f"paired differences: {groups}")
        print(f"pooled SD of the paired differences: {sd:.2f} ({dof} degrees of freedom)")
    else:
        parser.error("give --differences (repeat per method), --sd or --results")
    options.methods = options.methods or 1
    alpha = options.alpha / options.methods
    print(f"test level per method: {options.alpha} / {options.methods} = {alpha:.4f} (two-sided)")
    needed = seeds_for_power(options.effect, sd, alpha, options.power)
    print(f"seeds for {options.power:.0%} power at {options.effect:g}: {needed}")
    runs_per_seed = options.methods + 1
    candidates = {needed, *(n for n in (options.seeds, study_seeds) if n)}
    if options.minutes_per_run and options.hours:
        fitting = int(options.hours * 60 * options.jobs / (options.minutes_per_run * runs_per_seed))
        print(
            f"runs per seed {runs_per_seed}, {options.minutes_per_run:g} min per run, {options.jobs} at once: "
            f"{options.hours:g} h hold {fitting} seeds; {needed} seeds take "
            f"{needed * runs_per_seed * options.minutes_per_run / options.jobs / 60:.1f} h"
        )
        candidates.add(fitting)
    for n in sorted(c for c in candidates if 2 <= c <= 10_000):
        mde = minimum_detectable_effect(n, sd, alpha, options.power)
        line = f"n = {n}: power at {options.effect:g} = {t_test_power(n, options.effect, sd, alpha):.3f}; "
        line += f"minimum detectable effect ({options.power:.0%} power) = {mde:.1f}"
        if n <= 40:
            simulated = simulated_sign_flip_power(n, mde, sd, alpha)
            line += f"; sign-flip test's simulated power at that effect = {simulated:.2f} (400 samples)"
        if n == study_seeds:
            line += " (the study's seeds)"
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
