"""A study's results kept as data: copied and committed as runs finish, reused on any machine, reported alone."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from egsw.study.results import commit_results, has_results, record_results, results_folder, study_outcomes
from tests.helpers import run_egsw
from tests.test_compare_cli import TINY


def _fake_run(folder: Path, *, interrupted: bool = False) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text("seed: 0\n")
    (folder / "eval.json").write_text(json.dumps({"interrupted": interrupted, "after": {"accuracy": 0.5}}))
    (folder / "metrics.jsonl").write_text(json.dumps({"step": 1, "reward": 0.25}) + "\n")
    (folder / "model").mkdir()
    (folder / "model" / "model.safetensors").write_bytes(b"weights are never kept")
    return folder


def _git_repository(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for command in (["init", "-q"], ["config", "user.email", "t@example.com"], ["config", "user.name", "t"]):
        subprocess.run(["git", *command], cwd=path, check=True)
    return path


def test_record_copies_the_small_files_only(tmp_path: Path) -> None:
    run = _fake_run(tmp_path / "runs" / "grpo" / "seed-3")
    destination = results_folder(run, tmp_path / "runs", tmp_path / "results" / "study")
    assert destination == tmp_path / "results" / "study" / "grpo" / "seed-3"
    record_results(run, destination)
    assert sorted(p.name for p in destination.iterdir()) == ["config.yaml", "eval.json", "metrics.jsonl"]
    assert has_results(destination)
    assert not has_results(record_results(_fake_run(tmp_path / "i", interrupted=True), tmp_path / "kept-i"))


def test_commit_results_commits_that_folder_alone(tmp_path: Path) -> None:
    repository = _git_repository(tmp_path / "repo")
    (repository / "staged.txt").write_text("someone else's change")
    subprocess.run(["git", "add", "staged.txt"], cwd=repository, check=True)
    destination = record_results(_fake_run(tmp_path / "run"), repository / "results" / "s" / "grpo" / "seed-0")
    commit_results(destination, "results: s grpo seed 0")
    shown = subprocess.run(
        ["git", "show", "--name-only", "--format=%s", "HEAD"], cwd=repository, capture_output=True, text=True
    ).stdout.split()
    assert shown[:4] == ["results:", "s", "grpo", "seed"]
    assert "results/s/grpo/seed-0/eval.json" in shown and "staged.txt" not in shown
    status = subprocess.run(["git", "status", "--short"], cwd=repository, capture_output=True, text=True).stdout
    assert status.strip() == "A  staged.txt"  # still staged, not committed


def test_commit_outside_a_repository_is_one_clear_error(tmp_path: Path) -> None:
    destination = record_results(_fake_run(tmp_path / "run"), tmp_path / "results" / "grpo" / "seed-0")
    with pytest.raises(ValueError, match="git rev-parse in .* failed: fatal: not a git repository"):
        commit_results(destination, "m")


def test_study_outcomes_reads_methods_in_plan_order_and_names_what_is_missing(tmp_path: Path) -> None:
    results = tmp_path / "study"
    for method in ("egsw-step", "grpo"):
        for seed in (0, 1):
            record_results(_fake_run(tmp_path / method / f"seed-{seed}"), results / method / f"seed-{seed}")
    (results / "egsw-step" / "seed-1" / "metrics.jsonl").unlink()
    (results / "plan.json").write_text(json.dumps({"runs": [{"label": "grpo"}, {"label": "egsw-step"}]}))
    outcomes = study_outcomes(results)
    assert [(o.method, o.seed, o.status) for o in outcomes] == [
        ("grpo", 0, "finished"), ("grpo", 1, "finished"), ("egsw-step", 0, "finished"), ("egsw-step", 1, "failed"),
    ]  # fmt: skip
    assert outcomes[-1].error == "missing metrics.jsonl"
    with pytest.raises(ValueError, match="holds no <method>/seed-<n>/ folders"):
        study_outcomes(tmp_path / "egsw-step" / "seed-0")


@pytest.mark.slow
def test_compare_keeps_commits_and_resumes_from_results_alone(tmp_path: Path) -> None:
    """Two runs kept and committed; then, without the run folders, nothing runs and the report is the same."""
    repository = _git_repository(tmp_path / "repo")
    results, output = repository / "results" / "study", tmp_path / "runs"
    args = ["compare", "--model", "tiny-random", "--methods", "grpo,egsw-step", "--seeds", "1", "--output",
            str(output), "--results", str(results), "--commit-results", *TINY]  # fmt: skip
    first = run_egsw(*args, timeout=300)
    assert first.returncode == 0, first.stdout + first.stderr
    log = subprocess.run(["git", "log", "--format=%s"], cwd=repository, capture_output=True, text=True).stdout
    assert sorted(log.splitlines()) == ["results: study egsw-step seed 0", "results: study grpo seed 0"]
    assert {p.name for p in (results / "grpo" / "seed-0").iterdir()} == {"config.yaml", "eval.json", "metrics.jsonl"}
    summary_first = json.loads((output / "summary.json").read_text())

    shutil.rmtree(output)  # another machine: only the repository's results
    again = run_egsw(*args, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "2 runs, 2 already finished (reused), 0 to run" in again.stdout
    assert not (output / "grpo" / "seed-0").exists()  # nothing trained

    report = run_egsw("report", str(results), timeout=120)
    assert report.returncode == 0, report.stdout + report.stderr
    summary = json.loads((results / "summary.json").read_text())
    for measure in ("accuracy", "final_reward"):
        assert summary["paired"][measure][0]["mean"] == pytest.approx(summary_first["paired"][measure][0]["mean"])
    assert (results / "report.md").is_file() and (results / "figures" / "reward.png").stat().st_size > 1000

    # A changed option would mix two experiments: refused, naming the results folder.
    changed = run_egsw(*args, "--learning_rate", "0.5", timeout=120)
    assert (
        changed.returncode == 2
        and "results/study/grpo/seed-0 holds a run with other options (learning_rate" in changed.stderr
    )


def test_the_base_model_is_read_from_an_egsw_eval_output_beside_the_runs(tmp_path: Path) -> None:
    from egsw.commands.report import study_base_model

    assert study_base_model(tmp_path) is None
    evaluation = tmp_path / "base-model" / "procedural"
    evaluation.mkdir(parents=True)
    (evaluation / "results.json").write_text(
        json.dumps(
            {"accuracy": 0.2, "accuracy_low": 0.15, "accuracy_high": 0.261, "mean_length": 38.8, "num_problems": 200}
        )  # fmt: skip
    )
    base = study_base_model(tmp_path)
    assert base is not None and (base.accuracy, base.low, base.num_problems) == (0.2, 0.15, 200)


def _planned_study(results: Path, runs: list[tuple[str, int]]) -> Path:
    results.mkdir(parents=True, exist_ok=True)
    plan = {"command": "egsw compare ...", "runs": [{"label": m, "seed": s, "argv": []} for m, s in runs]}
    (results / "plan.json").write_text(json.dumps(plan))
    return results


def test_report_waits_for_every_planned_run_and_progress_counts_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A pre-registered analysis is made once: with planned runs missing, the report is refused unless --interim."""
    from egsw.commands.report import main as report
    from egsw.errors import InputError

    planned = [("grpo", 1), ("egsw-step", 1), ("grpo", 2), ("egsw-step", 2)]
    results = _planned_study(tmp_path / "study", planned)
    for method, seed in planned[:3]:
        _fake_run(results / method / f"seed-{seed}")
    _fake_run(results / "grpo" / "seed-9", interrupted=True)  # a folder of an interrupted run counts as incomplete

    with pytest.raises(InputError, match=r"1 of 4 planned runs have no results yet \(next: egsw-step seed 2\)"):
        report([str(results)])
    assert not (results / "report.md").exists()

    assert report([str(results), "--progress"]) == 0
    progress = capsys.readouterr().out
    assert f"{results}: 3 of 4 planned runs have results" in progress
    assert [line.split() for line in progress.splitlines()[3:5]] == [
        ["grpo", "2/2", "0", "1"],
        ["egsw-step", "1/2", "0", "0"],
    ]
    assert "next: egsw-step seed 2" in progress
    assert not (results / "report.md").exists()  # counting writes nothing

    assert report([str(results), "--interim"]) == 0
    assert "Interim report: 3 of 4 planned runs have results" in capsys.readouterr().out
    assert "**Interim report**: 3 of 4 planned runs have results" in (results / "report.md").read_text()

    _fake_run(results / "egsw-step" / "seed-2")
    assert report([str(results)]) == 0
    assert "Interim" not in (results / "report.md").read_text()
