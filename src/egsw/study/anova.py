"""Does a sweep's outcome depend on alpha, on P, or on their combination, beyond seed-to-seed noise?

A sweep runs every (alpha, P) cell of a mode on the same seeds, and a seed fixes the data order and
the sampling stream, so seeds are blocks: a randomized complete block design with two fixed factors
and one observation per (alpha, P, seed). With ``y[a, p, s]`` of shape (A, P, S) and bars for means
over the dotted axes:

    SS_alpha = P S   sum_a (y[a..] - y[...])^2                                 dof A - 1
    SS_P     = A S   sum_p (y[.p.] - y[...])^2                                 dof P - 1
    SS_AxP   = S     sum_ap (y[ap.] - y[a..] - y[.p.] + y[...])^2              dof (A-1)(P-1)
    SS_seed  = A P   sum_s (y[..s] - y[...])^2                                 dof S - 1
    SS_resid = SS_total - the four above                                      dof (AP - 1)(S - 1)

Each effect's ``F = (SS / dof) / (SS_resid / dof_resid)`` with its p-value ``P(F > f)`` from scipy's
F distribution (:func:`egsw.stats.f_survival`); "cells" is the three together (does anything in the
grid matter?). The test assumes normal, equal-variance errors; at 2-3 seeds it has little power, so
a large p says "not detected", not "no effect".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from egsw.stats import f_survival

EFFECTS = ("alpha", "temperature", "interaction", "cells")


@dataclass(frozen=True)
class Effect:
    """One row of the ANOVA table: sum of squares, degrees of freedom, F against the residual, and p."""

    name: str
    sum_of_squares: float
    dof: int
    f: float
    p_value: float


def blocked_two_factor_anova(values: np.ndarray) -> dict[str, Effect]:
    """The effects of alpha, temperature, their interaction and all cells, seeds as blocks.

    values: (A, P, S) float, one observation per (alpha, temperature, seed), no NaN; S >= 2 and at
    least two cells. A factor with one level gets no row (dof 0). Returns ``{name: Effect}`` for the
    names in ``EFFECTS`` that apply; F and p are NaN when the residual has no variance or no dof.
    """
    y = np.asarray(values, dtype=float)
    if y.ndim != 3 or not np.isfinite(y).all():
        raise ValueError(f"values must be a finite (alphas, temperatures, seeds) array, got shape {y.shape}")
    n_alpha, n_temperature, n_seeds = y.shape
    if n_seeds < 2 or n_alpha * n_temperature < 2:
        raise ValueError(f"need at least 2 seeds and 2 cells, got {n_seeds} seeds and {n_alpha * n_temperature} cells")
    grand = y.mean()
    alpha_means = y.mean(axis=(1, 2))
    temperature_means = y.mean(axis=(0, 2))
    cell_means = y.mean(axis=2)
    seed_means = y.mean(axis=(0, 1))
    squares = {
        "alpha": n_temperature * n_seeds * float(((alpha_means - grand) ** 2).sum()),
        "temperature": n_alpha * n_seeds * float(((temperature_means - grand) ** 2).sum()),
        "interaction": n_seeds
        * float(((cell_means - alpha_means[:, None] - temperature_means[None, :] + grand) ** 2).sum()),
    }
    dofs = {"alpha": n_alpha - 1, "temperature": n_temperature - 1, "interaction": (n_alpha - 1) * (n_temperature - 1)}
    squares["cells"] = sum(squares.values())
    dofs["cells"] = n_alpha * n_temperature - 1
    seed_squares = n_alpha * n_temperature * float(((seed_means - grand) ** 2).sum())
    residual = max(float(((y - grand) ** 2).sum()) - squares["cells"] - seed_squares, 0.0)
    residual_dof = (n_alpha * n_temperature - 1) * (n_seeds - 1)
    residual_mean_square = residual / residual_dof
    effects = {}
    for name in EFFECTS:
        if dofs[name] == 0:
            continue
        mean_square = squares[name] / dofs[name]
        if residual_mean_square > 1e-12 * max(mean_square, 1e-300):
            f = mean_square / residual_mean_square
            p_value = f_survival(f, dofs[name], residual_dof)
        else:
            f = p_value = math.nan
        effects[name] = Effect(name, squares[name], dofs[name], f, p_value)
    return effects
