"""The comparison report and its data and statistics on synthetic ``egsw train`` output folders with known numbers."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from egsw.study.comparison_report import format_summary_table, write_comparison_report
from egsw.study.runs_data import ComparisonSummary, RunOutcome, final_training_reward, load_run, steps_to_threshold
from egsw.study.summary import is_detected, summarize_comparison

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Ten logged steps each; every value is exact in binary, so thresholds compare exactly.
# grpo: zero for 5 steps, then its final level; finals 0.25 / 0.5 / 0.75 -> threshold 0.5.
# egsw-step: zero for 2 steps, then a higher level; entropy-bonus: grpo's levels, seeds permuted.
LEVELS = {"grpo": (0.25, 0.5, 0.75), "egsw-step": (1.0, 0.875, 0.75), "entropy-bonus": (0.5, 0.25, 0.75)}
RAMP_START = {"grpo": 5, "egsw-step": 2, "entropy-bonus": 5}
ACCURACY = {"grpo": (0.40, 0.45, 0.50), "egsw-step": (0.60, 0.65, 0.70), "entropy-bonus": (0.45, 0.40, 0.50)}
BASE_ACCURACY = 0.30


def write_run(
    folder: Path,
    rewards: Sequence[float],
    *,
    accuracy: float | None = 0.5,
    mean_length: float = 30.0,
    runtime: float = 120.0,
    base_accuracy: float = BASE_ACCURACY,
) -> Path:
    """An ``egsw train`` output folder: metrics.jsonl (one line per step, then the runtime line) and eval.json."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        {"step": step, "loss": 0.1, "reward": reward, "completions/mean_length": 40.0 - step, "reward_std": 0.3}
        for step, reward in enumerate(rewards, start=1)
    ]
    lines.append({"step": len(rewards), "train_runtime": runtime, "train_loss": 0.1, "epoch": 1.0})
    (folder / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    evaluation: dict[str, Any] = {"interrupted": False, "before": _evaluation(base_accuracy, 35.0)}
    if accuracy is not None:
        evaluation["after"] = _evaluation(accuracy, mean_length)
    (folder / "eval.json").write_text(json.dumps(evaluation, indent=2))
    return folder


def _evaluation(accuracy: float, mean_length: float) -> dict[str, Any]:
    """An eval.json "before"/"after" entry."""
    return {
        "name": "held-out",
        "num_problems": 200,
        "num_samples": 1,
        "temperature": 0.0,
        "accuracy": accuracy,
        "accuracy_low": max(0.0, accuracy - 0.07),
        "accuracy_high": min(1.0, accuracy + 0.07),
        "pass_at_k": {"1": accuracy},
        "mean_length": mean_length,
    }


def curve(method: str, seed: int) -> list[float]:
    """The constructed reward curve of a method and seed."""
    start = RAMP_START[method]
    return [0.0] * start + [LEVELS[method][seed]] * (10 - start)


@pytest.fixture(scope="module")
def comparison_runs(tmp_path_factory: pytest.TempPathFactory) -> list[RunOutcome]:
    """3 methods x 3 seeds, plus a failed, a missing and an unreadable run of a fourth method."""
    root = tmp_path_factory.mktemp("compare")
    runs = []
    for method in LEVELS:
        for seed in range(3):
            folder = write_run(
                root / method / f"seed-{seed}",
                curve(method, seed),
                accuracy=ACCURACY[method][seed],
                mean_length=30.0 + (5.0 if method == "egsw-step" else 0.0) + seed,
            )
            runs.append(RunOutcome(method, seed, folder, "finished"))
    runs.append(RunOutcome("egsw-trajectory", 0, root / "traj" / "seed-0", "failed", "exit code 1: out of memory"))
    runs.append(RunOutcome("egsw-trajectory", 1, root / "traj" / "seed-1", "missing", "not started"))
    (root / "traj" / "seed-2").mkdir(parents=True)
    runs.append(RunOutcome("egsw-trajectory", 2, root / "traj" / "seed-2", "finished"))
    return runs


@pytest.fixture(scope="module")
def summary(comparison_runs: list[RunOutcome]) -> ComparisonSummary:
    return summarize_comparison(comparison_runs)


@pytest.fixture(scope="module")
def report_dir(comparison_runs: list[RunOutcome], tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("report")
    write_comparison_report(
        comparison_runs, output, title="Synthetic comparison", command="egsw compare --seeds 3", notes=["a note"]
    )
    return output


def test_final_training_reward_averages_the_last_fifth() -> None:
    assert final_training_reward([0.0] * 8 + [1.0, 0.5]) == 0.75  # 10 steps: the last 2
    assert final_training_reward([0.0, 0.0, 0.3]) == pytest.approx(0.3)  # round(0.6) = 1
    assert final_training_reward([0.4]) == 0.4
    assert math.isnan(final_training_reward([]))


def test_steps_to_threshold_uses_the_trailing_mean_and_censors() -> None:
    steps = list(range(1, 11))
    assert steps_to_threshold(steps, curve("grpo", 2), 0.5, 5) == (9.0, True)  # 0.75 * 4/5 = 0.6 at step 9
    assert steps_to_threshold(steps, curve("grpo", 1), 0.5, 5) == (10.0, True)
    assert steps_to_threshold(steps, curve("grpo", 0), 0.5, 5) == (10.0, False)  # never: censored at the end
    assert steps_to_threshold(steps, curve("egsw-step", 0), 0.5, 1) == (3.0, True)
    # Only full windows count: 0, 0, 1, 1 has a mean of 0.5 at step 4 over 4 steps, not 5.
    assert steps_to_threshold(steps, curve("egsw-step", 0), 0.5, 5) == (5.0, True)
    assert steps_to_threshold([1, 2], [0.0, 1.0], 0.5, 5) == (2.0, True)  # shorter than a window: the last step
    step, reached = steps_to_threshold(steps, curve("grpo", 0), math.nan, 5)
    assert math.isnan(step) and reached is False


def test_load_run_reads_metrics_and_eval(tmp_path: Path) -> None:
    folder = write_run(tmp_path / "run", [0.1, 0.2, 0.3], accuracy=0.55, runtime=654.0)
    with (folder / "metrics.jsonl").open("a") as handle:
        handle.write('{"step": 4, "rew')  # a torn last line is skipped
    data = load_run(RunOutcome("grpo", 0, folder, "finished"))
    assert data is not None
    assert data.steps.tolist() == [1, 2, 3]
    assert data.reward.tolist() == [0.1, 0.2, 0.3]
    assert data.completion_length.tolist() == [39.0, 38.0, 37.0]
    assert data.runtime == 654.0
    assert data.accuracy == 0.55 and data.mean_length == 30.0
    assert load_run(RunOutcome("grpo", 0, folder, "failed", "boom")) is None
    assert load_run(RunOutcome("grpo", 0, tmp_path / "absent", "finished")) is None


def test_summary_numbers_equal_hand_computed_values(summary: ComparisonSummary) -> None:
    assert summary.methods == ["grpo", "egsw-step", "entropy-bonus", "egsw-trajectory"]
    assert summary.threshold == 0.5
    grpo, step = summary.method_summaries["grpo"], summary.method_summaries["egsw-step"]
    assert grpo.final_reward.mean == 0.5 and grpo.final_reward.n == 3
    # t-interval with 2 dof: 0.5 +- 4.3027 * 0.25 / sqrt(3)
    assert grpo.final_reward.high - 0.5 == pytest.approx(4.302652729749752 * 0.25 / math.sqrt(3), rel=1e-9)
    assert step.final_reward.mean == pytest.approx(0.875)
    steps = {(row.method, row.seed): (row.steps_to_threshold, row.reached_threshold) for row in summary.runs}
    assert [steps["grpo", s] for s in range(3)] == [(10.0, False), (10.0, True), (9.0, True)]
    assert [steps["egsw-step", s] for s in range(3)] == [(5.0, True), (5.0, True), (6.0, True)]
    assert grpo.not_reached == 1 and step.not_reached == 0
    assert step.steps_ratio is not None
    assert step.steps_ratio.mean == pytest.approx((16 / 3) / (29 / 3))
    assert step.steps_ratio.low <= step.steps_ratio.mean <= step.steps_ratio.high < 1
    assert summary.base_model is not None and summary.base_model.accuracy == BASE_ACCURACY


def test_paired_tests_at_three_seeds_are_exact_and_cannot_detect(summary: ComparisonSummary) -> None:
    accuracy = {c.method: c for c in summary.paired["accuracy"]}
    better, same = accuracy["egsw-step"], accuracy["entropy-bonus"]
    assert better.n == 3 and better.mean == pytest.approx(0.2) and better.wins == 3
    # +0.2 on all 3 seeds: 2 of the 2^3 sign patterns are as extreme, p = 0.25; Holm over 2 methods: 0.5.
    assert better.test == "sign-flip permutation" and better.exact and better.smallest_p == 0.25
    assert better.p_value == 0.25 and better.p_holm == 0.5 and not is_detected(better)
    assert (better.low, better.high) == pytest.approx((0.2, 0.2))  # bootstrap of three equal differences
    # -0.05, +0.05, 0: every sign pattern is as far from 0 as the observed mean 0.
    assert same.mean == pytest.approx(0.0, abs=1e-12) and same.p_value == 1.0 and same.p_holm == 1.0
    assert same.wins == 1 and same.losses == 1
    assert accuracy["egsw-trajectory"].n == 0 and math.isnan(accuracy["egsw-trajectory"].p_holm)
    length = {c.method: c for c in summary.paired["mean_length"]}
    assert length["egsw-step"].mean == pytest.approx(5.0)


def test_failed_missing_and_unreadable_runs_are_listed(summary: ComparisonSummary) -> None:
    statuses = {row.seed: row for row in summary.runs if row.method == "egsw-trajectory"}
    assert statuses[0].status == "failed" and statuses[0].error == "exit code 1: out of memory"
    assert statuses[1].status == "missing"
    assert statuses[2].status == "unreadable" and "metrics.jsonl" in (statuses[2].error or "")
    trajectory = summary.method_summaries["egsw-trajectory"]
    assert trajectory.n_finished == 0 and math.isnan(trajectory.accuracy.mean)


def test_report_has_its_sections_figures_and_json(report_dir: Path, summary: ComparisonSummary) -> None:
    text = (report_dir / "report.md").read_text()
    assert text.startswith("# Synthetic comparison")
    assert "egsw compare --seeds 3" in text and "- a note" in text
    for heading in ("## What the data supports", "## Training curves", "## Sample efficiency", "## Paired comparison"):
        assert heading in text
    for method in LEVELS:
        assert f"`{method}`" in text
    assert "exit code 1: out of memory" in text and "moving average over 5" in text
    assert "Held-out accuracy: no method differs detectably from `grpo` at 3 paired seeds" in text
    assert "With 3 paired seeds the exact sign-flip test cannot give a p below 0.25 " in text
    assert "Holm's correction over 2 methods" in text and "That takes at least 7 paired seeds." in text
    assert "| sign-flip p | Holm p |" in text and "bootstrap p" not in text
    for name in ("reward", "completion_length", "accuracy"):
        png = report_dir / "figures" / f"{name}.png"
        assert png.read_bytes()[:8] == PNG_SIGNATURE and png.stat().st_size > 5000
        assert f"figures/{name}.png" in text
    content = json.loads((report_dir / "summary.json").read_text())
    assert content["threshold"] == 0.5
    assert content["method_summaries"]["egsw-step"]["steps_ratio"]["mean"] == pytest.approx(16 / 29)
    assert content["method_summaries"]["egsw-trajectory"]["accuracy"]["mean"] is None  # NaN as null
    assert content["paired"]["accuracy"][0]["mean"] == pytest.approx(summary.paired["accuracy"][0].mean)
    first = content["paired"]["accuracy"][0]
    assert first["test"] == "sign-flip permutation" and first["p_value"] == 0.25 and first["exact"] is True


def test_six_seeds_of_one_sign_are_detected_and_five_cannot_be(tmp_path: Path) -> None:
    """One method against grpo: all-positive differences give p = 2 / 2^n, below 0.05 from 6 seeds on."""
    runs = []
    for seed in range(6):
        for method, accuracy in (("grpo", 0.40 + 0.01 * seed), ("egsw-step", 0.50 + 0.02 * seed)):
            folder = write_run(tmp_path / method / f"seed-{seed}", curve("grpo", seed % 3), accuracy=accuracy)
            runs.append(RunOutcome(method, seed, folder, "finished"))
    paired = summarize_comparison(runs).paired["accuracy"][0]
    assert paired.n == 6 and paired.p_value == pytest.approx(2 / 64) and paired.p_holm == paired.p_value
    assert is_detected(paired)
    text = write_comparison_report(runs, tmp_path / "six", n_bootstrap=500, title="t", command="c").read_text()
    assert "Held-out accuracy: differs from `grpo` for `egsw-step` +12.5 pp" in text
    assert "out of reach" not in text
    five = [run for run in runs if run.seed < 5]
    paired = summarize_comparison(five).paired["accuracy"][0]
    assert paired.p_value == pytest.approx(2 / 32) and not is_detected(paired)
    text = write_comparison_report(five, tmp_path / "five", n_bootstrap=500, title="t", command="c").read_text()
    assert "With 5 paired seeds the exact sign-flip test cannot give a p below 0.0625 " in text
    assert "Holm's correction" not in text and "That takes at least 6 paired seeds." in text


def test_terminal_table_names_every_method(summary: ComparisonSummary) -> None:
    table = format_summary_table(summary)
    for method in summary.methods:
        assert method in table
    assert "0.875" in table


def test_missing_baseline_is_reported_without_pairs(comparison_runs: list[RunOutcome], tmp_path: Path) -> None:
    runs = [run for run in comparison_runs if run.method != "grpo"]
    report = write_comparison_report(runs, tmp_path, n_bootstrap=200, title="No baseline", command="egsw compare")
    text = report.read_text()
    assert "no finished run of the baseline `grpo`" in text
    assert "n/a: there is no finished `grpo` run" in text
    content = json.loads((tmp_path / "summary.json").read_text())
    assert content["baseline_present"] is False and content["threshold"] is None and content["paired"] == {}


def test_all_failed_runs_still_give_a_report(tmp_path: Path) -> None:
    runs = [RunOutcome(m, s, tmp_path / m / str(s), "failed", "crashed") for m in ("grpo", "egsw-step") for s in (0, 1)]
    report = write_comparison_report(runs, tmp_path / "out", n_bootstrap=100, title="Nothing", command="egsw compare")
    assert "crashed" in report.read_text()
    assert (tmp_path / "out" / "figures" / "reward.png").stat().st_size > 0
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["methods"] == ["grpo", "egsw-step"]


def test_two_same_signed_seeds_are_not_called_a_detected_difference() -> None:
    """Two same-signed differences: the exact sign-flip p is 0.5 whatever their size, and the t-interval holds 0.

    The paired bootstrap this replaced gave p ~ 1/B here; should a p below 0.05 reach the rule anyway,
    the t-interval must still exclude 0.
    """
    from egsw.stats import bootstrap_mean, paired_permutation_test, t_interval
    from egsw.study.runs_data import PairedComparison

    differences = [0.01, 0.10]
    mean, low, high = bootstrap_mean(differences, n_bootstrap=2000, rng_seed=0)
    test = paired_permutation_test(differences)
    _, t_low, t_high = t_interval(differences)
    assert test["p_value"] == 0.5 and t_low < 0 < t_high

    def comparison(p_value: float, t_low: float, t_high: float) -> PairedComparison:
        return PairedComparison(
            "egsw-step", "accuracy", 2, [0, 1], mean, low, high, p_value, p_value, t_low, t_high, 2, 0,
            test["test"], test["exact"], test["smallest_p"],
        )  # fmt: skip

    assert not is_detected(comparison(test["p_value"], t_low, t_high))
    assert not is_detected(comparison(0.001, t_low, t_high))
    assert is_detected(comparison(0.001, 0.02, 0.09))
