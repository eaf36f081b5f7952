"""pass@k against a direct computation, and the Wilson interval's sanity."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from egsw.stats import mcnemar_p, pass_at_k, wilson_interval


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
