"""SIGTERM is a clean stop: the current step finishes, a complete checkpoint is written, the run exits 143.

Clusters end jobs with SIGTERM (SLURM preemption and time limits, Kubernetes, ``timeout``) and then
SIGKILL after a grace period. The first SIGTERM only sets a flag; at the end of the step in flight
``StopOnSignalCallback`` asks the Trainer to save a checkpoint (unless that step already saved one)
and stop. With several processes the flag is summed over them at every step end, so every process
stops after the same step and the checkpoint's collectives line up. A second SIGTERM gives up on the
step at once, as Ctrl-C does (``KeyboardInterrupt``: the last finished step's checkpoint is written).
"""

from __future__ import annotations

import signal
from types import FrameType
from typing import Any

from transformers import TrainerCallback

TERMINATED_STATUS = 128 + signal.SIGTERM  # 143, what a shell reports for a process ended by SIGTERM


class StopRequest:
    """The SIGTERM flag of this process; ``install`` makes SIGTERM set it (a second one interrupts at once)."""

    def __init__(self) -> None:
        self.requested = False

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._on_sigterm)

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True


class StopOnSignalCallback(TrainerCallback):
    """At each step end: when any process was asked to stop, save (unless already saving) and stop training."""

    def __init__(self, request: StopRequest, accelerator: Any) -> None:  # noqa: ANN401 - accelerate.Accelerator
        self.request = request
        self.accelerator = accelerator
        self.stopped = False

    def _requested_anywhere(self) -> bool:
        if self.accelerator.num_processes == 1:
            return self.request.requested
        import torch

        flag = torch.tensor([int(self.request.requested)], device=self.accelerator.device)
        return bool(self.accelerator.reduce(flag, reduction="sum").item())

    def on_step_end(self, args: Any, state: Any, control: Any, **_: Any) -> None:  # noqa: ANN401
        if self._requested_anywhere():
            # DefaultFlowCallback has already decided whether this step saves on schedule; saving once is enough.
            control.should_save = True
            control.should_training_stop = True
            self.stopped = True
