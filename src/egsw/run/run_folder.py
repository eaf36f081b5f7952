"""The output folder of one ``egsw train`` run: what marks a run, refusing to mix runs, resuming.

A folder holds a run when any of ``RUN_MARKERS`` is in it. ``check_output_dir`` says, without
writing, what ``prepare_output_dir`` would refuse; ``find_resume_point`` finds the last complete
checkpoint ``--resume`` continues from (egsw.run.checkpoints), and ``truncate_metrics`` cuts
``metrics.jsonl`` back to it. ``resolved_options`` is every option of a run as ``config.yaml`` holds it.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from egsw.errors import InputError
from egsw.models import TRAIN_OUTPUT_MODEL
from egsw.run.callbacks import METRICS_FILE
from egsw.run.checkpoints import CHECKPOINT_PREFIX, checkpoint_step, last_complete_checkpoint, list_checkpoints

if TYPE_CHECKING:
    from egsw.config import EGSWConfig
    from egsw.run.recipes import TrainScriptArguments

CONFIG_FILE = "config.yaml"
EVAL_FILE = "eval.json"
# The before-training evaluation with its per-problem results, so that a resumed run can report the
# paired before/after difference without evaluating again.
EVAL_BEFORE_FILE = ".eval-before.json"
ADAPTER_DIR = "adapter"
# The final model while it is written; renamed to model/ once complete.
PARTIAL_MODEL_DIR = ".model-partial"
# Entries whose presence means a folder already holds a run.
RUN_MARKERS = (
    CONFIG_FILE, METRICS_FILE, EVAL_FILE, EVAL_BEFORE_FILE, TRAIN_OUTPUT_MODEL, PARTIAL_MODEL_DIR, ADAPTER_DIR,
    "tensorboard", "plots",
)  # fmt: skip
# Options that say what one invocation does, not what the run is: left out of config.yaml.
PER_INVOCATION_OPTIONS = ("resume", "dry_run", "overwrite")
# Held (flock) by the live run of a folder; the kernel releases it when that process dies, however it dies.
LOCK_FILE = ".egsw-lock"
# Locks this process holds: open files, kept open for the life of the process.
_HELD_LOCKS: dict[Path, Any] = {}


@dataclass(frozen=True)
class ResumePoint:
    """Where ``--resume`` continues: the last complete checkpoint and the incomplete ones after it."""

    checkpoint: Path
    step: int
    incomplete: tuple[Path, ...]


# ---------------------------------------------------------------------------------------------
# The output folder


def existing_run_entries(output_dir: Path) -> list[str]:
    """The run files already in ``output_dir`` (empty when it is new or holds none)."""
    if not output_dir.is_dir():
        return []
    found = [name for name in RUN_MARKERS if (output_dir / name).exists()]
    found += sorted(path.name for path in output_dir.glob(f"{CHECKPOINT_PREFIX}*"))
    return found


def check_output_dir(output_dir: Path, overwrite: bool, resume: bool = False) -> ResumePoint | None:
    """Read-only checks of ``output_dir``: what ``prepare_output_dir`` would refuse, raised as ValueError.

    With ``resume`` the folder must hold a run with a complete checkpoint and no final model; the
    point to continue from is returned.
    """
    if resume:
        if overwrite:
            raise ValueError("--resume continues the run in --output_dir and --overwrite replaces it; pass one")
        return find_resume_point(output_dir)
    entries = existing_run_entries(output_dir)
    if entries and not overwrite:
        raise ValueError(
            f"output folder {output_dir} already holds a run ({', '.join(entries[:3])}); "
            f"pass --resume to continue it, --overwrite to replace it, or choose another --output_dir"
        )
    probe_dir = output_dir
    while not probe_dir.exists() and probe_dir != probe_dir.parent:
        probe_dir = probe_dir.parent
    if not probe_dir.is_dir() or not os.access(probe_dir, os.W_OK | os.X_OK):
        raise ValueError(f"output folder {output_dir} is not writable; choose another --output_dir")
    return None


def prepare_output_dir(output_dir: Path, overwrite: bool, resume: bool = False) -> ResumePoint | None:
    """Create ``output_dir`` (checking it is writable), refusing to mix with an earlier run.

    Raises ValueError with the fix when the folder holds a run and neither ``overwrite`` nor
    ``resume`` is set, or when it cannot be written; with ``overwrite`` only the run's own entries
    are removed. With ``resume`` nothing is removed here and the point to continue from is returned.
    """
    if resume:
        return check_output_dir(output_dir, overwrite, resume=True)
    entries = existing_run_entries(output_dir)
    if entries and not overwrite:
        check_output_dir(output_dir, overwrite)  # raises with the message
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        probe = output_dir / ".egsw-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise ValueError(
            f"output folder {output_dir} is not writable ({error.strerror or error}); choose another --output_dir"
        ) from error
    for name in entries:
        path = output_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    return None


def resolved_options(
    script_args: TrainScriptArguments,
    training_args: EGSWConfig,
    model_args: Any | None = None,  # noqa: ANN401
) -> dict[str, Any]:
    """Every option of a run as plain values that ``--config`` accepts again.

    Left out: private fields, per-invocation flags (``PER_INVOCATION_OPTIONS``), redacted tokens,
    and ``generation_batch_size`` when GRPOConfig derived it from ``steps_per_generation`` (giving
    both is refused).
    """
    values: dict[str, Any] = {}
    if model_args is not None:
        values.update(dataclasses.asdict(model_args))
    values.update(dataclasses.asdict(script_args))
    values.update({k: v for k, v in training_args.to_dict().items() if not k.startswith("_")})
    for key in [*PER_INVOCATION_OPTIONS, *(k for k in values if k.endswith("_token"))]:
        values.pop(key, None)
    if values.get("steps_per_generation") is not None:
        values.pop("generation_batch_size", None)
    return values


def write_resolved_config(
    path: Path,
    script_args: TrainScriptArguments,
    training_args: EGSWConfig,
    model_args: Any | None = None,  # noqa: ANN401 - egsw.commands.train.ModelArguments
) -> None:
    """Every option of the run in one YAML file, loadable again with ``--config``."""
    path.write_text(yaml.safe_dump(resolved_options(script_args, training_args, model_args), sort_keys=True))


def find_resume_point(output_dir: Path) -> ResumePoint:
    """The checkpoint ``--resume`` continues from; ValueError with the fix when there is none."""
    if not (output_dir / CONFIG_FILE).is_file():
        raise ValueError(
            f"--resume: {output_dir} holds no run ({CONFIG_FILE} is missing); pass the --output_dir of an earlier run"
        )
    if (output_dir / TRAIN_OUTPUT_MODEL).exists():
        raise ValueError(
            f"--resume: the run in {output_dir} has finished ({TRAIN_OUTPUT_MODEL}/ exists); nothing to continue"
        )
    checkpoints = list_checkpoints(output_dir)
    last = last_complete_checkpoint(output_dir)
    if last is None:
        seen = ", ".join(f"{path.name} (incomplete)" for _, path, _ in checkpoints) or "no checkpoint"
        raise ValueError(f"--resume: {output_dir} has no complete checkpoint ({seen}); start again with --overwrite")
    step = checkpoint_step(last)
    assert step is not None
    incomplete = tuple(path for s, path, ok in checkpoints if not ok and s > step)
    return ResumePoint(last, step, incomplete)


def truncate_metrics(path: Path, last_step: int) -> int:
    """Keep the lines of ``metrics.jsonl`` logged up to ``last_step``; returns how many were dropped.

    The lines after the checkpoint were logged by the run that stopped; the resumed run logs those
    steps again. A last line cut off mid-write is dropped too, and so is the end-of-training summary
    of a run stopped cleanly (SIGTERM).
    """
    if not path.is_file():
        return 0
    kept, dropped = [], 0
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            dropped += 1
            continue
        # "train_runtime" marks the summary a train() call logs when it returns, as one stopped by SIGTERM
        # does: the resumed run logs its own at the end.
        if isinstance(record, dict) and record.get("step", 0) <= last_step and "train_runtime" not in record:
            kept.append(line)
        else:
            dropped += 1
    temporary = path.with_suffix(".tmp")
    temporary.write_text("".join(line + "\n" for line in kept))
    temporary.replace(path)
    return dropped


# ---------------------------------------------------------------------------------------------
# One run per folder


def lock_holder(output_dir: Path) -> str | None:
    """Who holds ``output_dir``'s run lock ("pid N on host H since T"), None when no live process does."""
    path = output_dir / LOCK_FILE
    if not path.is_file() or output_dir.resolve() in _HELD_LOCKS:
        return None
    with path.open("r") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                owner = json.loads(handle.read() or "{}")
            except json.JSONDecodeError:
                owner = {}
            return f"pid {owner.get('pid', '?')} on host {owner.get('host', '?')} since {owner.get('since', '?')}"
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None


def hold_run_lock(output_dir: Path) -> None:
    """Take ``output_dir``'s run lock for the life of this process; InputError when a live run holds it.

    A lock file left by a killed run is not held by anyone (the kernel drops a dead process's locks),
    so it is taken over.
    """
    key = output_dir.resolve() if output_dir.exists() else output_dir.absolute()
    if key in _HELD_LOCKS:
        return
    output_dir.mkdir(parents=True, exist_ok=True)
    handle = (output_dir / LOCK_FILE).open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        try:
            owner = json.loads(handle.read() or "{}")
        except json.JSONDecodeError:
            owner = {}
        handle.close()
        raise InputError(
            f"output folder {output_dir} is in use by a live run (pid {owner.get('pid', '?')} on host "
            f"{owner.get('host', '?')} since {owner.get('since', '?')}); wait for it to end, or choose another "
            f"--output_dir"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(
        json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")})
    )
    handle.flush()
    _HELD_LOCKS[output_dir.resolve()] = handle


# ---------------------------------------------------------------------------------------------
# --resume auto


def auto_resume_decision(output_dir: Path) -> str:
    """What ``--resume auto`` does with ``output_dir``: "new", "resume", "restart" (a run with no complete
    checkpoint: replaced) or "finished" (its final model is saved: nothing to do)."""
    if not existing_run_entries(output_dir):
        return "new"
    if (output_dir / TRAIN_OUTPUT_MODEL).exists():
        return "finished"
    if (output_dir / CONFIG_FILE).is_file() and last_complete_checkpoint(output_dir) is not None:
        return "resume"
    return "restart"
