"""What the comparison and sweep reports share: numbers, intervals and tables as text, and pyplot.

Numbers are shown in the display units of their kind (accuracy in %, reward to 3 decimals, ratios
with "x"), "n/a" when missing; tables come as GitHub Markdown (``report.md``) or aligned plain text
(the terminal). Also the header and the table of runs that both reports start and end with, and
matplotlib's pyplot on the Agg backend for their figures.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from egsw.study.runs_data import Estimate, RunRow, is_number, unique_in_order

_SCALE = {"accuracy": 100.0, "final_reward": 1.0, "mean_length": 1.0, "steps": 1.0, "ratio": 1.0}
_DIGITS = {"accuracy": 1, "final_reward": 3, "mean_length": 1, "steps": 1, "ratio": 2}
_UNIT = {"accuracy": "%", "final_reward": "", "mean_length": "", "steps": "", "ratio": "x"}
_DIFF_UNIT = {"accuracy": " pp", "final_reward": "", "mean_length": " tokens"}


def _number(value: Any, kind: str, signed: bool = False) -> str:
    """``value`` in the display units of ``kind`` (no unit), "n/a" when not a finite number."""
    if not is_number(value):
        return "n/a"
    sign = "+" if signed else ""
    return f"{float(value) * _SCALE[kind]:{sign}.{_DIGITS[kind]}f}"


def value_text(value: Any, kind: str) -> str:
    """A value with its unit: "52.0%", "0.812", "1.23x"."""
    text = _number(value, kind)
    return text if text == "n/a" else text + _UNIT[kind]


def interval_text(low: float, high: float, kind: str, signed: bool = False) -> str:
    """Interval as "[low, high]" in display units, "n/a" when either end is missing."""
    if not (is_number(low) and is_number(high)):
        return "n/a"
    return f"[{_number(low, kind, signed)}, {_number(high, kind, signed)}]"


def estimate_text(estimate: Estimate | None, kind: str) -> str:
    """Estimate as "52.0% [45.1, 58.8]"; one seed: "52.0% (1 seed)"; none: "n/a"."""
    if estimate is None or estimate.n == 0 or not is_number(estimate.mean):
        return "n/a"
    if estimate.n == 1:
        return f"{value_text(estimate.mean, kind)} (1 seed)"
    return f"{value_text(estimate.mean, kind)} {interval_text(estimate.low, estimate.high, kind)}"


def difference_text(value: float, measure: str) -> str:
    """A signed difference with its unit: "+3.5 pp"."""
    text = _number(value, measure, signed=True)
    return text if text == "n/a" else text + _DIFF_UNIT[measure]


def p_value_text(value: float) -> str:
    """A p-value: "0.034", "<0.001", "n/a"."""
    if not is_number(value):
        return "n/a"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def p_value_phrase(value: float, name: str = "p") -> str:
    """A p-value in a sentence: "p = 0.034", "p < 0.001", "p n/a" (``name`` in place of "p", e.g. "p_Holm")."""
    text = p_value_text(value)
    return f"{name} {text}" if text == "n/a" else (f"{name} < 0.001" if text == "<0.001" else f"{name} = {text}")


def p_floor_text(value: float) -> str:
    """The smallest p an exact test can give, to 4 significant digits: "0.25", "0.0625", "0.001953", "n/a"."""
    return f"{float(value):.4g}" if is_number(value) else "n/a"


def _duration(seconds: float) -> str:
    """Duration as "10m 54s", "1h 02m", "n/a"."""
    if not is_number(seconds):
        return "n/a"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s"


def count_phrase(counts: Sequence[int], noun: str) -> str:
    """Counts as "3 seeds" or "2-3 seeds"."""
    low, high = min(counts), max(counts)
    plural = noun if high == 1 else noun + "s"
    return f"{low} {plural}" if low == high else f"{low}-{high} {plural}"


def _cell(text: Any) -> str:
    """A Markdown table cell: pipes escaped, newlines flattened."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub Markdown table."""
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def text_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table with aligned columns, for the terminal."""
    table = [[str(c) for c in header], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _folder_link(folder: str, output_dir: Path) -> str:
    """The run folder relative to the report (so links work on GitHub), as inline code."""
    try:
        shown = os.path.relpath(Path(folder).resolve(), Path(output_dir).resolve())
    except ValueError:
        shown = folder
    return f"`{shown}`"


def _status(row: RunRow) -> str:
    """Status as shown: "finished", "finished (interrupted)", "failed: <why>"."""
    status = row.status + (" (interrupted)" if row.interrupted else "")
    return f"{status}: {row.error}" if row.error and row.status != "finished" else status


def runs_table(rows: Sequence[RunRow], output_dir: Path, first_column: str = "method") -> str:
    """The table of runs: one line each, failed and missing ones with the reason."""
    body = [
        [
            row.method,
            row.seed,
            _status(row),
            value_text(row.final_reward, "final_reward"),
            value_text(row.accuracy, "accuracy"),
            row.steps if row.steps is not None else "n/a",
            _duration(row.runtime),
            _folder_link(row.folder, output_dir),
        ]
        for row in rows
    ]
    header = [first_column, "seed", "status", "final reward", "held-out acc", "steps", "runtime", "folder"]
    return markdown_table(header, body)


def header_lines(title: str, command: str, notes: Sequence[str]) -> list[str]:
    """Title, the regenerating command, and the notes."""
    lines = [f"# {title}", "", "Regenerate this report with:", "", "```bash", command, "```", ""]
    if notes:
        lines += [f"- {note}" for note in notes] + [""]
    return lines


def status_counts(rows: Sequence[RunRow]) -> str:
    """Counts of runs by status: "9 runs: 7 finished, 1 failed, 1 missing"."""
    counts = {s: sum(row.status == s for row in rows) for s in unique_in_order([row.status for row in rows])}
    parts = ", ".join(f"{n} {s}" for s, n in counts.items())
    return f"{len(rows)} runs" + (f": {parts}" if parts else "")


# --- Figures -------------------------------------------------------------------------------------


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
