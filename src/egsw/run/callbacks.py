"""Trainer callbacks of ``egsw train``: a metrics file written as training goes, and a progress bar."""

from __future__ import annotations

import json
import math
from collections import deque
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm
from transformers import TrainerCallback

METRICS_FILE = "metrics.jsonl"


class MetricsFileCallback(TrainerCallback):
    """Appends one JSON line per logged step to ``metrics.jsonl`` and flushes it at once.

    Each line holds ``step`` and every value the trainer logged (reward, completion length,
    entropy, ``egsw/*`` diagnostics...). Being flushed line by line, the file is complete up to
    the last logged step even when the run is interrupted.
    """

    def __init__(self, path: Path, append: bool = False) -> None:
        self.path = Path(path)
        if not append:
            self.path.write_text("")

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **_: Any) -> None:  # noqa: ANN401
        if not logs or not state.is_world_process_zero:
            return
        record = {"step": state.global_step}
        record.update({key: _plain(value) for key, value in logs.items()})
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")


def _plain(value: Any) -> Any:  # noqa: ANN401
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class RewardProgressCallback(TrainerCallback):
    """A progress bar over training steps showing the running mean reward and completion length."""

    def __init__(self, window: int = 5) -> None:
        self.bar: tqdm | None = None
        self.rewards: deque[float] = deque(maxlen=window)
        self.lengths: deque[float] = deque(maxlen=window)

    def on_train_begin(self, args: Any, state: Any, control: Any, **_: Any) -> None:  # noqa: ANN401
        if state.is_world_process_zero:
            self.bar = tqdm(
                total=state.max_steps, initial=state.global_step, desc="train", unit="step", dynamic_ncols=True
            )

    def on_step_end(self, args: Any, state: Any, control: Any, **_: Any) -> None:  # noqa: ANN401
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **_: Any) -> None:  # noqa: ANN401
        if self.bar is None or not logs or "reward" not in logs:
            return
        self.rewards.append(float(logs["reward"]))
        if "completions/mean_length" in logs:
            self.lengths.append(float(logs["completions/mean_length"]))
        postfix = {"reward": f"{sum(self.rewards) / len(self.rewards):.3f}"}
        if self.lengths:
            postfix["length"] = f"{sum(self.lengths) / len(self.lengths):.1f}"
        self.bar.set_postfix(postfix)

    def on_train_end(self, args: Any, state: Any, control: Any, **_: Any) -> None:  # noqa: ANN401
        self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
