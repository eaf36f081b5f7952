"""The seed-blocked two-factor ANOVA of a sweep, against least squares, F tables and its invariances."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats

from egsw.stats import f_survival
from egsw.study.anova import blocked_two_factor_anova


def _design(shape: tuple[int, int, int], terms: set[str]) -> np.ndarray:
    """Dummy-coded design matrix (rows in C order over (a, p, s)) with an intercept and ``terms``."""
    n_alpha, n_temperature, n_seeds = shape
    rows = []
    for a in range(n_alpha):
        for p in range(n_temperature):
            for s in range(n_seeds):
                row = [1.0]
                row += [float(a == i) for i in range(1, n_alpha)] if "alpha" in terms else []
                row += [float(p == j) for j in range(1, n_temperature)] if "temperature" in terms else []
                if "interaction" in terms:
                    row += [float(a == i and p == j) for i in range(1, n_alpha) for j in range(1, n_temperature)]
                row += [float(s == k) for k in range(1, n_seeds)]
                rows.append(row)
    return np.array(rows)


def _rss(shape: tuple[int, int, int], terms: set[str], y: np.ndarray) -> float:
    design = _design(shape, terms)
    coefficients, *_ = np.linalg.lstsq(design, y.ravel(), rcond=None)
    return float(((y.ravel() - design @ coefficients) ** 2).sum())


@pytest.mark.parametrize("shape", [(3, 3, 3), (2, 3, 4), (3, 2, 2), (4, 1, 3)])
def test_matches_nested_least_squares_models(shape: tuple[int, int, int]) -> None:
    y = np.random.default_rng(sum(shape)).normal(size=shape)
    effects = blocked_two_factor_anova(y)
    full = {"alpha", "temperature", "interaction"}
    residual = _rss(shape, full, y)
    residual_dof = (shape[0] * shape[1] - 1) * (shape[2] - 1)
    # Balanced design: a term's sum of squares is the RSS it removes. Main effects: the additive
    # model with and without the factor; interaction: the full model against the additive one.
    additive = _rss(shape, {"alpha", "temperature"}, y)
    removed = {
        "alpha": _rss(shape, {"temperature"}, y) - additive,
        "temperature": _rss(shape, {"alpha"}, y) - additive,
        "interaction": additive - residual,
    }
    for name, expected in removed.items():
        if name not in effects:
            continue
        assert effects[name].sum_of_squares == pytest.approx(expected, rel=1e-9, abs=1e-12)
        expected_f = (expected / effects[name].dof) / (residual / residual_dof)
        assert effects[name].f == pytest.approx(expected_f, rel=1e-9)
        assert effects[name].p_value == pytest.approx(f_survival(expected_f, effects[name].dof, residual_dof))
    cells = _rss(shape, set(), y) - residual
    assert effects["cells"].sum_of_squares == pytest.approx(cells, rel=1e-9)
    assert effects["cells"].dof == shape[0] * shape[1] - 1
    if shape[1] == 1:
        assert set(effects) == {"alpha", "cells"}


@pytest.mark.parametrize(
    ("f", "dof1", "dof2", "p"),
    [(4.1028, 2, 10, 0.05), (7.7086, 1, 4, 0.05), (4.9382, 3, 20, 0.01), (2.6060, 4, 40, 0.05), (6.9266, 2, 12, 0.01)],
)
def test_f_survival_table_values(f: float, dof1: int, dof2: int, p: float) -> None:
    # Upper percentage points of the F distribution, as printed in standard tables (4-5 digits).
    assert f_survival(f, dof1, dof2) == pytest.approx(p, abs=2e-4)


@pytest.mark.parametrize("f", [0.05, 0.7, 2.0, 4.41, 19.0, 250.0])
def test_f_survival_closed_forms(f: float) -> None:
    # dof1 = 2: (1 + 2 f / d2)^(-d2 / 2); dof2 = 2: 1 - (d1 f / (d1 f + 2))^(d1 / 2); F(1, 1) is t_1^2 (Cauchy).
    for dof2 in (1, 3, 10, 40):
        assert f_survival(f, 2, dof2) == pytest.approx((1 + 2 * f / dof2) ** (-dof2 / 2), rel=1e-9)
    for dof1 in (1, 3, 8):
        assert f_survival(f, dof1, 2) == pytest.approx(1 - (dof1 * f / (dof1 * f + 2)) ** (dof1 / 2), rel=1e-9)
    assert f_survival(f, 1, 1) == pytest.approx(1 - 2 / math.pi * math.atan(math.sqrt(f)), rel=1e-9)


def test_f_survival_has_its_limits() -> None:
    assert f_survival(0.0, 2, 5) == 1.0
    assert f_survival(-1.0, 2, 5) == 1.0
    assert f_survival(math.inf, 2, 5) == 0.0
    assert math.isnan(f_survival(math.nan, 2, 5))


def test_two_cells_on_the_same_seeds_is_the_paired_t_test() -> None:
    # One alpha, two P: the README reads a two-cell confirmation sweep this way.
    y = np.random.default_rng(5).normal(size=(1, 2, 10)) + np.array([0.0, 0.4])[None, :, None]
    differences = y[0, 1] - y[0, 0]
    t = differences.mean() / (differences.std(ddof=1) / math.sqrt(differences.size))
    effects = blocked_two_factor_anova(y)
    assert set(effects) == {"temperature", "cells"}
    assert effects["temperature"].dof == 1
    assert effects["temperature"].f == pytest.approx(t * t, rel=1e-9)
    assert effects["temperature"].p_value == pytest.approx(scipy.stats.ttest_rel(y[0, 1], y[0, 0]).pvalue, rel=1e-9)


def test_seed_offsets_do_not_change_anything_and_scaling_keeps_f() -> None:
    y = np.random.default_rng(3).normal(size=(3, 3, 3))
    base = blocked_two_factor_anova(y)
    shifted = blocked_two_factor_anova(y + np.array([5.0, -2.0, 0.3])[None, None, :])  # a "lucky seed"
    scaled = blocked_two_factor_anova(10.0 * y)
    for name, effect in base.items():
        assert shifted[name].f == pytest.approx(effect.f, rel=1e-9)
        assert scaled[name].sum_of_squares == pytest.approx(100.0 * effect.sum_of_squares, rel=1e-9)
        assert scaled[name].p_value == pytest.approx(effect.p_value, rel=1e-9)


def test_a_planted_alpha_effect_is_found_and_attributed_to_alpha_only() -> None:
    noise = np.random.default_rng(4).normal(scale=0.01, size=(3, 3, 3))
    y = noise + np.array([0.0, 0.5, 1.0])[:, None, None]
    effects = blocked_two_factor_anova(y)
    assert effects["alpha"].p_value < 1e-9
    pure_noise = blocked_two_factor_anova(noise)
    for name in ("temperature", "interaction"):
        assert effects[name].sum_of_squares == pytest.approx(pure_noise[name].sum_of_squares, rel=1e-9)


def test_no_residual_variance_gives_nan_not_a_division_error() -> None:
    y = np.add.outer(np.add.outer([0.0, 1.0], [0.0, 2.0]), [0.0, 0.5])  # exactly additive
    effects = blocked_two_factor_anova(y)
    assert math.isnan(effects["alpha"].f) and math.isnan(effects["alpha"].p_value)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (np.zeros((2, 2)), "finite (alphas, temperatures, seeds) array"),
        (np.full((2, 2, 2), np.nan), "finite (alphas, temperatures, seeds) array"),
        (np.zeros((2, 2, 1)), "at least 2 seeds and 2 cells"),
        (np.zeros((1, 1, 3)), "at least 2 seeds and 2 cells"),
    ],
)
def test_bad_input_is_refused(values: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        blocked_two_factor_anova(values)
