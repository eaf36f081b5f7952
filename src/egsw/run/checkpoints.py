"""Checkpoints that are known to be complete, their rotation, and the random state they restore.

A checkpoint ``checkpoint-<step>/`` counts only once ``.egsw-complete`` is in it. The marker is
written after every process has finished writing its part (a barrier) and before any older
checkpoint is deleted, so a process killed at any moment leaves at least one complete checkpoint
behind, and a half-written one is never taken for the last good one.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

# Written into checkpoint-<step>/ once every process has finished writing it.
CHECKPOINT_COMPLETE = ".egsw-complete"
CHECKPOINT_PREFIX = "checkpoint-"


def checkpoint_step(path: Path) -> int | None:
    """The step of a ``checkpoint-<step>`` folder, None for any other name."""
    suffix = path.name[len(CHECKPOINT_PREFIX) :]
    return int(suffix) if path.name.startswith(CHECKPOINT_PREFIX) and suffix.isdigit() else None


def list_checkpoints(output_dir: Path) -> list[tuple[int, Path, bool]]:
    """(step, folder, complete) for every checkpoint in ``output_dir``, by step."""
    found = []
    for path in Path(output_dir).glob(f"{CHECKPOINT_PREFIX}*"):
        step = checkpoint_step(path)
        if step is not None and path.is_dir():
            found.append((step, path, is_complete_checkpoint(path)))
    return sorted(found)


def is_complete_checkpoint(path: Path) -> bool:
    """Whether ``checkpoint-<step>/`` was finished: it holds the marker and the trainer state of that step."""
    marker, state = path / CHECKPOINT_COMPLETE, path / "trainer_state.json"
    if not (marker.is_file() and state.is_file()):
        return False
    try:
        return json.loads(state.read_text()).get("global_step") == checkpoint_step(path)
    except (OSError, ValueError):
        return False


def last_complete_checkpoint(output_dir: Path) -> Path | None:
    """The complete checkpoint with the highest step, None when there is none."""
    complete = [path for _, path, ok in list_checkpoints(output_dir) if ok]
    return complete[-1] if complete else None


def _checkpoint_writer(args: Any, state: Any) -> bool:  # noqa: ANN401 - TrainingArguments, TrainerState
    """Whether this process writes checkpoint files (and so the completion marker)."""
    return state.is_local_process_zero if args.save_on_each_node else state.is_world_process_zero


def finish_checkpoint(args: Any, state: Any, keep: int | None) -> None:  # noqa: ANN401
    """Mark ``checkpoint-<global_step>`` complete once every process is done, then delete older ones.

    Deletion keeps the ``keep`` newest complete checkpoints (all when None) and removes incomplete
    ones older than the newest complete, so at least one complete checkpoint exists at every moment.
    """
    from accelerate import PartialState

    PartialState().wait_for_everyone()  # every process has written its files (rng state, shards)
    if _checkpoint_writer(args, state):
        folder = Path(args.output_dir) / f"{CHECKPOINT_PREFIX}{state.global_step}"
        if folder.is_dir():
            marker = folder / CHECKPOINT_COMPLETE
            marker.write_text(json.dumps({"global_step": state.global_step, "time": time.time()}) + "\n")
            _fsync(marker)
            rotate_checkpoints(Path(args.output_dir), keep)
    PartialState().wait_for_everyone()


def rotate_checkpoints(output_dir: Path, keep: int | None) -> None:
    """Delete all but the ``keep`` newest complete checkpoints, and incomplete ones older than them."""
    checkpoints = list_checkpoints(output_dir)
    complete = [path for _, path, ok in checkpoints if ok]
    if not complete:
        return
    newest_step = checkpoint_step(complete[-1])
    doomed = complete[:-keep] if keep else []
    doomed += [path for step, path, ok in checkpoints if not ok and step < newest_step]
    for path in doomed:
        shutil.rmtree(path, ignore_errors=True)


def _fsync(path: Path) -> None:
    try:
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
    except OSError:
        pass


class CheckpointCompletionCallback(TrainerCallback):
    """After each scheduled save: the completion marker, then the rotation ``save_total_limit`` asked for.

    ``run_training`` takes the rotation over from the Trainer (which would delete the older
    checkpoint before the new one is marked complete).
    """

    def __init__(self, keep: int | None) -> None:
        self.keep = keep

    def on_save(self, args: Any, state: Any, control: Any, **_: Any) -> None:  # noqa: ANN401
        finish_checkpoint(args, state, self.keep)


class RandomStateSnapshotCallback(TrainerCallback):
    """Keeps what a step changes before it finishes, as it was at the end of the last finished step.

    A Ctrl-C lands mid-step, after generation has drawn random numbers and TRL has counted the new
    tokens in ``state.num_input_tokens_seen``; the checkpoint written then is given this snapshot
    (``restore``), so resuming from it continues as if it had been saved on schedule.
    """

    def __init__(self) -> None:
        self.snapshot: dict[str, Any] | None = None
        self.tokens_seen: int | float | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **_: Any) -> None:  # noqa: ANN401
        self._take(state)

    def on_step_end(self, args: Any, state: Any, control: Any, **_: Any) -> None:  # noqa: ANN401
        self._take(state)

    def _take(self, state: Any) -> None:  # noqa: ANN401 - a TrainerState
        self.snapshot = capture_random_state()
        self.tokens_seen = state.num_input_tokens_seen

    def restore(self, state: Any = None) -> None:  # noqa: ANN401 - a TrainerState
        """Put the random generators (and, given ``state``, its token count) back to the snapshot."""
        if self.snapshot is not None:
            restore_random_state(self.snapshot)
        if state is not None and self.tokens_seen is not None:
            state.num_input_tokens_seen = self.tokens_seen


def capture_random_state() -> dict[str, Any]:
    """Python's, NumPy's and torch's (CPU and, once initialised, CUDA) random states."""
    import numpy as np
    import torch

    state: dict[str, Any] = {"python": random.getstate(), "numpy": np.random.get_state(), "cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_random_state(state: dict[str, Any]) -> None:
    """Undo what the random generators drew since ``capture_random_state``."""
    import numpy as np
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["cpu"])
    if "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])
