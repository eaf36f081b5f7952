"""Reward functions in every form TRL accepts behave in EGSWTrainer (egsw_mode="none") as in GRPOTrainer."""

from __future__ import annotations

import asyncio
import functools
import math
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from transformers import AutoTokenizer, LlamaForSequenceClassification
from trl import GRPOConfig, GRPOTrainer

from egsw import EGSWConfig, EGSWTrainer
from egsw.reward_guard import UnscorableRewardsError, guard_reward
from tests.helpers import trainer_kwargs

pytestmark = pytest.mark.slow


def distinct_words(completions: list[str], **_: object) -> list[float]:
    return [len(set(c.split())) / max(len(c.split()), 1) for c in completions]


def length_with_bonus(completions: list[str], bonus: float, **_: object) -> list[float]:
    return [len(c) / 50 + bonus for c in completions]


class CountsWord:
    """A callable instance: TRL names it by its class."""

    def __call__(self, completions: list[str], **_: object) -> list[float]:
        return [float(sum(w.startswith("w1") for w in c.split())) for c in completions]


async def async_vowels(completions: list[str], **_: object) -> list[float]:
    await asyncio.sleep(0)
    return [sum(ch in "aeiou" for ch in c) / 10 for c in completions]


class AsyncDigits:
    """An async callable instance: ``inspect.iscoroutinefunction`` is False for it, TRL's ``is_async_callable`` True."""

    async def __call__(self, completions: list[str], **_: object) -> list[float]:
        await asyncio.sleep(0)
        return [sum(ch.isdigit() for ch in c) / 10 for c in completions]


@pytest.fixture(scope="module")
def reward_model_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random sequence-classification model, the same architecture as the policy: a reward model."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(tiny_model_dir, num_labels=1)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    config.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    torch.manual_seed(3)
    model = LlamaForSequenceClassification(config)
    path = tmp_path_factory.mktemp("reward-model")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def reward_forms(reward_model_dir: Path) -> list[object]:
    """Fresh instances of each form (a reward model is stateful; a guard wraps the function in place)."""
    return [
        distinct_words,
        CountsWord(),
        functools.partial(length_with_bonus, bonus=0.25),
        async_vowels,
        AsyncDigits(),
        LlamaForSequenceClassification.from_pretrained(reward_model_dir),
        str(reward_model_dir),
    ]


def train_with(trainer_cls, config_cls, model_dir: Path, reward_model_dir: Path, out: Path):
    dataset = Dataset.from_dict({"prompt": [f"What is {i} + {i + 3} ?" for i in range(16)]})
    # egsw_mode none with TRL's plain forward: the shared-prompt forward equals it only to fp32 rounding, which
    # Adam at lr 1e-2 would turn into parameter differences larger than this test's bound.
    egsw_only = {"egsw_mode": "none", "share_prompt_forward": False} if config_cls is EGSWConfig else {}
    args = config_cls(**trainer_kwargs(out, **egsw_only))
    trainer = trainer_cls(
        model=str(model_dir), reward_funcs=reward_forms(reward_model_dir), args=args, train_dataset=dataset
    )
    trainer.train()
    rewards = [
        {key: value for key, value in entry.items() if key.startswith("rewards/") and "/unscorable" not in key}
        for entry in trainer.state.log_history
        if "loss" in entry
    ]
    params = {name: p.detach().clone() for name, p in trainer.model.named_parameters()}
    return trainer.reward_func_names, rewards, params


def test_every_reward_form_names_scores_and_trains_as_in_grpo_trainer(
    tiny_model_dir: Path, reward_model_dir: Path, tmp_path: Path
) -> None:
    grpo_names, grpo_rewards, grpo_params = train_with(
        GRPOTrainer, GRPOConfig, tiny_model_dir, reward_model_dir, tmp_path / "grpo"
    )
    names, rewards, params = train_with(EGSWTrainer, EGSWConfig, tiny_model_dir, reward_model_dir, tmp_path / "egsw")
    assert names == grpo_names
    assert names[:5] == ["distinct_words", "CountsWord", "length_with_bonus", "async_vowels", "AsyncDigits"]
    assert len(rewards) == len(grpo_rewards) == 2
    for ours, theirs in zip(rewards, grpo_rewards, strict=True):
        assert ours.keys() == theirs.keys()
        assert ours == pytest.approx(theirs, abs=1e-6)
        # Every form was scored: an async function that is never awaited would log NaN here.
        assert all(math.isfinite(value) for value in ours.values())
    assert max((params[name] - grpo_params[name]).abs().max().item() for name in params) <= 1e-6


def test_async_forms_are_awaited_and_guarded() -> None:
    async def fragile(completions: list[str], **_: object) -> list[float]:
        if len(completions) > 1:
            raise RuntimeError("batch")
        return [float("nan")] if completions[0] == "bad" else [1.0]

    logged: dict[str, float] = {}
    for form, name in ((fragile, "fragile"), (functools.partial(fragile), "fragile"), (AsyncDigits(), "AsyncDigits")):
        guarded = guard_reward(form)
        assert guarded.__name__ == name and asyncio.iscoroutinefunction(guarded)
    values = asyncio.run(
        guard_reward(fragile)(prompts=["p", "q"], completions=["good", "bad"], log_metric=logged.__setitem__)
    )
    assert values == [1.0, None] and logged == {"rewards/fragile/unscorable": 1.0}


def test_a_function_that_scores_nothing_warns_then_stops_the_run(tmp_path: Path, tiny_model_dir: Path) -> None:
    def always_broken(completions: list[str], **_: object) -> list[float]:
        raise RuntimeError("the scorer's server is down")

    dataset = Dataset.from_dict({"prompt": [f"What is {i} + 1 ?" for i in range(16)]})
    trainer = EGSWTrainer(
        model=str(tiny_model_dir),
        reward_funcs=[distinct_words, always_broken],
        args=EGSWConfig(**trainer_kwargs(tmp_path, max_steps=5, max_unscorable_batches=2)),
        train_dataset=dataset,
    )
    with pytest.raises(UnscorableRewardsError, match="'always_broken' scored no completion in 2 generation batches"):
        trainer.train()
    assert trainer.state.global_step == 1  # the first batch only warned; the second stopped the run


def test_max_unscorable_batches_is_validated(tmp_path: Path) -> None:
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="max_unscorable_batches must be a whole number >= 0"):
            EGSWConfig(output_dir=str(tmp_path), use_cpu=True, report_to=[], max_unscorable_batches=bad)
