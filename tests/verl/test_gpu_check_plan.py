"""benchmarks/verl_gpu_check.py without a GPU: each run's overrides compose with verl's config; the summary's ratios."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from .conftest import REPO_ROOT


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("verl_gpu_check", REPO_ROOT / "benchmarks" / "verl_gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dry_run_composes_every_method_with_verls_config(gpu_check, tmp_path: Path, capsys) -> None:
    assert gpu_check.main(["--dry-run", "--work-dir", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    for method, mode in gpu_check.METHODS.items():
        line = next(line for line in printed.splitlines() if line.startswith(f"{method}: "))
        assert f"+egsw.mode={mode}" in line and "VERL_USE_EXTERNAL_MODULES=egsw.integrations.verl" in line
    args = gpu_check.parse_args(["--dry-run"])
    config = gpu_check.compose(args, "step", tmp_path)
    assert (config.trainer.n_gpus_per_node, config.actor_rollout_ref.rollout.n, config.egsw.mode) == (1, 8, "step")


def test_summary_takes_medians_after_warmup_and_the_ratios_to_grpo(gpu_check) -> None:
    args = gpu_check.parse_args(["--warmup", "1"])

    def run(times: list[float], memory: float, egsw: bool) -> dict:
        extra = {"egsw/ess": 0.9} if egsw else {}
        steps = [
            {"timing_s/step": t, "timing_s/adv": 0.1, "perf/max_memory_allocated_gb": memory, **extra} for t in times
        ]
        return {"wall_s": 1.0, "steps": steps}

    summary = gpu_check.summarise(
        args, {"grpo": run([9.0, 2.0, 2.0, 4.0], 10.0, False), "step": run([9.0, 2.0, 3.0, 2.1], 10.5, True)}
    )
    assert summary["methods"]["grpo"]["timing_s/step"] == 2.0
    assert summary["ratios"]["step"] == {"time": pytest.approx(1.05), "memory": pytest.approx(1.05)}
    assert summary["methods"]["step"]["egsw_metrics_logged"] and not summary["methods"]["grpo"]["egsw_metrics_logged"]
