"""Small statistics for reporting: confidence intervals, the unbiased pass@k, paired tests.

Pure Python and numpy; nothing here knows about models.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

Z_95 = 1.959963984540054


def wilson_interval(successes: float, trials: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval for a proportion (95% by default); (0, 1) when ``trials`` is 0."""
    if trials <= 0:
        return 0.0, 1.0
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    # Clamped to contain p: at 0 or n successes rounding would otherwise leave it a hair outside.
    return max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))


def mean_interval(values: Sequence[float], z: float = Z_95) -> tuple[float, float, float]:
    """Mean and its normal-approximation 95% interval: ``(mean, low, high)``."""
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

    For 0/1 outcomes on the same problems this is the right test of "did accuracy change": it
    uses only the problems whose outcome changed (``gained`` and ``lost``).
    """
    a, b = np.asarray(before, dtype=float), np.asarray(after, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired samples must have the same length, got {a.size} and {b.size}")
    mean, low, high = mean_interval(b - a, z)
    gained, lost = int(np.sum((a == 0) & (b == 1))), int(np.sum((a == 1) & (b == 0)))
    return {"mean": mean, "low": low, "high": high, "gained": gained, "lost": lost, "p_value": mcnemar_p(gained, lost)}


def mcnemar_p(gained: int, lost: int) -> float:
    """Two-sided exact McNemar p-value: a binomial test of ``gained`` vs ``lost`` at one half."""
    total = gained + lost
    if total == 0:
        return 1.0
    tail = sum(math.comb(total, i) for i in range(min(gained, lost) + 1)) / 2**total
    return min(1.0, 2 * tail)


# --- Seeds as samples: t-intervals, paired bootstrap, ratio of means, Holm ----------------------
#
# A comparison of training methods has a handful of seeds per method, so the statistics below
# work on very small samples. NaN entries (a run without that number) are dropped, never
# propagated, and an empty sample gives NaN rather than an error.


def _finite(values: Sequence[float]) -> np.ndarray:
    """The finite entries of ``values`` as a float array (NaN and infinities dropped)."""
    array = np.asarray(values, dtype=float).ravel()
    return array[np.isfinite(array)]


def _continued_fraction_beta(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz, Numerical Recipes 6.4)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 1000):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            result *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return result


def regularized_beta(x: float, a: float, b: float) -> float:
    """The regularized incomplete beta function ``I_x(a, b)`` for ``0 <= x <= 1`` and ``a, b > 0``."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _continued_fraction_beta(a, b, x) / a
    return 1.0 - front * _continued_fraction_beta(b, a, 1.0 - x) / b


def student_t_cdf(t: float, dof: float) -> float:
    """``P(T <= t)`` for Student's t with ``dof`` degrees of freedom.

    For ``t > 0`` it is ``1 - I_x(dof/2, 1/2) / 2`` with ``x = dof / (dof + t^2)``; symmetric below 0.
    """
    if math.isnan(t):
        return math.nan
    tail = 0.5 * regularized_beta(dof / (dof + t * t), dof / 2.0, 0.5)
    return 1.0 - tail if t > 0 else tail


def f_survival(f: float, dof1: float, dof2: float) -> float:
    """``P(F > f)`` for Fisher's F with ``(dof1, dof2)`` degrees of freedom.

    It is ``I_x(dof2/2, dof1/2)`` with ``x = dof2 / (dof2 + dof1 f)``.

    NaN for a NaN ``f``; 1 for ``f <= 0``; 0 for ``f = inf``. ``f_survival(4.103, 2, 10) = 0.05``.
    """
    if math.isnan(f):
        return math.nan
    if f <= 0.0:
        return 1.0
    if math.isinf(f):
        return 0.0
    return regularized_beta(dof2 / (dof2 + dof1 * f), dof2 / 2.0, dof1 / 2.0)


def t_quantile(probability: float, dof: float) -> float:
    """The ``probability`` quantile of Student's t with ``dof`` degrees of freedom (bisection on the cdf).

    ``t_quantile(0.975, 1) = 12.706``, ``(0.975, 2) = 4.303``, ``(0.975, 4) = 2.776``; it tends to the
    normal quantile 1.960 as ``dof`` grows. Accurate to about 1e-10 relative.
    """
    if not 0.0 < probability < 1.0 or not dof > 0:
        raise ValueError(f"t_quantile needs 0 < probability < 1 and dof > 0, got {probability}, {dof}")
    if probability == 0.5:
        return 0.0
    if probability < 0.5:
        return -t_quantile(1.0 - probability, dof)
    low, high = 0.0, 1.0
    while student_t_cdf(high, dof) < probability:
        low, high = high, 2.0 * high
    for _ in range(200):
        middle = 0.5 * (low + high)
        if student_t_cdf(middle, dof) < probability:
            low = middle
        else:
            high = middle
        if high - low <= 1e-12 * high:
            break
    return 0.5 * (low + high)


def t_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and its t-interval over a small sample: ``(mean, low, high)``, 95% by default.

    The half-width is ``t_{(1+confidence)/2, n-1} * sd / sqrt(n)`` with the sample sd (ddof 1), the
    right interval for the mean over a few seeds. NaN entries are dropped; one value gives
    ``(v, v, v)`` (no spread to estimate), none gives NaNs.
    """
    array = _finite(values)
    if array.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(array.mean())
    if array.size == 1:
        return mean, mean, mean
    half = t_quantile(0.5 + confidence / 2.0, array.size - 1) * float(array.std(ddof=1)) / math.sqrt(array.size)
    return mean, mean - half, mean + half


def _resample_means(values: np.ndarray, n_bootstrap: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Means of ``n_bootstrap`` resamples (with replacement) of ``values``, and the indices drawn."""
    indices = rng.integers(0, values.size, size=(n_bootstrap, values.size))
    return values[indices].mean(axis=1), indices


def paired_bootstrap(
    differences: Sequence[float], n_bootstrap: int = 10_000, rng_seed: int = 0, confidence: float = 0.95
) -> dict[str, float]:
    """Mean of paired differences with a percentile bootstrap interval and a two-sided bootstrap p-value.

    ``differences`` are per-pair differences (e.g. method - baseline for the same seed). The
    interval is the ``(1 -/+ confidence) / 2`` percentiles of the means of ``n_bootstrap`` resamples.
    The p-value tests "mean difference = 0": resample the centred differences ``d - mean(d)`` (the
    null made true) and count the resampled means at least as far from 0 as the observed one,
    ``p = (count + 1) / (n_bootstrap + 1)``. Deterministic given ``rng_seed``.

    Returns ``{"mean", "low", "high", "p_value", "n"}``; NaN differences are dropped. With fewer than
    two differences there is no spread to resample: ``low``, ``high`` and ``p_value`` are NaN.
    With few pairs the bootstrap is optimistic (its interval cannot be wider than the observed
    differences); it is a description of the data more than a guarantee.
    """
    d = _finite(differences)
    result: dict[str, float] = {"mean": math.nan, "low": math.nan, "high": math.nan, "p_value": math.nan, "n": d.size}
    if d.size == 0:
        return result
    observed = float(d.mean())
    result["mean"] = observed
    if d.size < 2:
        return result
    rng = np.random.default_rng(rng_seed)
    means, indices = _resample_means(d, n_bootstrap, rng)
    tail = 50.0 * (1.0 - confidence)
    result["low"], result["high"] = (float(v) for v in np.percentile(means, [tail, 100.0 - tail]))
    null_means = (d - observed)[indices].mean(axis=1)
    tolerance = 1e-12 * max(1.0, float(np.abs(d).max()))
    count = int(np.sum(np.abs(null_means) >= abs(observed) - tolerance))
    result["p_value"] = (count + 1) / (n_bootstrap + 1)
    return result


def bootstrap_ratio(
    numerator_samples: Sequence[float],
    denominator_samples: Sequence[float],
    n_bootstrap: int = 10_000,
    rng_seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float, float]:
    """Ratio of two means, ``mean(numerator) / mean(denominator)``, with a percentile bootstrap interval.

    The two samples are independent (e.g. steps to a threshold of two methods' seeds), so each is
    resampled on its own. Returns ``(ratio, low, high)``; NaN entries are dropped and an empty sample
    gives NaNs. A side with a single value contributes no spread (one value on both sides gives
    ``(ratio, ratio, ratio)``). Resamples whose denominator mean is 0 are left out of the interval.
    """
    numerator, denominator = _finite(numerator_samples), _finite(denominator_samples)
    if numerator.size == 0 or denominator.size == 0:
        return math.nan, math.nan, math.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = float(numerator.mean() / denominator.mean()) if denominator.mean() != 0 else math.nan
        rng = np.random.default_rng(rng_seed)
        top, _ = _resample_means(numerator, n_bootstrap, rng)
        bottom, _ = _resample_means(denominator, n_bootstrap, rng)
        ratios = np.where(bottom != 0, top / np.where(bottom != 0, bottom, 1.0), np.nan)
    ratios = ratios[np.isfinite(ratios)]
    if ratios.size == 0:
        return ratio, math.nan, math.nan
    tail = 50.0 * (1.0 - confidence)
    low, high = np.percentile(ratios, [tail, 100.0 - tail])
    return ratio, float(low), float(high)


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
