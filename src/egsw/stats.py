"""Small statistics for reporting: confidence intervals, the unbiased pass@k, paired tests.

The distributions, quantiles, resampling and exact tests are scipy's (``scipy.stats``); what is
written here is only what no library has in this form: the unbiased pass@k estimator, Holm's
step-down adjustment, the Wilson interval for a fractional number of successes, and the handling
of NaN and tiny samples around the scipy calls. Nothing here knows about models.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

import numpy as np

Z_95 = 1.959963984540054  # scipy.stats.norm.ppf(0.975), as a literal: see _scipy_stats

# The sign-flip test enumerates all 2^n sign patterns of up to 16 pairs; beyond, it draws 2^16 at random.
# scipy's enumeration takes about 0.5 s at 2^16 patterns and about 6-9 s at 2^20.
SIGN_FLIP_EXACT_MAX_PAIRS = 16
SIGN_FLIP_RESAMPLES = 2**SIGN_FLIP_EXACT_MAX_PAIRS
SIGN_FLIP_TEST = "sign-flip permutation"


def _scipy_stats() -> ModuleType:
    """``scipy.stats``, imported on first use: it takes about 1 s, and ``egsw score`` needs only Wilson."""
    from scipy import stats

    return stats


def _seeded(rng_seed: int, function: Callable[..., Any]) -> dict[str, np.random.Generator]:
    """``{"rng": Generator(rng_seed)}`` for a scipy resampling function (``random_state`` before scipy 1.15)."""
    keyword = "rng" if "rng" in inspect.signature(function).parameters else "random_state"
    return {keyword: np.random.default_rng(rng_seed)}


# --- Proportions and per-problem differences -----------------------------------------------------


def wilson_interval(successes: float, trials: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval for a proportion (95% by default); (0, 1) when ``trials`` is 0.

    The closed form, so that ``successes`` may be fractional (the mean over several samples per
    problem); for whole counts it equals ``scipy.stats.binomtest(k, n).proportion_ci(method="wilson")``.
    """
    if trials <= 0:
        return 0.0, 1.0
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    # Clamped to contain p: at 0 or n successes rounding would otherwise leave it a hair outside.
    return max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))


def mean_interval(values: Sequence[float], z: float = Z_95) -> tuple[float, float, float]:
    """Mean and its normal-approximation 95% interval ``mean +- z sd / sqrt(n)``: ``(mean, low, high)``.

    For many items (problems of a held-out set); over a few seeds use :func:`t_interval`.
    """
    array = np.asarray(values, dtype=float)
    if array.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(array.mean())
    if array.size == 1:
        return mean, mean, mean
    half = z * float(array.std(ddof=1)) / math.sqrt(array.size)
    return mean, mean - half, mean + half


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``n`` samples of which ``c`` are correct: ``1 - C(n-c, k) / C(n, k)``.

    Chen et al. 2021 (Codex), computed as a product to stay exact for large ``n``.
    """
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - float(np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def paired_difference(before: Sequence[float], after: Sequence[float], z: float = Z_95) -> dict[str, float]:
    """Mean of ``after - before`` over paired items, its 95% interval, and McNemar's exact p-value.

    ``before`` and ``after``: one value per problem (0/1, or a share of correct samples), same length.
    For 0/1 outcomes on the same problems this is the right test of "did accuracy change": it uses
    only the problems whose outcome changed (``gained``: 0 -> 1, ``lost``: 1 -> 0).
    Returns ``{"mean", "low", "high", "gained", "lost", "p_value"}``.
    """
    a, b = np.asarray(before, dtype=float), np.asarray(after, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired samples must have the same length, got {a.size} and {b.size}")
    mean, low, high = mean_interval(b - a, z)
    gained, lost = int(np.sum((a == 0) & (b == 1))), int(np.sum((a == 1) & (b == 0)))
    return {"mean": mean, "low": low, "high": high, "gained": gained, "lost": lost, "p_value": mcnemar_p(gained, lost)}


def mcnemar_p(gained: int, lost: int) -> float:
    """Two-sided exact McNemar p-value: ``scipy.stats.binomtest`` of ``gained`` of the discordant pairs at 1/2."""
    total = gained + lost
    if total == 0:
        return 1.0
    return float(_scipy_stats().binomtest(gained, total, 0.5, alternative="two-sided").pvalue)


# --- Seeds as samples: t-intervals, F tails, bootstrap, sign-flip test, Holm ---------------------
#
# A comparison of training methods has a handful of seeds per method, so the statistics below
# work on very small samples. NaN entries (a run without that number) are dropped, never
# propagated, and an empty sample gives NaN rather than an error.


def _finite(values: Sequence[float]) -> np.ndarray:
    """The finite entries of ``values`` as a flat float array (NaN and infinities dropped)."""
    array = np.asarray(values, dtype=float).ravel()
    return array[np.isfinite(array)]


def f_survival(f: float, dof1: float, dof2: float) -> float:
    """``P(F > f)`` for Fisher's F with ``(dof1, dof2)`` degrees of freedom (``scipy.stats.f.sf``).

    NaN for a NaN ``f``; 1 for ``f <= 0``; 0 for ``f = inf``. ``f_survival(4.103, 2, 10) = 0.05``.
    """
    if math.isnan(f):
        return math.nan
    return float(_scipy_stats().f.sf(f, dof1, dof2))


def t_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and its t-interval over a small sample: ``(mean, low, high)``, 95% by default.

    The half-width is ``t_{(1+confidence)/2, n-1} * sd / sqrt(n)`` with the sample sd (ddof 1) and
    the quantile from ``scipy.stats.t.ppf``: the right interval for the mean over a few seeds. NaN
    entries are dropped; one value gives ``(v, v, v)`` (no spread to estimate), none gives NaNs.
    """
    array = _finite(values)
    if array.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(array.mean())
    if array.size == 1:
        return mean, mean, mean
    quantile = float(_scipy_stats().t.ppf(0.5 + confidence / 2.0, array.size - 1))
    half = quantile * float(array.std(ddof=1)) / math.sqrt(array.size)
    return mean, mean - half, mean + half


def _percentile_bootstrap(
    samples: tuple[np.ndarray, ...],
    statistic: Callable[..., np.ndarray],
    n_bootstrap: int,
    rng_seed: int,
    confidence: float,
) -> tuple[float, float]:
    """``scipy.stats.bootstrap`` percentile interval of ``statistic(*samples, axis=-1)``, samples resampled apart.

    Each sample (1-D, at least 2 values) is resampled with replacement on its own. NaN bounds when
    a resample's statistic is NaN (scipy then warns that the interval is degenerate; silenced here).
    """
    stats = _scipy_stats()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        result = stats.bootstrap(
            samples,
            statistic,
            n_resamples=n_bootstrap,
            vectorized=True,
            paired=False,
            confidence_level=confidence,
            method="percentile",
            **_seeded(rng_seed, stats.bootstrap),
        )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def bootstrap_mean(
    values: Sequence[float], n_bootstrap: int = 10_000, rng_seed: int = 0, confidence: float = 0.95
) -> tuple[float, float, float]:
    """Mean of ``values`` with a percentile bootstrap interval (``scipy.stats.bootstrap``): ``(mean, low, high)``.

    For per-seed paired differences, resampled as one sample; deterministic given ``rng_seed``. NaN
    entries are dropped; fewer than two values give NaN bounds (no spread to resample), none a NaN
    mean. With few values the interval is optimistic: it cannot be wider than the values' range.
    """
    array = _finite(values)
    if array.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(array.mean())
    if array.size < 2:
        return mean, math.nan, math.nan
    low, high = _percentile_bootstrap((array,), np.mean, n_bootstrap, rng_seed, confidence)
    return mean, low, high


def _ratio(top: Any, bottom: Any) -> Any:
    """``top / bottom`` elementwise, NaN where ``bottom`` is 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.asarray(bottom) != 0, np.divide(top, bottom), np.nan)


def bootstrap_ratio(
    numerator_samples: Sequence[float],
    denominator_samples: Sequence[float],
    n_bootstrap: int = 10_000,
    rng_seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float, float]:
    """Ratio of two means, ``mean(numerator) / mean(denominator)``, with a percentile bootstrap interval.

    The two samples are independent (e.g. steps to a threshold of two methods' seeds), so
    ``scipy.stats.bootstrap`` resamples each on its own. Returns ``(ratio, low, high)``; NaN entries
    are dropped and an empty sample gives NaNs. A side with a single value contributes no spread
    (held at its value; one value on both sides gives ``(ratio, ratio, ratio)``). A zero
    denominator mean, in the data or in a resample, makes the ratio or the bounds NaN.
    """
    numerator, denominator = _finite(numerator_samples), _finite(denominator_samples)
    if numerator.size == 0 or denominator.size == 0:
        return math.nan, math.nan, math.nan
    ratio = float(_ratio(numerator.mean(), denominator.mean()))
    sides = (numerator, denominator)
    varying = tuple(side for side in sides if side.size > 1)
    if not varying:
        return ratio, ratio, ratio

    def statistic(*resampled: np.ndarray, axis: int = -1) -> np.ndarray:
        draws = iter(resampled)
        top, bottom = (next(draws).mean(axis=axis) if side.size > 1 else side.mean() for side in sides)
        return _ratio(top, bottom)

    low, high = _percentile_bootstrap(varying, statistic, n_bootstrap, rng_seed, confidence)
    return ratio, low, high


def smallest_sign_flip_p(n: int, n_resamples: int = SIGN_FLIP_RESAMPLES) -> float:
    """The smallest two-sided p-value :func:`paired_permutation_test` can give on ``n`` pairs.

    Exact test (``2^n <= n_resamples``): the observed signs and their mirror are the two most
    extreme of the ``2^n`` patterns, so ``2 / 2^n``: 1 at 1 pair, 0.25 at 3, 0.0625 at 5, 0.031 at 6,
    0.002 at 10; below 6 pairs no p under 0.05 exists. Random patterns: ``2 / (n_resamples + 1)``.
    NaN for no pairs.
    """
    if n < 1:
        return math.nan
    patterns = 2**n if 2**n <= n_resamples else n_resamples + 1
    return min(1.0, 2.0 / patterns)


def paired_permutation_test(
    differences: Sequence[float], n_resamples: int = SIGN_FLIP_RESAMPLES, rng_seed: int = 0
) -> dict[str, Any]:
    """Two-sided sign-flip permutation test of "the paired differences are symmetric about 0" on their mean.

    ``differences``: per-pair differences (e.g. method - baseline for the same seed), NaN dropped.
    Under the null each difference is as likely to have the other sign, so the null distribution of
    the mean is that of all ``2^n`` sign patterns: ``scipy.stats.permutation_test`` with the one
    sample and ``permutation_type="samples"``. Exact (every pattern once) when ``2^n <= n_resamples``
    (up to 16 pairs by default), otherwise ``n_resamples`` random patterns seeded by ``rng_seed``.
    The differences are scaled by their largest magnitude and the mean rounded to 12 decimals, so
    patterns whose means are equal count as equal despite rounding.

    Returns ``{"mean", "p_value", "n", "exact", "smallest_p", "test"}``; ``smallest_p`` is
    :func:`smallest_sign_flip_p` (the p-value no data on ``n`` pairs can go below). Fewer than two
    differences: ``p_value`` NaN (no test).
    """
    d = _finite(differences)
    exact = 2**d.size <= n_resamples
    result: dict[str, Any] = {
        "mean": float(d.mean()) if d.size else math.nan,
        "p_value": math.nan,
        "n": int(d.size),
        "exact": exact,
        "smallest_p": smallest_sign_flip_p(d.size, n_resamples),
        "test": SIGN_FLIP_TEST,
    }
    if d.size < 2:
        return result
    scale = float(np.abs(d).max())
    if scale == 0.0:
        result["p_value"] = 1.0
        return result

    def statistic(x: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.round(np.mean(x, axis=axis), 12)

    stats = _scipy_stats()
    test = stats.permutation_test(
        (d / scale,),
        statistic,
        permutation_type="samples",
        vectorized=True,
        n_resamples=n_resamples,
        alternative="two-sided",
        **_seeded(rng_seed, stats.permutation_test),
    )
    result["p_value"] = float(min(1.0, test.pvalue))
    return result


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input order (step-down, monotone, capped at 1).

    The i-th smallest of the m p-values is multiplied by ``m - i`` (i from 0) and the running
    maximum taken, so "adjusted p < alpha" controls the family-wise error rate at alpha. NaN entries
    (no test) stay NaN and do not count in m.
    """
    values = np.asarray(p_values, dtype=float)
    adjusted = np.full(values.shape, math.nan)
    present = np.flatnonzero(~np.isnan(values))
    order = present[np.argsort(values[present], kind="stable")]
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (order.size - rank) * values[index]))
        adjusted[index] = running
    return [float(v) for v in adjusted]
