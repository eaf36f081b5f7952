"""Figures and tables from run outputs: the training curves of ``egsw train``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

CURVES = {
    "reward": ("reward", "training reward"),
    "completion_length": ("completions/mean_length", "mean completion length (tokens)"),
}


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The lines of a ``metrics.jsonl`` file; a torn last line (interrupted write) is skipped."""
    records = []
    for line in Path(path).read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def moving_average(values: Sequence[float], window: int) -> np.ndarray:
    """Trailing mean over up to ``window`` points (shorter at the start), same length as ``values``."""
    array = np.asarray(values, dtype=float)
    cumulative = np.concatenate([[0.0], np.cumsum(array)])
    starts = np.maximum(np.arange(1, array.size + 1) - window, 0)
    return (cumulative[1:] - cumulative[starts]) / (np.arange(1, array.size + 1) - starts)


def plot_training_curves(metrics_path: Path, plots_dir: Path, window: int = 5) -> list[Path]:
    """Write ``reward.png`` and ``completion_length.png`` (per step and a moving average); return the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_metrics(metrics_path)
    plots_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for file_stem, (key, label) in CURVES.items():
        points = [(r["step"], r[key]) for r in records if isinstance(r.get(key), int | float)]
        figure, axis = plt.subplots(figsize=(6, 3.6), dpi=120)
        if points:
            steps, values = zip(*points, strict=True)
            axis.plot(steps, values, "o", alpha=0.35, markersize=3, label="per step")
            axis.plot(steps, moving_average(values, window), "-", linewidth=2, label=f"mean of last {window}")
            axis.legend(loc="best", fontsize=8)
        axis.set_xlabel("step")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
        figure.tight_layout()
        path = plots_dir / f"{file_stem}.png"
        figure.savefig(path)
        plt.close(figure)
        written.append(path)
    return written
