"""``egsw compare`` and ``egsw sweep``: refusals before any run, independent runs, reuse, failures, the report."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from egsw.study.methods import METHOD_OPTIONS, METHODS, parse_methods
from egsw.study.plans import PlannedRun, check_common_options, method_plan
from egsw.study.runner import option_differences
from tests.helpers import run_egsw

# A few-step run of the random testbed: every part of the pipeline, in seconds.
TINY = [
    "--heldout_size", "8", "--eval_max_new_tokens", "8", "--max_completion_length", "8",
    "--per_device_train_batch_size", "8", "--num_generations", "4", "--max_steps", "2", "--save_steps", "1",
]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--methods", "grpo,ppo"], "unknown method(s) ['ppo']"),
        (["--methods", "grpo,grpo"], "grpo listed twice"),
        (["--seed", "3"], "--seed is set for each run by egsw compare"),
        (["--output_dir", "x"], "--output_dir is set for each run"),
        (["--egsw_mode", "step"], "--egsw_mode is set by each method of egsw compare"),
        (["--seeds", "0,0"], "--seeds takes a count (3) or distinct seeds"),
        (["--seeds", "0"], "--seeds must be at least 1"),
        (["--jobs", "0"], "--jobs must be at least 1"),
        (["--max_stepz", "3"], "grpo seed 0: unknown option(s) --max_stepz 3"),
        (["--model", "./no/such/model"], "grpo seed 0: unknown model './no/such/model'"),
        (["--learning_rate", "fast"], "grpo seed 0:"),
    ],
)
def test_bad_input_is_refused_in_one_line_before_any_run(
    tmp_path: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from egsw.cli import main  # in-process: the same code path as the command, without a start-up per case

    output = tmp_path / "cmp"
    base = ["compare", "--model", "tiny-random", "--methods", "grpo,egsw-step", "--seeds", "2", "--output", str(output)]
    status = main([*base, *args])
    stderr = capsys.readouterr().err
    assert status == 2, stderr
    assert stderr.count("\n") == 1 and message in stderr, stderr
    assert not output.exists()  # nothing started, nothing written


def test_sweep_refuses_the_options_it_sweeps(tmp_path: Path) -> None:
    result = run_egsw("sweep", "--output", str(tmp_path / "s"), "--egsw_alpha", "0.3", timeout=60)
    assert result.returncode == 2 and "--egsw_alpha is set by each method of egsw sweep" in result.stderr
    result = run_egsw("sweep", "--output", str(tmp_path / "s"), "--temperatures", "1,0", timeout=60)
    assert result.returncode == 2 and "--temperatures takes distinct finite numbers > 0" in result.stderr


def test_methods_registry_and_plan() -> None:
    assert [m.name for m in parse_methods("grpo, egsw-step")] == ["grpo", "egsw-step"]
    assert set(METHODS) == {
        "grpo", "egsw-step", "egsw-trajectory", "egsw-step-p2", "egsw-auto",
        "entropy-bonus", "high-entropy-tokens", "entropy-advantage", "clip-cov", "kl-cov",
    }  # fmt: skip
    assert {"egsw_mode", "entropy_coef", "top_entropy_quantile", "entropy_advantage_beta", "policy_loss_variant"} <= (
        METHOD_OPTIONS
    )
    runs = method_plan(parse_methods("grpo,egsw-step"), [0, 1], Path("out"), ["--max_steps", "3"])
    assert [(r.label, r.seed) for r in runs] == [("grpo", 0), ("egsw-step", 0), ("grpo", 1), ("egsw-step", 1)]
    assert runs[1].argv == (
        "--max_steps", "3", "--egsw_mode", "step", "--seed", "0", "--output_dir", str(Path("out/egsw-step/seed-0")),
    )  # fmt: skip
    with pytest.raises(ValueError, match="--top_entropy_quantile is set by each method"):
        check_common_options(["--top_entropy_quantile=0.5"], METHOD_OPTIONS, "egsw compare")
    assert option_differences({"seed": 1, "learning_rate": 1e-5}, {"seed": 2, "learning_rate": 2e-5}) == [
        "learning_rate: 1e-05 -> 2e-05"
    ]


@pytest.mark.slow
def test_compare_runs_reports_reuses_and_survives_a_failed_run(tmp_path: Path) -> None:
    """Four runs in parallel, one of which fails: reported, not fatal; the second call reuses what finished."""
    output = tmp_path / "cmp"
    (output / "egsw-step").mkdir(parents=True)
    (output / "egsw-step" / "seed-1").write_text("a file where the run's folder should be")  # this run must fail
    args = ["compare", "--model", "tiny-random", "--methods", "grpo,egsw-step", "--seeds", "2", "--output", str(output)]
    started = time.monotonic()
    result = run_egsw(*args, "--jobs", "2", *TINY, timeout=300)
    assert result.returncode == 1, result.stdout + result.stderr  # some run failed
    assert "egsw-step seed 1 failed: exit status 2: egsw train: error: output folder" in result.stderr
    for method, seed in (("grpo", 0), ("egsw-step", 0), ("grpo", 1)):
        folder = output / method / f"seed-{seed}"
        assert (folder / "model").is_dir() and (folder / "metrics.jsonl").is_file()
        assert not list(folder.glob("checkpoint-*"))  # removed once the run finished
        assert json.loads((folder / "eval.json").read_text())["after"]["num_problems"] == 8
    report = (output / "report.md").read_text()
    assert "egsw-step" in report and "grpo" in report and "failed" in report
    assert (output / "figures" / "reward.png").stat().st_size > 1000
    plan = json.loads((output / "plan.json").read_text())
    assert len(plan["runs"]) == 4 and plan["command"].startswith("egsw compare")
    first_seconds = time.monotonic() - started

    # Again, with the obstacle gone: the three finished runs are reused, only the failed one runs.
    (output / "egsw-step" / "seed-1").unlink()
    result = run_egsw(*args, *TINY, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 runs, 3 already finished (reused), 1 to run" in result.stdout
    assert (output / "egsw-step" / "seed-1" / "model").is_dir()
    summary = json.loads((output / "summary.json").read_text())
    assert summary and first_seconds < 300

    # A changed option would silently mix two experiments in one report: refused, nothing touched.
    result = run_egsw(*args, *TINY, "--learning_rate", "0.5", timeout=120)
    assert result.returncode == 2 and "holds a run with other options (learning_rate" in result.stderr


def test_dry_run_lists_what_would_be_reused_and_run(tmp_path: Path) -> None:
    output = tmp_path / "cmp"
    result = run_egsw("compare", "--model", "tiny-random", "--methods", "grpo,entropy-advantage", "--seeds", "1",
                      "--output", str(output), "--dry-run", *TINY, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("run      grpo seed 0: egsw train --model_name_or_path tiny-random")
    assert "--entropy_advantage_beta 0.4" in lines[1] and not output.exists()


def test_planned_run_log_names_are_file_names() -> None:
    run = PlannedRun("step a=0.1 P=1", 3, Path("x"), ())
    assert run.log_name == "step_a=0.1_P=1-seed3.log"


@pytest.mark.slow
def test_compare_on_tiny_arith_two_methods_two_seeds_few_steps(tmp_path: Path) -> None:
    """The issue's small version of the real thing: the testbed model, two methods, two seeds, a few steps."""
    output = tmp_path / "cmp"
    started = time.monotonic()
    result = run_egsw(
        "compare", "--model", "tiny-arith", "--methods", "grpo,egsw-step", "--seeds", "2", "--jobs", "2",
        "--output", str(output), "--max_steps", "6", "--heldout_size", "100",
        timeout=300,
    )  # fmt: skip
    seconds = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((output / "summary.json").read_text())
    assert summary["methods"] == ["grpo", "egsw-step"]
    for method in ("grpo", "egsw-step"):
        assert summary["method_summaries"][method]["n_finished"] == 2
        accuracy = summary["method_summaries"][method]["accuracy"]["mean"]
        assert 0.0 < accuracy < 1.0  # the testbed answers some held-out problems and misses some
    paired = summary["paired"]["accuracy"][0]
    assert paired["method"] == "egsw-step" and paired["n"] == 2
    assert 0.05 < summary["base_model"]["accuracy"] < 0.95  # room to learn
    report = (output / "report.md").read_text()
    assert "What the data supports" in report and "egsw compare --model tiny-arith" in report
    for figure in ("reward.png", "completion_length.png", "accuracy.png"):
        assert (output / "figures" / figure).stat().st_size > 1000
    print(f"tiny-arith compare, 2 methods x 2 seeds x 6 steps: {seconds:.0f} s")


@pytest.mark.slow
def test_sweep_runs_a_grid_and_draws_heatmaps(tmp_path: Path) -> None:
    output = tmp_path / "sweep"
    result = run_egsw(
        "sweep", "--model", "tiny-random", "--alphas", "0,0.5", "--temperatures", "1", "--modes", "step",
        "--seeds", "1", "--jobs", "2", "--output", str(output), *TINY,
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 runs, 0 already finished (reused), 3 to run" in result.stdout
    for folder in ("grpo/seed-0", "step/alpha-0_P-1/seed-0", "step/alpha-0.5_P-1/seed-0"):
        assert (output / folder / "model").is_dir(), folder
    config = (output / "step" / "alpha-0.5_P-1" / "seed-0" / "config.yaml").read_text()
    assert "egsw_alpha: 0.5" in config and "egsw_temperature: 1.0" in config
    for measure in ("final_reward", "accuracy"):
        assert (output / "figures" / f"sweep-step-{measure}.png").stat().st_size > 1000
    assert "step a=0.5 P=1" in (output / "report.md").read_text()
