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
