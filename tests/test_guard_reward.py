"""A reward function that raises or returns NaN on one completion does not stop training."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from datasets import Dataset

from egsw import EGSWConfig, EGSWTrainer
from egsw.reward_guard import guard_reward
from tests.helpers import trainer_kwargs, word_variety_reward


def fragile_reward(completions: list[str], **_: object) -> list[float]:
    """Raises when any completion in the batch contains the word "w1"; NaN for "w2"; else 1.0."""
    if any("w1" in c.split() for c in completions):
        raise RuntimeError("cannot score w1")
    return [math.nan if "w2" in c.split() else 1.0 for c in completions]


def test_raising_completion_alone_is_unscorable_and_counted() -> None:
    logged: dict[str, float] = {}
    guarded = guard_reward(fragile_reward)
    values = guarded(
        prompts=["p"] * 4,
        completions=["a w1", "b", "c w2", "d"],
        trainer_state=None,
        log_metric=lambda name, value: logged.__setitem__(name, value),
    )
    assert values == [None, 1.0, None, 1.0]
    assert logged == {"rewards/fragile_reward/unscorable": 2.0}
    assert guarded.__name__ == "fragile_reward"
    assert guard_reward(guarded) is guarded


def test_per_completion_columns_are_split_and_shared_ones_kept() -> None:
    seen: list[tuple[list[str], object]] = []

    def reward(completions: list[str], answer: list[str], trainer_state: object, **_: object) -> list[float]:
        seen.append((answer, trainer_state))
        if len(completions) > 1:
            raise ValueError("batch")
        return [float(completions[0] == answer[0])]

    values = guard_reward(reward)(prompts=["p", "q"], completions=["1", "3"], answer=["1", "2"], trainer_state="S")
    assert values == [1.0, 0.0]
    assert seen[1:] == [(["1"], "S"), (["2"], "S")]


def test_training_survives_a_reward_that_raises(tiny_model_dir: Path, tmp_path: Path) -> None:
    calls = {"n": 0}

    def raises_on_first_completion(completions: list[str], **_: object) -> list[float]:
        calls["n"] += 1
        if len(completions) > 1 or calls["n"] == 2:  # the batch call and the first single call
            raise RuntimeError("broken scorer")
        return [0.5]

    dataset = Dataset.from_dict({"prompt": [f"What is {i} + 1 ?" for i in range(8)]})
    trainer = EGSWTrainer(
        model=str(tiny_model_dir),
        reward_funcs=[word_variety_reward, raises_on_first_completion],
        args=EGSWConfig(**trainer_kwargs(tmp_path, max_steps=1)),
        train_dataset=dataset,
    )
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "rewards/raises_on_first_completion/unscorable" in entry]
    assert logs and logs[0]["rewards/raises_on_first_completion/unscorable"] == pytest.approx(1.0)
    assert trainer.state.global_step == 1
