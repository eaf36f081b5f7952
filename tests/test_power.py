"""The power analysis that sizes the pre-registered studies (egsw.study.power)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from egsw.study.power import (
    main,
    minimum_detectable_effect,
    pooled_sd,
    seeds_for_power,
    simulated_sign_flip_power,
    study_differences,
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


def _recorded_run(results: Path, method: str, seed: int, accuracy: float | None) -> None:
    """A run's results as egsw compare --results keeps them (accuracy None: an evaluation without one)."""
    folder = results / method / f"seed-{seed}"
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(f"seed: {seed}\n")
    after = {} if accuracy is None else {"accuracy": accuracy}
    (folder / "eval.json").write_text(json.dumps({"interrupted": False, "after": after}))
    (folder / "metrics.jsonl").write_text(json.dumps({"step": 1, "reward": 0.5}) + "\n")


def test_a_studys_results_give_its_paired_differences_and_its_realised_power(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "study"
    accuracy = {
        "grpo": {1: 0.30, 2: 0.40, 3: 0.50, 4: 0.20},
        "egsw-step": {1: 0.32, 2: 0.37, 3: 0.55, 4: None},  # seed 4 has no accuracy: not paired
        "kl-cov": {1: 0.30, 2: 0.41, 4: 0.18},  # seed 3 never ran
    }
    for method, by_seed in accuracy.items():
        for seed, value in by_seed.items():
            _recorded_run(results, method, seed, value)
    (results / "kl-cov" / "seed-9").mkdir()  # a run in flight: no results yet, not counted
    differences = study_differences(results)
    assert set(differences) == {"egsw-step", "kl-cov"}
    assert differences["egsw-step"] == pytest.approx([2.0, -3.0, 5.0])  # points, seeds 1-3
    assert differences["kl-cov"] == pytest.approx([0.0, 1.0, -2.0])  # seeds 1, 2, 4

    assert main(["--results", str(results), "--effect", "3"]) == 0
    out = capsys.readouterr().out
    sd, dof = pooled_sd([[2.0, -3.0, 5.0], [0.0, 1.0, -2.0]])
    assert f"pooled SD of the paired differences: {sd:.2f} points ({dof} degrees of freedom)" in out
    assert "test level per method: 0.05 / 2 = 0.0250" in out  # Holm family: the study's two methods
    power, mde = t_test_power(3, 3.0, sd, 0.025), minimum_detectable_effect(3, sd, 0.025)
    study_line = next(line for line in out.splitlines() if line.startswith("n = 3:"))  # the fewest seeds paired
    assert f"power at 3 = {power:.3f}; minimum detectable effect (80% power) = {mde:.1f}" in study_line
    assert study_line.endswith("(the study's seeds)")

    with pytest.raises(SystemExit, match="the baseline reinforce has no finished runs"):
        main(["--results", str(results), "--baseline", "reinforce", "--effect", "3"])
    with pytest.raises(SystemExit, match="is not a folder"):
        main(["--results", str(tmp_path / "nowhere"), "--effect", "3"])
