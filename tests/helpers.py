"""Helpers shared by the tests and the multi-process script: a reward with variance, configs, rollouts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
from trl import GRPOTrainer


def word_variety_reward(completions: list[str], **_: object) -> list[float]:
    """A reward that varies within a group for random completions: share of distinct words."""
    rewards = []
    for completion in completions:
        words = completion.split()
        rewards.append(len(set(words)) / max(len(words), 1) + 0.1 * sum(w.startswith("w1") for w in words))
    return rewards


def trainer_kwargs(output_dir: Path, **overrides: object) -> dict[str, object]:
    """GRPOConfig fields for a fast deterministic CPU run on the tiny model."""
    fields: dict[str, object] = dict(
        output_dir=str(output_dir),
        per_device_train_batch_size=8,
        num_generations=4,
        max_completion_length=10,
        max_steps=2,
        learning_rate=1e-2,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        bf16=False,  # GRPOConfig defaults to bf16 autocast; fp32 keeps the comparisons exact
        seed=7,
        data_seed=7,
        disable_tqdm=True,
    )
    fields.update(overrides)
    return fields


def deterministic_rollout(prompts: list[str], trainer: GRPOTrainer) -> dict[str, list]:
    """A rollout_func whose completions depend only on the prompt and the member's place in its group."""
    tokenizer = trainer.processing_class
    prompt_ids = [tokenizer(p)["input_ids"] for p in prompts]
    first = trainer.accelerator.process_index * len(prompts)
    completion_ids = []
    for offset, ids in enumerate(prompt_ids):
        member = (first + offset) % trainer.num_generations
        gen = torch.Generator().manual_seed(sum(ids) * 31 + member)
        length = int(torch.randint(2, 9, (1,), generator=gen))
        completion_ids.append(torch.randint(3, tokenizer.vocab_size, (length,), generator=gen).tolist())
    return {"prompt_ids": prompt_ids, "completion_ids": completion_ids, "logprobs": None}


def run_egsw(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """``python -m egsw.cli ARGS`` in a fresh process (as a user runs it), output captured as text."""
    environment = os.environ | {"TOKENIZERS_PARALLELISM": "false"} | (env or {})
    return subprocess.run(
        [sys.executable, "-m", "egsw.cli", *args], cwd=cwd, env=environment, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip
