"""`egsw train`: input refused before any model loads, the output folder's contents, Ctrl-C, the recipe file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from egsw.run.recipes import DEFAULT_RECIPE, MODEL_RECIPES, RECIPE_FILES, TINY_ARITH_RECIPE
from tests.helpers import run_egsw

ROOT = Path(__file__).resolve().parents[1]
FAST = [
    "--model_name_or_path", "tiny-random", "--heldout_size", "8", "--eval_max_new_tokens", "8",
    "--max_completion_length", "8", "--per_device_train_batch_size", "8", "--num_generations", "4",
]  # fmt: skip


def egsw(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_egsw(*args, cwd=cwd, timeout=300)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model_name_or_path", "./no/such/model"], "unknown model './no/such/model'"),
        (["--no_such_option", "3"], "unknown option(s) --no_such_option 3"),
        (["--config", "{config}"], "unknown option(s) no_such_key in"),
        (["--egsw_temperature", "-1"], "egsw_temperature must be a finite number > 0 or 'auto'"),
        (["--output_dir", "{a_file}/run"], "is not writable"),
        (["--dry_run", "maybe"], "--dry-run: Truthy value expected: got maybe"),
        (["--dry-run=maybe"], "Truthy value expected: got maybe"),
        (["--resume", "perhaps", "--output_dir", "x"], "--resume takes true, false or auto; got 'perhaps'"),
        (["--egsw_rescale", "sometimes", "--dry_run"], "Truthy value expected: got sometimes"),
        (["--policy_loss_variant", "klcov"], "invalid choice: 'klcov'"),
        (["--policy_loss_variant", "kl_cov", "--loss_type", "cispo"], "use loss_type grpo, bnpo, dr_grpo, dapo, luspo"),
    ],
)
def test_bad_input_is_one_line_and_status_2_before_loading(args: list[str], message: str, tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("learning_rate: 1.0e-5\nno_such_key: 3\n")
    a_file = tmp_path / "a-file"  # a folder inside a file cannot be created, even by root
    a_file.write_text("")
    args = [a.format(config=config, a_file=a_file) for a in args]
    started = time.monotonic()
    result = egsw("train", *args, cwd=tmp_path)
    assert time.monotonic() - started < 20
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("egsw train: error: ") and message in lines[0]
    assert "Loading weights" not in result.stdout + result.stderr


@pytest.mark.parametrize("spelling", [["--dry_run"], ["--dry-run", "true"], ["--dry_run=yes"], ["--dry-run", "1"]])
def test_every_true_spelling_of_dry_run_is_a_dry_run(spelling: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from egsw.cli import main

    assert main(["train", "--model_name_or_path", "tiny-random", *spelling]) == 0
    assert "egsw train --dry-run: nothing loaded, nothing written" in capsys.readouterr().out


@pytest.mark.slow
def test_train_fills_the_output_folder_and_refuses_to_overwrite_it(tmp_path: Path) -> None:
    result = egsw("train", *FAST, "--max_steps", "2", "--output_dir", "run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    run = tmp_path / "run"
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [m for m in metrics if "reward" in m]
    assert [m["step"] for m in steps] == [1, 2]
    for key in ("reward", "completions/mean_length", "entropy", "egsw/ess", "egsw/weight_max", "egsw/temperature"):
        assert all(key in m for m in steps), key
    evaluation = json.loads((run / "eval.json").read_text())
    for when in ("before", "after"):
        assert evaluation[when]["num_problems"] == 8
        assert (
            0 <= evaluation[when]["accuracy_low"] <= evaluation[when]["accuracy"] <= evaluation[when]["accuracy_high"]
        )
        assert evaluation[when]["mean_length"] > 0
    assert set(evaluation["difference"]) >= {"mean", "low", "high", "p_value"}
    assert (run / "model" / "model.safetensors").exists()
    assert (run / "plots" / "reward.png").stat().st_size > 1000
    assert (run / "plots" / "completion_length.png").stat().st_size > 1000
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert yaml.safe_load((run / "config.yaml").read_text())["max_steps"] == 2
    assert "held-out accuracy (8 problems" in result.stdout and "->" in result.stdout

    again = egsw("train", *FAST, "--max_steps", "1", "--output_dir", "run", cwd=tmp_path)
    assert again.returncode == 2 and "already holds a run" in again.stderr and "--overwrite" in again.stderr
    assert len((run / "metrics.jsonl").read_text().splitlines()) == len(metrics)

    replaced = egsw("train", *FAST, "--max_steps", "1", "--output_dir", "run", "--overwrite", cwd=tmp_path)
    assert replaced.returncode == 0, replaced.stderr[-2000:]
    assert [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()][0] == 1
    assert not (run / "checkpoint-2").exists()


@pytest.mark.slow
def test_ctrl_c_leaves_metrics_and_a_checkpoint(tmp_path: Path) -> None:
    """SIGINT saves and exits 130, even when inherited ignored (a shell's background job: `cmd &`, nohup)."""
    env = os.environ | {"TOKENIZERS_PARALLELISM": "false"}
    process = subprocess.Popen(
        [sys.executable, "-m", "egsw.cli", "train", *FAST, "--max_steps", "10000", "--eval_before", "false",
         "--save_steps", "100000", "--output_dir", "run"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )  # fmt: skip
    metrics = tmp_path / "run" / "metrics.jsonl"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 3:
            break
        time.sleep(0.5)
    assert process.poll() is None, process.communicate()[1][-2000:]
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr[-2000:]
    logged_steps = [json.loads(line)["step"] for line in metrics.read_text().splitlines()]
    assert len(logged_steps) >= 3
    checkpoints = sorted((tmp_path / "run").glob("checkpoint-*"))
    assert len(checkpoints) == 1
    step = int(checkpoints[0].name.split("-")[1])
    assert step >= max(logged_steps)
    for name in ("model.safetensors", "optimizer.pt", "trainer_state.json", "rng_state.pth"):
        assert (checkpoints[0] / name).exists(), name
    assert json.loads((checkpoints[0] / "trainer_state.json").read_text())["global_step"] == step
    assert json.loads((tmp_path / "run" / "eval.json").read_text())["interrupted"] is True
    assert (tmp_path / "run" / "plots" / "reward.png").exists()
    assert "interrupted" in stdout


@pytest.mark.parametrize("model", sorted(MODEL_RECIPES))
def test_recipe_files_match_the_built_in_recipes(model: str) -> None:
    recipe = yaml.safe_load((ROOT / RECIPE_FILES[model]).read_text())
    assert recipe == MODEL_RECIPES[model]
    assert recipe["model_name_or_path"] == model


@pytest.mark.parametrize(
    ("argv", "recipe"), [([], DEFAULT_RECIPE), (["--model_name_or_path", "tiny-arith"], TINY_ARITH_RECIPE)]
)
def test_every_recipe_value_reaches_the_parsed_run(argv: list[str], recipe: dict[str, object]) -> None:
    """With no other option, the run's resolved options (its config.yaml) hold every value of the recipe."""
    from egsw.run.options import parse
    from egsw.run.run_folder import resolved_options

    parsed = parse(argv)
    resolved = resolved_options(parsed.script, parsed.training, parsed.model)
    assert {key: resolved[key] for key in recipe} == recipe


def test_a_built_in_model_brings_its_recipe_and_options_still_override_it() -> None:
    from egsw.run.options import parse

    training_args = parse(["--model_name_or_path", "tiny-arith", "--max_steps", "7"]).training
    assert training_args.learning_rate == TINY_ARITH_RECIPE["learning_rate"] != DEFAULT_RECIPE["learning_rate"]
    assert training_args.max_steps == 7
    training_args = parse(["--model_name_or_path", "some-org/some-model"]).training
    assert training_args.learning_rate == DEFAULT_RECIPE["learning_rate"]


def test_recipe_file_loads_through_the_command_line_parser() -> None:
    from egsw.run.options import parse

    parsed = parse(
        ["--config", str(ROOT / "configs" / "smollm2-cpu.yaml"), "--max_steps", "3", "--egsw_temperature", "auto"]
    )
    model_args, script_args, training_args = parsed.model, parsed.script, parsed.training
    assert model_args.model_name_or_path == DEFAULT_RECIPE["model_name_or_path"]
    assert training_args.max_steps == 3 and training_args.egsw_temperature == "auto"
    assert training_args.learning_rate == DEFAULT_RECIPE["learning_rate"]
    assert script_args.task == "procedural"


def test_emulated_bf16_on_a_cpu_is_a_note(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from egsw.run import checks
    from egsw.run.options import parse

    flags = tmp_path / "cpuinfo"
    flags.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f\n")
    assert not checks.cpu_has_native_bf16(flags)
    flags.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16\n")
    assert checks.cpu_has_native_bf16(flags)
    assert checks.cpu_has_native_bf16(tmp_path / "absent")  # cannot tell: no note

    argv = ["--model_name_or_path", "tiny-random", "--output_dir", str(tmp_path / "run")]
    monkeypatch.setattr(checks, "cpu_has_native_bf16", lambda: False)
    note = checks.emulated_bf16_note(parse([*argv, "--bf16", "true"]).training)
    assert note is not None and "emulated" in note and "--bf16 false" in note
    assert checks.emulated_bf16_note(parse([*argv, "--bf16", "false"]).training) is None
    monkeypatch.setattr(checks, "cpu_has_native_bf16", lambda: True)
    assert checks.emulated_bf16_note(parse([*argv, "--bf16", "true"]).training) is None
