"""The sweep report and its statistics on synthetic ``egsw train`` output folders with known numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from egsw.comparison_data import RunOutcome
from egsw.comparison_summary import summarize_sweep
from egsw.sweep_report import format_sweep_table, write_sweep_report
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
