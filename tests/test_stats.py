"""pass@k against a direct computation, and the Wilson interval's sanity."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from egsw.stats import (
    bootstrap_ratio,
    holm_adjust,
    mcnemar_p,
    paired_bootstrap,
    pass_at_k,
    student_t_cdf,
    t_interval,
    t_quantile,
    wilson_interval,
)


def pass_at_k_by_enumeration(n: int, c: int, k: int) -> float:
    """The share of all k-subsets of n samples (c of them correct) that hold at least one correct one."""
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(samples[i] for i in subset) for subset in subsets) / len(subsets)


@pytest.mark.parametrize("n", range(1, 9))
def test_pass_at_k_equals_enumeration_of_subsets(n: int) -> None:
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(pass_at_k_by_enumeration(n, c, k), abs=1e-12)


@pytest.mark.parametrize(("n", "c", "k"), [(16, 3, 4), (64, 5, 8), (200, 17, 50), (1000, 1, 100), (100, 0, 10)])
def test_pass_at_k_equals_binomial_formula(n: int, c: int, k: int) -> None:
    expected = 1.0 - math.comb(n - c, k) / math.comb(n, k)
    assert pass_at_k(n, c, k) == pytest.approx(expected, rel=1e-10, abs=1e-12)


def test_pass_at_1_is_the_share_correct() -> None:
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_at_k(5, 0, 5) == 0.0
    assert pass_at_k(5, 1, 5) == 1.0  # n - c < k: every k-subset holds the correct one


@given(n=st.integers(1, 40), data=st.data())
def test_pass_at_k_is_monotone_in_k_and_c(n: int, data: st.DataObject) -> None:
    c = data.draw(st.integers(0, n))
    values = [pass_at_k(n, c, k) for k in range(1, n + 1)]
    assert all(0.0 <= v <= 1.0 for v in values)
    assert all(a <= b + 1e-12 for a, b in itertools.pairwise(values))
    if c < n:
        assert pass_at_k(n, c, 1) <= pass_at_k(n, c + 1, 1)


@pytest.mark.parametrize(("n", "c", "k"), [(4, 5, 1), (4, -1, 1), (4, 2, 0), (4, 2, 5)])
def test_pass_at_k_refuses_impossible_counts(n: int, c: int, k: int) -> None:
    with pytest.raises(ValueError, match="pass@k"):
        pass_at_k(n, c, k)


def test_wilson_interval_known_values() -> None:
    # Wilson 95% for 5/10 and 0/10 (Newcombe 1998, method 3).
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    low, high = wilson_interval(0, 10)
    assert low == 0.0
    assert high == pytest.approx(0.2775, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)


@given(trials=st.integers(1, 2000), data=st.data())
def test_wilson_interval_holds_the_estimate_inside_zero_one(trials: int, data: st.DataObject) -> None:
    successes = data.draw(st.integers(0, trials))
    low, high = wilson_interval(successes, trials)
    assert 0.0 <= low <= successes / trials <= high <= 1.0
    mirrored = wilson_interval(trials - successes, trials)
    assert mirrored == pytest.approx((1 - high, 1 - low), abs=1e-12)


def test_wilson_interval_narrows_with_more_trials() -> None:
    widths = [high - low for low, high in (wilson_interval(n // 4, n) for n in (20, 200, 2000))]
    assert widths[0] > widths[1] > widths[2]
    # At 200 problems and about 30% correct the interval is about +-6 points.
    low, high = wilson_interval(60, 200)
    assert high - low == pytest.approx(0.127, abs=0.005)


def test_mcnemar_p() -> None:
    assert mcnemar_p(0, 0) == 1.0
    assert mcnemar_p(5, 5) == 1.0
    assert mcnemar_p(10, 0) == pytest.approx(2 / 2**10)


@pytest.mark.parametrize(
    ("dof", "expected"),
    [(1, 12.706204736), (2, 4.302652730), (4, 2.776445105), (10, 2.228138852), (30, 2.042272456), (1000, 1.962339081)],
)
def test_t_quantile_known_values(dof: int, expected: float) -> None:
    assert t_quantile(0.975, dof) == pytest.approx(expected, rel=1e-9)
    assert t_quantile(0.025, dof) == pytest.approx(-expected, rel=1e-9)


def test_t_quantile_closed_forms_and_limits() -> None:
    # dof 1 is the Cauchy distribution: quantile tan(pi (q - 1/2)); dof 2: (2q - 1) / sqrt(2 q (1 - q)).
    for q in (0.6, 0.9, 0.995):
        assert t_quantile(q, 1) == pytest.approx(math.tan(math.pi * (q - 0.5)), rel=1e-9)
        assert t_quantile(q, 2) == pytest.approx((2 * q - 1) / math.sqrt(2 * q * (1 - q)), rel=1e-9)
    assert t_quantile(0.5, 3) == 0.0
    assert t_quantile(0.975, 10**7) == pytest.approx(1.959963985, rel=1e-6)
    assert student_t_cdf(t_quantile(0.9, 7), 7) == pytest.approx(0.9, abs=1e-12)
    with pytest.raises(ValueError, match="t_quantile"):
        t_quantile(1.0, 3)


def test_t_interval_known_values_and_edge_cases() -> None:
    mean, low, high = t_interval([1.0, 2.0, 3.0])  # sd 1, n 3: half-width t(0.975, 2) / sqrt(3)
    assert mean == 2.0
    assert high - mean == pytest.approx(4.302652729749752 / math.sqrt(3), rel=1e-12)
    assert mean - low == pytest.approx(high - mean, rel=1e-12)
    assert t_interval([0.7]) == (0.7, 0.7, 0.7)
    assert all(math.isnan(v) for v in t_interval([]))
    assert all(math.isnan(v) for v in t_interval([math.nan, math.nan]))
    assert t_interval([1.0, math.nan, 2.0, 3.0]) == t_interval([1.0, 2.0, 3.0])  # NaN dropped


def test_paired_bootstrap_p_value_small_for_a_shift_and_large_around_zero() -> None:
    shifted = paired_bootstrap([0.9, 1.1, 1.0, 1.2, 0.8, 1.05, 0.95, 1.0])
    assert shifted["n"] == 8 and shifted["mean"] == pytest.approx(1.0)
    assert shifted["p_value"] < 0.01 and shifted["low"] > 0.8 and shifted["high"] < 1.2
    symmetric = paired_bootstrap([-1.0, 1.0, -0.5, 0.5, -0.2, 0.2])
    assert symmetric["mean"] == pytest.approx(0.0, abs=1e-15) and symmetric["p_value"] > 0.9
    assert symmetric["low"] < 0 < symmetric["high"]
    assert paired_bootstrap([0.0, 0.0, 0.0])["p_value"] == 1.0
    # The smallest p-value B bootstrap draws can give: (0 + 1) / (B + 1).
    assert paired_bootstrap([0.05, 0.1, 0.15], n_bootstrap=999)["p_value"] == pytest.approx(1 / 1000)


def test_paired_bootstrap_is_deterministic_and_handles_nan() -> None:
    values = [0.3, -0.1, 0.2, 0.05, math.nan]
    assert paired_bootstrap(values, rng_seed=3) == paired_bootstrap(values, rng_seed=3)
    assert paired_bootstrap(values, rng_seed=3)["low"] != paired_bootstrap(values, rng_seed=4)["low"]
    assert paired_bootstrap(values)["n"] == 4
    single = paired_bootstrap([0.4, math.nan])
    assert single["n"] == 1 and single["mean"] == 0.4 and math.isnan(single["low"]) and math.isnan(single["p_value"])
    empty = paired_bootstrap([])
    assert empty["n"] == 0 and math.isnan(empty["mean"])


def test_bootstrap_ratio_of_means() -> None:
    ratio, low, high = bootstrap_ratio([5, 5, 6], [10, 10, 9], n_bootstrap=2000, rng_seed=1)
    assert ratio == pytest.approx(16 / 29)
    assert 15 / 30 - 1e-12 <= low <= ratio <= high <= 18 / 27 + 1e-12  # resampled means lie within the samples
    assert bootstrap_ratio([5, 5, 6], [10, 10, 9], rng_seed=1) == bootstrap_ratio([5, 5, 6], [10, 10, 9], rng_seed=1)
    assert bootstrap_ratio([2.0], [4.0]) == (0.5, 0.5, 0.5)
    assert all(math.isnan(v) for v in bootstrap_ratio([], [1.0, 2.0]))
    assert bootstrap_ratio([1.0, math.nan, 3.0], [2.0])[0] == 1.0


def test_holm_adjust_hand_example() -> None:
    # Sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> running max 0.06 for the last.
    assert holm_adjust([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm_adjust([0.5, 0.9]) == [1.0, 1.0]
    adjusted = holm_adjust([0.01, math.nan, 0.02])  # NaN: no test, not counted in m
    assert adjusted[0] == pytest.approx(0.02) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.02)
    assert holm_adjust([]) == []
