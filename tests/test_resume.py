"""`egsw train --resume`: a run killed mid-training continues to the same parameters and metrics as one never stopped.

Deterministic CPU settings (tiny random model, fp32, no evaluation); an entropy bonus gives every step a
gradient even though the random model never earns a reward, so a resume that replayed any step differently
(data, sampling, optimiser, learning rate) would end with other parameters.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from egsw.models import resolve_model
from egsw.run.checkpoints import (
    CHECKPOINT_COMPLETE,
    finish_checkpoint,
    is_complete_checkpoint,
    last_complete_checkpoint,
    rotate_checkpoints,
)
from egsw.run.run_folder import truncate_metrics
from tests.helpers import run_egsw

pytestmark = pytest.mark.slow

MAX_STEPS = 10
RUN = [
    "--model_name_or_path", "tiny-random", "--eval_before", "false", "--eval_after", "false", "--bf16", "false",
    "--max_completion_length", "8", "--per_device_train_batch_size", "8", "--num_generations", "4",
    "--entropy_coef", "0.05", "--learning_rate", "1e-3", "--max_steps", str(MAX_STEPS),
    "--save_steps", "2", "--save_total_limit", "1", "--report_to", "none",
]  # fmt: skip
# Wall-clock figures, and the trainer's averages over the steps this process ran (HF's train_loss).
UNTIMED = {"step_time", "train_runtime", "train_samples_per_second", "train_steps_per_second", "train_loss"}


def egsw_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "egsw.cli", "train", *args]


def environment() -> dict[str, str]:
    return os.environ | {"TOKENIZERS_PARALLELISM": "false"}


def egsw(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_egsw("train", *args, cwd=cwd)


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def comparable(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in record.items() if k not in UNTIMED} for record in records]


def final_parameters(run: Path) -> dict[str, torch.Tensor]:
    return load_file(run / "model" / "model.safetensors")


def assert_same_run(resumed: Path, reference: Path) -> None:
    expected, got = final_parameters(reference), final_parameters(resumed)
    assert expected.keys() == got.keys()
    for name in expected:
        assert torch.equal(expected[name], got[name]), name
    got_metrics, expected_metrics = comparable(metrics(resumed)), comparable(metrics(reference))
    differences = [
        (a.get("step"), key, a.get(key), b.get(key))
        for a, b in zip(got_metrics, expected_metrics, strict=False)
        for key in sorted(a.keys() | b.keys())
        if a.get(key) != b.get(key)
    ]
    assert not differences, f"(step, metric, resumed, uninterrupted): {differences[:10]}"
    assert len(got_metrics) == len(expected_metrics)
    assert [m["step"] for m in metrics(resumed) if "loss" in m] == list(range(1, MAX_STEPS + 1))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference: the same run, never stopped."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    result = egsw(*RUN, "--output_dir", "run", cwd=folder)
    assert result.returncode == 0, result.stderr[-3000:]
    run = folder / "run"
    start = load_file(Path(resolve_model("tiny-random").path) / "model.safetensors")
    trained = final_parameters(run)
    assert any(not torch.equal(start[name], trained[name]) for name in start), "the run must move the parameters"
    return run


def start_and_stop(folder: Path, stop: signal.Signals, after_step: int) -> subprocess.Popen[str]:
    """Start the run and send ``stop`` once ``after_step`` is logged and a checkpoint before it is complete."""
    process = subprocess.Popen(
        egsw_command(*RUN, "--output_dir", "run"), cwd=folder, env=environment(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    run = folder / "run"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        logged = [m["step"] for m in metrics(run)] if (run / "metrics.jsonl").exists() else []
        checkpoint = last_complete_checkpoint(run) if run.exists() else None
        if checkpoint is not None and logged and max(logged) >= after_step:
            process.send_signal(stop)
            break
        time.sleep(0.05)
    assert process.returncode is None or process.returncode < 0 or process.returncode in (130, 143), "too early"
    process.communicate(timeout=120)
    return process


def test_sigkill_mid_training_then_resume_ends_like_an_uninterrupted_run(uninterrupted: Path, tmp_path: Path) -> None:
    process = start_and_stop(tmp_path, signal.SIGKILL, after_step=5)
    assert process.returncode == -signal.SIGKILL
    run = tmp_path / "run"
    assert not (run / "model").exists()
    last = last_complete_checkpoint(run)
    assert last is not None
    killed_at = max(m["step"] for m in metrics(run))
    assert killed_at > int(last.name.split("-")[1]), "metrics were logged after the checkpoint"

    # A checkpoint that was being written when the process died: every file there, but cut short and unmarked.
    half = run / "checkpoint-9"
    shutil.copytree(last, half)
    (half / CHECKPOINT_COMPLETE).unlink()
    state = json.loads((half / "trainer_state.json").read_text())
    (half / "trainer_state.json").write_text(json.dumps(state | {"global_step": 9}))
    weights = (half / "model.safetensors").read_bytes()
    (half / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    assert not is_complete_checkpoint(half) and last_complete_checkpoint(run) == last

    resumed = egsw("--resume", "--output_dir", "run", cwd=tmp_path)  # the options come from run/config.yaml
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from run/{last.name}" in resumed.stderr
    assert_same_run(run, uninterrupted)
    assert [path.name for path in run.glob("checkpoint-*")] == [f"checkpoint-{MAX_STEPS}"]


def test_ctrl_c_then_resume_ends_like_an_uninterrupted_run(uninterrupted: Path, tmp_path: Path) -> None:
    process = start_and_stop(tmp_path, signal.SIGINT, after_step=3)
    assert process.returncode == 130
    run = tmp_path / "run"
    last = last_complete_checkpoint(run)
    assert last is not None and int(last.name.split("-")[1]) == max(m["step"] for m in metrics(run))

    resumed = egsw("--config", str(run / "config.yaml"), "--resume", "--output_dir", "run", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_run(run, uninterrupted)


def test_sigterm_finishes_the_step_saves_and_resume_auto_ends_like_an_uninterrupted_run(
    uninterrupted: Path, tmp_path: Path
) -> None:
    process = start_and_stop(tmp_path, signal.SIGTERM, after_step=3)
    assert process.returncode == 143
    run = tmp_path / "run"
    last = last_complete_checkpoint(run)
    logged = max(m["step"] for m in metrics(run))
    assert last is not None and int(last.name.split("-")[1]) == logged, "the step in flight finished and was saved"
    assert not (run / "model").exists()

    # The same command line serves the first start and every requeue.
    resumed = egsw(*RUN, "--output_dir", "run", "--resume", "auto", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from run/{last.name}" in resumed.stderr
    assert_same_run(run, uninterrupted)
    again = egsw(*RUN, "--output_dir", "run", "--resume", "auto", cwd=tmp_path)
    assert again.returncode == 0 and "has finished" in again.stdout


ENOSPC_AT_STEP = 6
# Runs egsw train with every write of an optimizer state failing with ENOSPC from step ENOSPC_AT_STEP on.
FULL_DISK_DRIVER = f"""
import errno, sys
import transformers
from egsw.cli import main
save = transformers.Trainer._save_optimizer_and_scheduler
def full_disk(self, output_dir):
    if self.state.global_step >= {ENOSPC_AT_STEP}:
        raise OSError(errno.ENOSPC, "No space left on device", output_dir)
    return save(self, output_dir)
transformers.Trainer._save_optimizer_and_scheduler = full_disk
sys.exit(main(["train", *sys.argv[1:]]))
"""


def test_a_full_disk_keeps_the_last_complete_checkpoint_and_resume_ends_like_an_uninterrupted_run(
    uninterrupted: Path, tmp_path: Path
) -> None:
    full = subprocess.run(
        [sys.executable, "-c", FULL_DISK_DRIVER, *RUN, "--output_dir", "run"],
        cwd=tmp_path, env=environment(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert full.returncode == 1, full.stderr[-3000:]
    error_lines = [line for line in full.stderr.splitlines() if line.startswith("egsw train: error:")]
    assert len(error_lines) == 1 and "Traceback" not in full.stderr, full.stderr[-3000:]
    assert "writing the run in run failed (No space left on device" in error_lines[0]
    last = last_complete_checkpoint(tmp_path / "run")
    assert last is not None and last.name == f"checkpoint-{ENOSPC_AT_STEP - 2}" and last.name in error_lines[0]
    assert not is_complete_checkpoint(tmp_path / "run" / f"checkpoint-{ENOSPC_AT_STEP}")

    resumed = egsw(*RUN, "--output_dir", "run", "--resume", "auto", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_run(tmp_path / "run", uninterrupted)


def test_a_second_run_on_a_live_runs_folder_is_refused_and_a_dead_runs_lock_is_taken_over(tmp_path: Path) -> None:
    long_run = [*RUN, "--max_steps", "10000"]  # still training when it is killed
    first = subprocess.Popen(
        egsw_command(*long_run, "--output_dir", "run"), cwd=tmp_path, env=environment(),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    lock = tmp_path / "run" / ".egsw-lock"
    deadline = time.monotonic() + 120
    while not (lock.exists() and lock.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    second = egsw(*long_run, "--output_dir", "run", "--resume", "auto", cwd=tmp_path)
    assert first.poll() is None, "the first run must still be live"
    assert second.returncode == 2, second.stderr[-2000:]
    assert f"is in use by a live run (pid {first.pid} on host" in second.stderr
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=60)
    assert lock.exists()  # left behind by the killed run: nobody holds it any more

    taken_over = egsw(*RUN, "--output_dir", "run", "--resume", "auto", "--max_steps", "2", cwd=tmp_path)
    assert taken_over.returncode == 0, taken_over.stderr[-3000:]
    assert json.loads(lock.read_text())["pid"] != first.pid  # the lock now names the run that took it over


# ---- refusals and the pieces, without training ------------------------------------------------------------


def test_resume_refusals_are_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from egsw.cli import main

    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    cases = [
        (["--resume"], "--resume needs --output_dir"),
        (["--resume", "--output_dir", "nowhere"], "holds no run (config.yaml is missing)"),
    ]
    (run / "config.yaml").write_text("model_name_or_path: tiny-random\n")
    (run / "checkpoint-3").mkdir()
    (run / "checkpoint-3" / "trainer_state.json").write_text('{"global_step": 3}')
    cases.append((["--resume", "--output_dir", "run"], "no complete checkpoint (checkpoint-3 (incomplete))"))
    cases.append((["--resume", "--output_dir", "run", "--overwrite"], "pass one"))
    for args, message in cases:
        status = main(["train", *args])
        lines = capsys.readouterr().err.strip().splitlines()
        assert status == 2 and len(lines) == 1 and message in lines[0], (args, lines)
    (run / "model").mkdir()
    assert main(["train", "--resume", "--output_dir", "run"]) == 2
    assert "has finished" in capsys.readouterr().err


def make_checkpoint(run: Path, step: int, complete: bool) -> Path:
    folder = run / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    if complete:
        (folder / CHECKPOINT_COMPLETE).write_text("{}")
    return folder


def test_completeness_needs_the_marker_and_the_matching_state(tmp_path: Path) -> None:
    good = make_checkpoint(tmp_path, 4, complete=True)
    unmarked = make_checkpoint(tmp_path, 6, complete=False)
    mismatched = make_checkpoint(tmp_path, 8, complete=True)
    (mismatched / "trainer_state.json").write_text(json.dumps({"global_step": 7}))
    assert is_complete_checkpoint(good)
    assert not is_complete_checkpoint(unmarked) and not is_complete_checkpoint(mismatched)
    assert last_complete_checkpoint(tmp_path) == good


def test_rotation_keeps_a_complete_checkpoint_at_every_moment(tmp_path: Path) -> None:
    for step, complete in ((2, True), (4, False), (6, True), (8, True), (10, False)):
        make_checkpoint(tmp_path, step, complete)
    rotate_checkpoints(tmp_path, keep=1)
    # The newest complete one stays; older ones go, complete or not; the unmarked newer one is left alone.
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*")) == ["checkpoint-10", "checkpoint-8"]


def test_marker_is_written_after_the_checkpoint_and_before_rotation(tmp_path: Path) -> None:
    from types import SimpleNamespace

    make_checkpoint(tmp_path, 2, complete=True)
    make_checkpoint(tmp_path, 4, complete=False)  # just written by the Trainer
    args = SimpleNamespace(output_dir=str(tmp_path), save_on_each_node=False)
    state = SimpleNamespace(global_step=4, is_world_process_zero=True, is_local_process_zero=True)
    finish_checkpoint(args, state, keep=1)
    assert [p.name for p in tmp_path.glob("checkpoint-*")] == ["checkpoint-4"]
    assert is_complete_checkpoint(tmp_path / "checkpoint-4")


def test_metrics_are_cut_back_to_the_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    lines = [json.dumps({"step": step, "loss": step / 10}) for step in range(1, 6)]
    path.write_text("\n".join(lines) + '\n{"step": 6, "lo')  # the last line cut off by the kill
    assert truncate_metrics(path, 3) == 3
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [1, 2, 3]
