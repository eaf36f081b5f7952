"""Two processes (accelerate, gloo on the CPU) give the weights and the update of one process.

``accelerate launch --cpu --num_processes 2`` starts ONE process with accelerate 1.15 (its CPU
launcher needs mpirun for more); ``--multi_gpu`` goes through torchrun and, with ``use_cpu=True``
in the training arguments, runs two gloo processes on the CPU. The script checks the count.

The global batch is 12 completions in groups of 4; with 6 per process, the middle group is split
between the two processes, so its weights can only be right if the trainer gathers whole groups.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).with_name("multiprocess_step.py")
ACCELERATE = Path(sys.executable).with_name("accelerate")


def run_step(model_dir: Path, output_dir: Path, processes: int, mode: str) -> dict:
    per_device = 12 // processes
    command = [str(ACCELERATE), "launch", "--num_processes", str(processes), "--num_machines", "1"]
    command += ["--multi_gpu"] if processes > 1 else ["--cpu"]
    command += ["--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(29500 + processes)]
    command += [str(SCRIPT), str(model_dir), str(output_dir), str(per_device), mode, "sgd"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TRL_EXPERIMENTAL_SILENCE": "1"}
    completed = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert completed.returncode == 0, completed.stderr[-4000:]
    result = torch.load(output_dir / "result.pt")
    assert result["num_processes"] == processes
    return result


@pytest.mark.parametrize("mode", ["step", "trajectory"])
def test_two_processes_match_one_process(tiny_model_dir, tmp_path, mode):
    one = run_step(tiny_model_dir, tmp_path / "one", 1, mode)
    two = run_step(tiny_model_dir, tmp_path / "two", 2, mode)

    assert torch.equal(one["mask"], two["mask"]) and torch.equal(one["advantages"], two["advantages"])
    lengths = one["mask"].sum(1)
    assert lengths.min() < lengths.max()  # ragged completions
    assert not torch.allclose(one["weights"], one["mask"].float())  # the weights are not trivially 1
    torch.testing.assert_close(two["weights"], one["weights"], rtol=0, atol=1e-6)

    start = dict(AutoModelForCausalLM.from_pretrained(tiny_model_dir).named_parameters())
    assert max((one["params"][k] - start[k]).abs().max().item() for k in start) > 1e-4  # the step moved them
    apart = max((one["params"][k] - two["params"][k]).abs().max().item() for k in one["params"])
    assert apart <= 1e-6, f"parameters after one step differ by {apart}"
