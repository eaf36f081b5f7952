"""The sweep report and its statistics on synthetic ``egsw train`` output folders with known numbers."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from egsw.study.anova import Effect, blocked_two_factor_anova
from egsw.study.runs_data import RunOutcome, SweepSummary
from egsw.study.summary import summarize_sweep
from egsw.study.sweep_report import (
    format_sweep_table,
    sensitivity_sentence,
    versus_reference_sentence,
    versus_reference_test_sentence,
    write_sweep_report,
)
from tests.test_comparison_report import PNG_SIGNATURE, write_run


def _sweep_runs(root: Path) -> list[RunOutcome]:
    """Mode "step", alpha {0, 0.1} x P {0.5, 1} x 2 seeds, best at alpha 0.1 P 1; plus 2 grpo runs."""
    runs = []
    for alpha in (0.0, 0.1):
        for temperature in (0.5, 1.0):
            best = alpha == 0.1 and temperature == 1.0
            label = f"step a={alpha:g} P={temperature:g}"
            for seed in range(2):
                level = (0.8 if best else 0.4) + 0.02 * seed + 0.01 * temperature
                folder = write_run(
                    root / label.replace(" ", "_") / f"seed-{seed}",
                    [0.0] * 5 + [level] * 5,
                    accuracy=(0.6 if best else 0.4) + 0.01 * seed,
                )
                params = {"egsw_mode": "step", "egsw_alpha": alpha, "egsw_temperature": temperature}
                runs.append(RunOutcome(label, seed, folder, "finished", params=params))
    for seed in range(2):
        folder = write_run(root / "grpo" / f"seed-{seed}", [0.0] * 5 + [0.3 + 0.01 * seed] * 5, accuracy=0.35)
        runs.append(RunOutcome("grpo", seed, folder, "finished"))
    runs.append(RunOutcome("step a=0 P=0.5", 2, root / "x", "failed", "timeout", params=runs[0].params))
    return runs


def test_sweep_report_finds_the_constructed_best_cell(tmp_path: Path) -> None:
    runs = _sweep_runs(tmp_path / "runs")
    summary = summarize_sweep(runs)
    assert len(summary.cells) == 4 and summary.modes == ["step"]
    assert summary.reference is not None and summary.reference.final_reward.mean == pytest.approx(0.305)
    for measure in ("final_reward", "accuracy"):
        best = summary.best[measure]
        assert best is not None and best.label == "step a=0.1 P=1"
        assert {n.label for n in best.neighbours} == {"step a=0 P=1", "step a=0.1 P=0.5"}
        assert best.reference_overlaps is False
    cell = next(c for c in summary.cells if c.label == "step a=0 P=0.5")
    assert cell.n_runs == 3 and cell.seeds == [0, 1]
    assert "step a=0.1 P=1" in format_sweep_table(summary)

    report = write_sweep_report(runs, tmp_path / "out", title="Synthetic sweep", command="egsw sweep")
    text = report.read_text()
    assert "## Best settings" in text and "`step a=0.1 P=1`" in text and "timeout" in text
    assert "95% t-intervals over seeds do not overlap" in text
    for measure in ("final_reward", "accuracy"):
        png = tmp_path / "out" / "figures" / f"sweep-step-{measure}.png"
        assert png.read_bytes()[:8] == PNG_SIGNATURE and f"figures/sweep-step-{measure}.png" in text
    content = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert content["best"]["accuracy"]["label"] == "step a=0.1 P=1"


def _noisy_grid_runs(root: Path, *, failed: tuple[float, float, int] | None = None) -> list[RunOutcome]:
    """Mode "step", alpha {0, 0.1, 0.5} x P {0.5, 1} x 3 seeds; final reward rises with P, accuracy does not.

    The "noise" is a fixed non-additive pattern, so the residual is not zero. ``failed`` = (alpha, P, seed)
    of one run that fails.
    """
    runs = []
    for i, alpha in enumerate((0.0, 0.1, 0.5)):
        for j, temperature in enumerate((0.5, 1.0)):
            label = f"step a={alpha:g} P={temperature:g}"
            params = {"egsw_mode": "step", "egsw_alpha": alpha, "egsw_temperature": temperature}
            for seed in range(3):
                if failed == (alpha, temperature, seed):
                    runs.append(RunOutcome(label, seed, root / "failed", "failed", "boom", params=params))
                    continue
                noise = 0.01 * ((7 * seed + 3 * i + 5 * j + seed * i) % 4)
                folder = write_run(
                    root / label.replace(" ", "_") / f"seed-{seed}",
                    [0.0] * 5 + [0.4 + 0.2 * j + noise] * 5,
                    accuracy=0.4 + noise,
                )
                runs.append(RunOutcome(label, seed, folder, "finished", params=params))
    return runs


def _expected_array(runs: list[RunOutcome], measure: str, seeds: list[int]) -> np.ndarray:
    """(alpha, P, seed) of ``measure`` read back from the synthetic runs' own files."""
    summary = summarize_sweep(runs)
    value = {(r.params["egsw_alpha"], r.params["egsw_temperature"], r.seed): getattr(r, measure) for r in summary.runs}
    return np.array([[[value[(a, t, s)] for s in seeds] for t in (0.5, 1.0)] for a in (0.0, 0.1, 0.5)])


def test_sensitivity_is_the_seed_blocked_anova_of_the_grid(tmp_path: Path) -> None:
    runs = _noisy_grid_runs(tmp_path / "runs")
    summary = summarize_sweep(runs)
    tests = {(t.mode, t.measure): t for t in summary.sensitivity}
    assert set(tests) == {("step", "final_reward"), ("step", "accuracy")}
    for measure in ("final_reward", "accuracy"):
        test = tests[("step", measure)]
        assert test.seeds == [0, 1, 2] and test.cells == 6 and test.residual_dof == 10 and test.note is None
        expected = blocked_two_factor_anova(_expected_array(runs, measure, [0, 1, 2]))
        assert {name: e.dof for name, e in test.effects.items()} == {name: e.dof for name, e in expected.items()}
        for name, effect in expected.items():
            assert test.effects[name].f == pytest.approx(effect.f, rel=1e-9, abs=1e-12)
        assert test.effects["alpha"].dof == 2 and test.effects["temperature"].dof == 1  # not transposed
    assert tests[("step", "final_reward")].effects["temperature"].p_value < 0.001
    sentence = sensitivity_sentence(summary)
    assert sentence.startswith("Dependence detected after Holm's correction over the 8 tests:")
    assert "final training reward in `step` on P (p_Holm < 0.001)" in sentence
    assert "held-out accuracy in `step` on P" not in sentence

    text = write_sweep_report(runs, tmp_path / "out", title="t", command="egsw sweep").read_text()
    assert "## Sensitivity to alpha and P" in text and "F(1, 10) = " in text and sentence in text
    content = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert content["sensitivity"][0]["effects"]["temperature"]["dof"] == 1
    assert "alpha x P" in format_sweep_table(summary)


def test_sensitivity_uses_the_seeds_every_cell_finished_and_says_when_it_cannot_run(tmp_path: Path) -> None:
    runs = _noisy_grid_runs(tmp_path / "runs", failed=(0.1, 1.0, 2))
    test = summarize_sweep(runs).sensitivity[0]
    assert test.seeds == [0, 1] and test.residual_dof == 5
    expected = blocked_two_factor_anova(_expected_array([r for r in runs if r.seed < 2], "final_reward", [0, 1]))
    assert test.effects["cells"].f == pytest.approx(expected["cells"].f)

    incomplete = [r for r in runs if r.method != "step a=0.5 P=1"]
    test = summarize_sweep(incomplete).sensitivity[0]
    assert test.effects == {} and test.note == "the alpha x P grid is incomplete"
    one_seed = [r for r in runs if r.seed == 0]
    summary = summarize_sweep(one_seed)
    assert summary.sensitivity[0].note == "needs at least 2 cells and 2 seeds that every cell finished"
    assert sensitivity_sentence(summary) == "No sensitivity test could be run (see the table)."


def test_sensitivity_sentence_separates_corrected_findings_from_leads(tmp_path: Path) -> None:
    summary = summarize_sweep(_noisy_grid_runs(tmp_path / "runs"))

    def with_p(values: dict[str, float]) -> SweepSummary:
        tests = [
            replace(t, effects={name: Effect(name, 1.0, 2, 1.0, values.get(name, 0.9)) for name in t.effects})
            for t in summary.sensitivity
        ]
        return replace(summary, sensitivity=tests)

    lead = sensitivity_sentence(with_p({"temperature": 0.03}))
    assert lead.startswith("Below p = 0.05 for that test alone: final training reward in `step` on P (p = 0.030)")
    assert "after Holm's correction over the 8 tests none remains (smallest adjusted p = 0.240)" in lead
    anywhere = sensitivity_sentence(with_p({"cells": 0.001}))
    assert anywhere.startswith("Dependence detected") and "in `step` on any cell (p_Holm = 0.008)" in anywhere
    assert "No measure depends detectably" in sensitivity_sentence(with_p({}))


def test_each_cell_is_paired_with_grpo_on_their_common_seeds(tmp_path: Path) -> None:
    runs = _sweep_runs(tmp_path / "runs")
    summary = summarize_sweep(runs)
    best = next(c for c in summary.cells if c.label == "step a=0.1 P=1")
    reward = best.versus_reference["final_reward"]
    # seed s: (0.8 + 0.02 s + 0.01) - (0.3 + 0.01 s) = 0.51 + 0.01 s; the failed seed-2 run has no pair
    assert reward.seeds == [0, 1] and reward.mean == pytest.approx(0.515)
    half = 12.7062047 * (0.01 / np.sqrt(2)) / np.sqrt(2)  # t_{0.975, 1} * sd / sqrt(n)
    assert (reward.t_low, reward.t_high) == pytest.approx((0.515 - half, 0.515 + half), rel=1e-6)
    assert best.versus_reference["accuracy"].mean == pytest.approx(0.255)
    assert all(
        c.versus_reference["final_reward"].p_holm >= c.versus_reference["final_reward"].p_value for c in summary.cells
    )
    sentence = versus_reference_sentence(summary)
    assert "final training reward: above grpo: `step a=0 P=0.5`" in sentence and "below grpo" not in sentence

    text = write_sweep_report(runs, tmp_path / "out", title="t", command="egsw sweep").read_text()
    assert "reward - grpo [paired t-CI]" in text and sentence in text
    content = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert content["cells"][3]["versus_reference"]["accuracy"]["mean"] == pytest.approx(0.255)

    no_grpo = summarize_sweep([r for r in runs if r.method != "grpo"])
    assert all(c.versus_reference == {} for c in no_grpo.cells)
    assert versus_reference_sentence(no_grpo) == "No `grpo` runs: no cell is compared with GRPO."
    assert versus_reference_test_sentence(no_grpo) == ""


def test_cells_against_grpo_at_two_seeds_cannot_be_detected(tmp_path: Path) -> None:
    runs = _sweep_runs(tmp_path / "runs")
    summary = summarize_sweep(runs)
    best = next(c for c in summary.cells if c.label == "step a=0.1 P=1").versus_reference["accuracy"]
    assert best.test == "sign-flip permutation" and best.p_value == 0.5 and best.p_holm == 1.0
    sentence = versus_reference_test_sentence(summary)
    assert sentence.startswith("Exact sign-flip permutation tests of cell - grpo, Holm-adjusted over the cells")
    assert (
        "held-out accuracy: p_Holm < 0.05 is out of reach at 2 seeds (no p below 2 / 2^2 = 0.5, and Holm over "
        "4 cells makes it >= 1; that takes 8 seeds)"
    ) in sentence
    text = write_sweep_report(runs, tmp_path / "out", title="t", command="egsw sweep").read_text()
    assert sentence in text and sentence in format_sweep_table(summary)


def test_a_cell_ahead_of_grpo_on_seven_seeds_is_detected(tmp_path: Path) -> None:
    """Two cells x 7 seeds: P = 2 is 8-14 points ahead on every seed (p = 2 / 2^7, Holm x 2 = 0.031)."""
    runs = []
    for seed in range(7):
        rewards = [0.0] * 5 + [0.3 + 0.01 * seed] * 5
        folder = write_run(tmp_path / "grpo" / f"seed-{seed}", rewards, accuracy=0.35 + 0.01 * seed)
        runs.append(RunOutcome("grpo", seed, folder, "finished"))
        for temperature, gain in ((1.0, 0.01 * (seed % 3 - 1)), (2.0, 0.08 + 0.01 * seed)):
            label = f"step a=0.1 P={temperature:g}"
            params = {"egsw_mode": "step", "egsw_alpha": 0.1, "egsw_temperature": temperature}
            folder = write_run(
                tmp_path / label.replace(" ", "_") / f"seed-{seed}", rewards, accuracy=0.35 + 0.01 * seed + gain
            )
            runs.append(RunOutcome(label, seed, folder, "finished", params=params))
    summary = summarize_sweep(runs)
    ahead = next(c for c in summary.cells if c.temperature == 2.0).versus_reference["accuracy"]
    assert ahead.p_value == pytest.approx(2 / 2**7) and ahead.p_holm == pytest.approx(4 / 2**7)
    sentence = versus_reference_test_sentence(summary)
    assert "held-out accuracy: detected for `step a=0.1 P=2`" in sentence
    assert "final training reward: none detected (smallest p_Holm = 1.000)" in sentence
