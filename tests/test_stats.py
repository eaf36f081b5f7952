"""egsw.stats against independent computations: enumerations, closed forms and published table values."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.stats
from hypothesis import given
from hypothesis import strategies as st

from egsw.stats import (
    SIGN_FLIP_RESAMPLES,
    Z_95,
    bootstrap_mean,
    bootstrap_ratio,
    holm_adjust,
    mcnemar_p,
    mean_interval,
    paired_difference,
    paired_permutation_test,
    pass_at_k,
    smallest_sign_flip_p,
    t_interval,
    wilson_interval,
)

# --- pass@k (written here: no library has the unbiased estimator) --------------------------------


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


# --- Proportions and per-problem differences -----------------------------------------------------


def test_z_95_is_the_normal_quantile() -> None:
    assert scipy.stats.norm.ppf(0.975) == Z_95  # the literal in egsw.stats is Phi^-1(0.975)


def test_wilson_interval_known_values() -> None:
    # Wilson 95% for 5/10 and 0/10 (Newcombe 1998, method 3).
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    low, high = wilson_interval(0, 10)
    assert low == 0.0
    assert high == pytest.approx(0.2775, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)


@pytest.mark.parametrize(
    ("successes", "trials"), [(0, 1), (1, 1), (3, 7), (60, 200), (104, 200), (199, 200), (17, 1000)]
)
def test_wilson_interval_equals_scipy_for_whole_counts(successes: int, trials: int) -> None:
    expected = scipy.stats.binomtest(successes, trials).proportion_ci(confidence_level=0.95, method="wilson")
    assert wilson_interval(successes, trials) == pytest.approx((expected.low, expected.high), abs=1e-12)


def test_wilson_interval_takes_a_fractional_count() -> None:
    # Several samples per problem: accuracy 0.3125 on 8 problems is 2.5 "successes"; between 2/8 and 3/8.
    low, high = wilson_interval(2.5, 8)
    assert wilson_interval(2, 8)[0] < low < wilson_interval(3, 8)[0]
    assert wilson_interval(2, 8)[1] < high < wilson_interval(3, 8)[1]


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


def mcnemar_by_enumeration(gained: int, lost: int) -> float:
    """Two-sided exact binomial p at 1/2: twice the smaller tail of Binomial(gained + lost, 1/2), capped at 1."""
    total = gained + lost
    tail = sum(math.comb(total, i) for i in range(min(gained, lost) + 1)) / 2**total
    return min(1.0, 2 * tail)


def test_mcnemar_p_equals_the_binomial_tails() -> None:
    assert mcnemar_p(0, 0) == 1.0
    assert mcnemar_p(10, 0) == pytest.approx(2 / 2**10, rel=1e-12)
    for gained in range(16):
        for lost in range(16):
            if gained + lost:
                assert mcnemar_p(gained, lost) == pytest.approx(mcnemar_by_enumeration(gained, lost), rel=1e-9)
    # README's first run: 49 problems gained, 17 lost, p = 0.0001 as printed.
    assert mcnemar_p(49, 17) == pytest.approx(mcnemar_by_enumeration(49, 17), rel=1e-9)
    assert f"{mcnemar_p(49, 17):.2g}" == "0.0001"


def test_paired_difference_keys_and_values() -> None:
    before = [0, 0, 1, 1, 0, 1, 0, 0]
    after = [1, 1, 1, 0, 0, 1, 1, 0]
    result = paired_difference(before, after)
    assert set(result) == {"mean", "low", "high", "gained", "lost", "p_value"}
    assert (result["gained"], result["lost"]) == (3, 1)
    assert result["p_value"] == pytest.approx(mcnemar_by_enumeration(3, 1))
    d = np.subtract(after, before)
    half = 1.959963984540054 * d.std(ddof=1) / math.sqrt(d.size)
    assert (result["mean"], result["low"], result["high"]) == pytest.approx((0.25, 0.25 - half, 0.25 + half))
    assert mean_interval([0.4]) == (0.4, 0.4, 0.4)
    with pytest.raises(ValueError, match="same length"):
        paired_difference([0, 1], [1])


# --- t-intervals ---------------------------------------------------------------------------------


def _unit_sd_sample(n: int) -> np.ndarray:
    """``n`` values with mean 0 and sample sd (ddof 1) exactly 1 up to rounding."""
    x = np.random.default_rng(n).normal(size=n)
    return (x - x.mean()) / x.std(ddof=1)


@pytest.mark.parametrize(
    ("dof", "expected"),
    [(1, 12.706204736), (2, 4.302652730), (4, 2.776445105), (10, 2.228138852), (30, 2.042272456), (1000, 1.962339081)],
)
def test_t_interval_half_width_is_the_table_quantile(dof: int, expected: float) -> None:
    # Two-sided 95% points of Student's t (e.g. NIST/SEMATECH e-Handbook, table 1.3.6.7.2).
    values = _unit_sd_sample(dof + 1)
    mean, low, high = t_interval(values)
    assert mean == pytest.approx(0.0, abs=1e-12)
    assert (high - mean) * math.sqrt(dof + 1) == pytest.approx(expected, rel=1e-9)
    assert (mean - low) == pytest.approx(high - mean, rel=1e-12)


@pytest.mark.parametrize("confidence", [0.2, 0.8, 0.99])
def test_t_interval_closed_forms_at_one_and_two_dof(confidence: float) -> None:
    # dof 1 is the Cauchy distribution: quantile tan(pi (q - 1/2)); dof 2: (2q - 1) / sqrt(2 q (1 - q)).
    q = 0.5 + confidence / 2
    cauchy = math.tan(math.pi * (q - 0.5))
    dof_two = (2 * q - 1) / math.sqrt(2 * q * (1 - q))
    for dof, quantile in ((1, cauchy), (2, dof_two)):
        mean, _, high = t_interval(_unit_sd_sample(dof + 1), confidence)
        assert (high - mean) * math.sqrt(dof + 1) == pytest.approx(quantile, rel=1e-9)


def test_t_interval_known_values_and_edge_cases() -> None:
    mean, low, high = t_interval([1.0, 2.0, 3.0])  # sd 1, n 3: half-width t(0.975, 2) / sqrt(3)
    assert mean == 2.0
    assert high - mean == pytest.approx(4.302652729749752 / math.sqrt(3), rel=1e-12)
    assert t_interval([0.7]) == (0.7, 0.7, 0.7)
    assert t_interval([0.5, 0.5, 0.5]) == (0.5, 0.5, 0.5)  # no spread: a zero-width interval, not NaN
    assert all(math.isnan(v) for v in t_interval([]))
    assert all(math.isnan(v) for v in t_interval([math.nan, math.nan]))
    assert t_interval([1.0, math.nan, 2.0, 3.0]) == t_interval([1.0, 2.0, 3.0])  # NaN dropped


# --- Bootstrap intervals -------------------------------------------------------------------------


def _quantiles(values: np.ndarray, levels: tuple[float, ...]) -> list[float]:
    return [float(v) for v in np.quantile(values, levels)]


def test_bootstrap_mean_against_the_enumerated_bootstrap_distribution() -> None:
    # All 4^4 resamples of 4 values are equally likely: the exact bootstrap distribution of the mean.
    values = np.array([0.1, 0.4, -0.2, 0.3])
    means = np.array([values[list(i)].mean() for i in itertools.product(range(4), repeat=4)])
    mean, low, high = bootstrap_mean(values, n_bootstrap=10_000, rng_seed=0)
    assert mean == pytest.approx(0.15)
    q015, q035, q965, q985 = _quantiles(means, (0.015, 0.035, 0.965, 0.985))
    assert q015 - 1e-12 <= low <= q035 + 1e-12 and q965 - 1e-12 <= high <= q985 + 1e-12


def test_bootstrap_mean_is_seeded_and_handles_few_values() -> None:
    values = list(np.random.default_rng(0).normal(size=6)) + [math.nan]
    assert bootstrap_mean(values, rng_seed=3) == bootstrap_mean(values, rng_seed=3)
    assert bootstrap_mean(values, rng_seed=3)[1] != bootstrap_mean(values, rng_seed=4)[1]
    mean, low, high = bootstrap_mean(values)
    assert min(values[:6]) <= low <= mean <= high <= max(values[:6])  # resampled means lie within the values
    single = bootstrap_mean([0.4, math.nan])
    assert single[0] == 0.4 and math.isnan(single[1]) and math.isnan(single[2])
    assert all(math.isnan(v) for v in bootstrap_mean([]))
    assert bootstrap_mean([0.2, 0.2, 0.2]) == pytest.approx((0.2, 0.2, 0.2))


def test_bootstrap_ratio_against_the_enumerated_bootstrap_distribution() -> None:
    numerator, denominator = np.array([5.0, 5.0, 6.0]), np.array([10.0, 10.0, 9.0])
    draws = list(itertools.product(range(3), repeat=3))
    ratios = np.array([numerator[list(i)].mean() / denominator[list(j)].mean() for i in draws for j in draws])
    ratio, low, high = bootstrap_ratio(numerator, denominator, n_bootstrap=10_000, rng_seed=1)
    assert ratio == pytest.approx(16 / 29)
    q015, q035, q965, q985 = _quantiles(ratios, (0.015, 0.035, 0.965, 0.985))
    assert q015 - 1e-12 <= low <= q035 + 1e-12 and q965 - 1e-12 <= high <= q985 + 1e-12
    assert bootstrap_ratio(numerator, denominator, rng_seed=1) == bootstrap_ratio(numerator, denominator, rng_seed=1)


def test_bootstrap_ratio_edge_cases() -> None:
    assert bootstrap_ratio([2.0], [4.0]) == (0.5, 0.5, 0.5)
    assert all(math.isnan(v) for v in bootstrap_ratio([], [1.0, 2.0]))
    # One denominator value: only the numerator [1, 3] is resampled, its mean is 1, 2 or 3.
    assert bootstrap_ratio([1.0, math.nan, 3.0], [2.0]) == pytest.approx((1.0, 0.5, 1.5))
    ratio, low, high = bootstrap_ratio([1.0, 2.0, 3.0], [0.0, 1.0])  # some resamples divide by 0
    assert ratio == 4.0 and math.isnan(low) and math.isnan(high)
    assert math.isnan(bootstrap_ratio([1.0, 2.0], [0.0, 0.0])[0])


# --- The sign-flip permutation test --------------------------------------------------------------


def sign_flip_p_by_enumeration(differences: list[float]) -> float:
    """The share of all 2^n sign patterns whose mean is at least as far from 0 as the observed mean."""
    d = np.asarray(differences, dtype=float)
    observed = abs(d.mean())
    tolerance = 1e-9 * max(float(np.abs(d).max()), 1e-300)
    signs = np.array(list(itertools.product((1.0, -1.0), repeat=d.size)))
    return float(np.mean(np.abs(signs @ d) / d.size >= observed - tolerance))


@pytest.mark.parametrize(
    "differences",
    [
        [0.01, 0.10],
        [0.25, 0.5, 0.75],
        [0.5, -0.25, 0.75, 0.125],
        [0.03, 0.01, -0.02, 0.04, 0.05],
        [0.035, -0.02, 0.005, -0.01, 0.02, -0.03],  # mean 0 up to rounding: p must be 1
        [-0.2, 0.0, 0.2, 0.2, 0.4, 0.2, -0.3, -0.5],  # a zero and ties
        [0.02, 0.035, 0.015, -0.005, 0.04, 0.03, 0.025, 0.01, 0.045, 0.02],  # 9 of 10 ahead
        list(np.random.default_rng(7).normal(0.4, 1.0, size=12)),
    ],
)
def test_sign_flip_p_equals_the_enumeration_of_all_sign_patterns(differences: list[float]) -> None:
    result = paired_permutation_test(differences)
    assert result["exact"] and result["n"] == len(differences) and result["test"] == "sign-flip permutation"
    assert result["mean"] == pytest.approx(float(np.mean(differences)))
    assert result["p_value"] == pytest.approx(sign_flip_p_by_enumeration(differences), abs=1e-12)


@pytest.mark.parametrize("n", range(2, 11))
def test_differences_of_one_sign_give_the_smallest_p(n: int) -> None:
    differences = list(np.random.default_rng(n).uniform(0.01, 1.0, size=n))
    result = paired_permutation_test(differences)
    assert result["p_value"] == pytest.approx(2 / 2**n, rel=1e-12) == result["smallest_p"]
    assert paired_permutation_test([-d for d in differences])["p_value"] == pytest.approx(2 / 2**n, rel=1e-12)


def test_smallest_sign_flip_p() -> None:
    assert [smallest_sign_flip_p(n) for n in (1, 2, 3, 5, 6, 10)] == [1.0, 0.5, 0.25, 0.0625, 0.03125, 2 / 1024]
    assert math.isnan(smallest_sign_flip_p(0))
    assert smallest_sign_flip_p(17) == pytest.approx(2 / (SIGN_FLIP_RESAMPLES + 1))  # random patterns beyond 16


def test_sign_flip_few_pairs_zeros_and_nan() -> None:
    assert paired_permutation_test([0.0, 0.0, 0.0])["p_value"] == 1.0
    assert paired_permutation_test([-1.0, 1.0, -0.5, 0.5, -0.2, 0.2])["p_value"] == 1.0
    single = paired_permutation_test([0.4, math.nan])
    assert single["n"] == 1 and single["mean"] == 0.4 and math.isnan(single["p_value"]) and single["smallest_p"] == 1
    empty = paired_permutation_test([])
    assert empty["n"] == 0 and math.isnan(empty["mean"]) and math.isnan(empty["p_value"])
    assert paired_permutation_test([0.3, math.nan, 0.1])["p_value"] == pytest.approx(0.5)


def test_sign_flip_with_random_patterns_is_seeded_and_close_to_exact() -> None:
    differences = list(np.random.default_rng(11).normal(0.3, 1.0, size=18))  # 2^18 > 2^16: random patterns
    result = paired_permutation_test(differences)
    assert not result["exact"]
    assert result["p_value"] == pytest.approx(sign_flip_p_by_enumeration(differences), abs=0.01)
    assert paired_permutation_test(differences, rng_seed=5) == paired_permutation_test(differences, rng_seed=5)
    few = paired_permutation_test(differences[:8], n_resamples=100, rng_seed=2)
    assert not few["exact"] and few["smallest_p"] == pytest.approx(2 / 101)


# --- Holm (written here: a few lines, no library in the dependencies) ----------------------------


def test_holm_adjust_hand_examples() -> None:
    # Sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> running max 0.06 for the last.
    assert holm_adjust([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # 0.01 .. 0.05: x5, x4, x3, x2, x1 = 0.05, 0.08, 0.09, 0.08, 0.05 -> running max 0.05, 0.08, 0.09, 0.09, 0.09.
    assert holm_adjust([0.01, 0.02, 0.03, 0.04, 0.05]) == pytest.approx([0.05, 0.08, 0.09, 0.09, 0.09])
    assert holm_adjust([0.5, 0.9]) == [1.0, 1.0]
    adjusted = holm_adjust([0.01, math.nan, 0.02])  # NaN: no test, not counted in m
    assert adjusted[0] == pytest.approx(0.02) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.02)
    assert holm_adjust([]) == []


def holm_rejections(p_values: list[float], alpha: float) -> list[bool]:
    """Holm's step-down procedure itself: reject the i-th smallest while it is <= alpha / (m - i), then stop."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    rejected = [False] * len(p_values)
    for rank, index in enumerate(order):
        if p_values[index] > alpha / (len(p_values) - rank):
            break
        rejected[index] = True
    return rejected


@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=12), st.sampled_from([0.01, 0.05, 0.1]))
def test_holm_adjusted_p_below_alpha_is_the_step_down_rejection(p_values: list[float], alpha: float) -> None:
    adjusted = holm_adjust(p_values)
    rejected = holm_rejections(p_values, alpha)
    for p, q, reject in zip(p_values, adjusted, rejected, strict=True):
        assert p <= q <= 1.0
        if abs(q - alpha) > 1e-12:  # on the boundary the float product decides either way
            assert (q <= alpha) == reject
