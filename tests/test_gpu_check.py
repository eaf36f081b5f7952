"""benchmarks/gpu_check.py without a GPU: its arguments, the model it builds, and a CPU smoke run of the whole path."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check():  # noqa: ANN201 - the benchmark module
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_model_is_qwen2_5_math_1_5b(gpu_check) -> None:  # noqa: ANN001
    config = gpu_check.model_config(tiny=False)
    assert type(config).__name__ == "Qwen2Config"
    assert (config.hidden_size, config.num_hidden_layers, config.vocab_size) == (1536, 28, 151936)
    assert 1.50e9 < gpu_check.parameter_count(tiny=False) < 1.56e9  # Qwen2.5-Math-1.5B: 1.54 B, tied embeddings


def test_arguments_are_checked(gpu_check) -> None:  # noqa: ANN001
    args = gpu_check.parse_args([])
    assert args.methods == ["grpo", "step", "trajectory"] and args.device == "cuda"
    fields = gpu_check.trainer_fields(args, "/tmp/out")
    assert fields["per_device_train_batch_size"] * fields["gradient_accumulation_steps"] == 64
    assert fields["bf16"] and fields["generation_kwargs"] == {"min_new_tokens": 512}
    for bad in (["--methods", "step"], ["--micro-batch", "7"], ["--steps", "0"]):
        with pytest.raises(SystemExit) as raised:
            gpu_check.parse_args(bad)
        assert raised.value.code == 2


def test_shell_wrapper_parses_and_dry_run_builds_nothing() -> None:
    assert subprocess.run(["bash", "-n", str(SCRIPT.with_suffix(".sh"))]).returncode == 0
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--dry-run"], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "1,543.7 M parameters" in result.stdout and "64 completions" in result.stdout


@pytest.mark.slow
def test_cpu_smoke_run_measures_every_method(tmp_path: Path) -> None:
    output = tmp_path / "gpu_check.json"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--device", "cpu", "--tiny", "--methods", "grpo,step", "--steps", "1",
         "--warmup", "1", "--prompts", "2", "--group-size", "4", "--micro-batch", "4", "--prompt-length", "8",
         "--max-completion-length", "4", "--output", str(output)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads(output.read_text())
    assert set(record["methods"]) == {"grpo", "step"} and "step" in record["ratios_vs_grpo"]
    egsw_run = next(run for run in record["runs"] if run["method"] == "step")
    assert egsw_run["egsw"]["entropy_source"] == "generation" and egsw_run["egsw"]["weights_finite"]
    assert egsw_run["tokens_per_step"] == [2 * 4 * (8 + 4)] * 2  # prompt + completion tokens of 8 completions
