"""The power analysis that sizes the pre-registered studies (egsw.study.power)."""

from __future__ import annotations

import math

import pytest

from egsw.study.power import (
    minimum_detectable_effect,
    pooled_sd,
    seeds_for_power,
    simulated_sign_flip_power,
    t_test_power,
)


def test_pooled_sd_pools_squares_about_each_mean() -> None:
    sd, dof = pooled_sd([[1.0, 10.0, -17.0], [-5.5, 3.0, -16.5]])
    assert dof == 4
    # By hand: deviations 3, 12, -15 and 5/6, 28/3, -61/6.
    assert sd == pytest.approx(math.sqrt((9 + 144 + 225 + (5 / 6) ** 2 + (28 / 3) ** 2 + (61 / 6) ** 2) / 4))
    with pytest.raises(ValueError, match="at least two"):
        pooled_sd([[1.0]])


def test_t_test_power_matches_published_values() -> None:
    # G*Power / Cohen: paired t-test, effect size d = 1, n = 10, two-sided alpha 0.05 -> power 0.803.
    assert t_test_power(10, 1.0, 1.0, 0.05) == pytest.approx(0.803, abs=0.001)
    # d = 0.5 needs 34 pairs for 80% (Cohen's table), 33 give less.
    assert seeds_for_power(0.5, 1.0, 0.05) == 34
    needed = seeds_for_power(3.0, 11.93, 0.05 / 3)  # the SmolLM2 study's figure: the fewest, not a bracket
    assert t_test_power(needed, 3.0, 11.93, 0.05 / 3) >= 0.8 > t_test_power(needed - 1, 3.0, 11.93, 0.05 / 3)
    assert t_test_power(1, 5.0, 1.0, 0.05) == 0.0
    assert t_test_power(20, 30.0, 1.0, 0.001) == pytest.approx(1.0)  # far tail: no NaN


def test_minimum_detectable_effect_inverts_power() -> None:
    effect = minimum_detectable_effect(14, 11.9, 0.05 / 3)
    assert t_test_power(14, effect, 11.9, 0.05 / 3) == pytest.approx(0.8, abs=1e-6)
    assert minimum_detectable_effect(28, 11.9, 0.05 / 3) < effect


def test_sign_flip_power_is_close_to_the_t_tests_at_moderate_n() -> None:
    effect = minimum_detectable_effect(12, 1.0, 0.05)
    assert simulated_sign_flip_power(12, effect, 1.0, 0.05, simulations=300) == pytest.approx(0.8, abs=0.08)
    assert simulated_sign_flip_power(12, 0.0, 1.0, 0.05, simulations=300) < 0.1  # its level under the null
