"""egsw_advantages: parity with EGSWTrainer, grouping by uid in any order, padding rows, settings, import checks."""

from __future__ import annotations

import functools
import math
import subprocess
import sys
from collections import defaultdict
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from egsw.integrations import verl as egsw_verl
from egsw.integrations.verl import EGSWSettings, egsw_advantages, egsw_metrics, egsw_weigh

MODES = ("step", "trajectory")


def grpo_batch(group_sizes: list[int], length: int, seed: int) -> dict[str, torch.Tensor]:
    """Contiguous groups as TRL lays them out: A (B,) standardised rewards, H (B, T), ragged right-padded mask."""
    generator = torch.Generator().manual_seed(seed)
    rewards = torch.randint(0, 3, (sum(group_sizes),), generator=generator).float()
    advantages = torch.cat(
        [(chunk - chunk.mean()) / (chunk.std() + 1e-4) for chunk in rewards.split(group_sizes)]
    )  # GRPO's group-normalised advantage
    lengths = torch.randint(1, length + 1, (sum(group_sizes),), generator=generator)
    mask = (torch.arange(length).unsqueeze(0) < lengths.unsqueeze(1)).long()
    entropies = torch.rand(sum(group_sizes), length, generator=generator) * 3.0
    group_of_row = torch.repeat_interleave(torch.arange(len(group_sizes)), torch.tensor(group_sizes))
    return {"advantages": advantages, "entropies": entropies, "mask": mask, "groups": group_of_row}


def trainer_weighted(batch: dict[str, torch.Tensor], group_size: int, **settings) -> tuple[torch.Tensor, dict]:
    """What EGSWTrainer._egsw_weigh (the TRL trainer's own method) gives for the batch: w * A, and its metrics.

    It runs on a stand-in for the trainer with one process (gather and padding are the identity there).
    """
    from egsw.trainer import EGSWTrainer

    accelerator = SimpleNamespace(
        process_index=0, gather=lambda tensor: tensor, pad_across_processes=lambda tensor, dim=0: tensor
    )
    args = SimpleNamespace(
        egsw_alpha=settings["alpha"], egsw_temperature=settings["temperature"], egsw_mode=settings["mode"],
        egsw_rescale=settings.get("rescale", True), egsw_target_ess=settings.get("target_ess", 0.8),
    )  # fmt: skip
    stub = SimpleNamespace(
        accelerator=accelerator, args=args, model=SimpleNamespace(training=True),
        num_generations=group_size, num_generations_eval=group_size, _metrics={"train": defaultdict(list)},
    )  # fmt: skip
    stub._egsw_log_metrics = functools.partial(EGSWTrainer._egsw_log_metrics, stub)
    weighted = EGSWTrainer._egsw_weigh(stub, batch["advantages"], batch["entropies"], batch["mask"], "forward")
    metrics = {key: values[-1] for key, values in stub._metrics["train"].items()}
    return weighted, metrics


def as_verl(batch: dict[str, torch.Tensor], order: torch.Tensor, uid_prefix: str = "uid-") -> dict:
    """The same completions as verl holds them: (B, T) advantages A * mask, rows in ``order``, string uids."""
    mask = batch["mask"][order]
    return {
        "advantages": batch["advantages"][order].unsqueeze(1) * mask,
        "entropies": batch["entropies"][order],
        "response_mask": mask,
        "index": np.array([f"{uid_prefix}{int(g)}" for g in batch["groups"][order]], dtype=object),
    }


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("temperature", [1.0, 0.3, "auto"])
def test_equals_egsw_trainer_with_groups_shuffled(mode: str, temperature: float | str) -> None:
    batch = grpo_batch([4] * 6, length=9, seed=1)
    settings = {"alpha": 0.4, "temperature": temperature, "mode": mode, "target_ess": 0.7}
    expected, expected_metrics = trainer_weighted(batch, 4, **settings)
    if expected.dim() == 1:  # trajectory-wise TRL keeps its (B,) advantages
        expected = expected.unsqueeze(1) * batch["mask"]

    order = torch.randperm(len(batch["mask"]), generator=torch.Generator().manual_seed(7))
    inputs = as_verl(batch, order)
    got = egsw_advantages(**inputs, **settings)
    restored = torch.empty_like(got)
    restored[order] = got
    torch.testing.assert_close(restored, expected.float(), atol=1e-6, rtol=0)
    assert not torch.equal(restored, batch["advantages"].unsqueeze(1) * batch["mask"])  # the weights did something

    result = egsw_weigh(**inputs, **settings)
    metrics = egsw_metrics(result, inputs["advantages"], inputs["entropies"], inputs["response_mask"], mode)
    assert metrics.keys() == expected_metrics.keys()
    for key, value in expected_metrics.items():
        assert metrics[key] == pytest.approx(value, abs=1e-6), key


@pytest.mark.parametrize("mode", MODES)
def test_groups_of_different_sizes_weigh_as_each_group_alone(mode: str) -> None:
    sizes = [3, 5, 2, 5]
    batch = grpo_batch(sizes, length=7, seed=2)
    order = torch.randperm(sum(sizes), generator=torch.Generator().manual_seed(3))
    inputs = as_verl(batch, order)
    got = egsw_advantages(**inputs, alpha=0.5, temperature=0.5, mode=mode)
    for uid in np.unique(inputs["index"]):
        rows = torch.from_numpy(np.flatnonzero(inputs["index"] == uid))
        alone = egsw_advantages(
            inputs["advantages"][rows], inputs["entropies"][rows], inputs["response_mask"][rows],
            inputs["index"][rows.numpy()], alpha=0.5, temperature=0.5, mode=mode,
        )  # fmt: skip
        torch.testing.assert_close(got[rows], alone, atol=1e-7, rtol=0)


def test_int_and_str_group_ids_give_the_same_advantages() -> None:
    batch = grpo_batch([4, 4, 4], length=5, seed=4)
    order = torch.randperm(12, generator=torch.Generator().manual_seed(5))
    inputs = as_verl(batch, order)
    as_str = egsw_advantages(**inputs, alpha=0.1, temperature=1.0, mode="step")
    inputs["index"] = batch["groups"][order].numpy() * 10 + 3
    as_int = egsw_advantages(**inputs, alpha=0.1, temperature=1.0, mode="step")
    assert torch.equal(as_str, as_int)


@pytest.mark.parametrize("mode", MODES)
def test_padding_rows_give_zeros_and_leave_the_rest_unchanged(mode: str) -> None:
    batch = grpo_batch([4, 4], length=6, seed=6)
    inputs = as_verl(batch, torch.arange(8))
    without = egsw_advantages(**inputs, alpha=0.3, temperature="auto", mode=mode)

    pad = 3  # verl's padding rows: one uid shared by all of them, no active token, anything in their values
    padded = {
        "advantages": torch.cat([inputs["advantages"], torch.full((pad, 6), float("nan"))]),
        "entropies": torch.cat([inputs["entropies"], torch.full((pad, 6), float("inf"))]),
        "response_mask": torch.cat([inputs["response_mask"], torch.zeros(pad, 6, dtype=torch.long)]),
        "index": np.concatenate([inputs["index"], np.array(["pad0123"] * pad, dtype=object)]),
    }
    got = egsw_advantages(**padded, alpha=0.3, temperature="auto", mode=mode)
    assert torch.isfinite(got).all()
    assert torch.equal(got[8:], torch.zeros(pad, 6))
    assert torch.equal(got[:8], without)


def test_all_rows_padding_gives_zeros() -> None:
    zeros = torch.zeros(2, 3)
    got = egsw_advantages(zeros, zeros, zeros.long(), np.array(["p", "p"]), alpha=0.1, temperature=1.0, mode="step")
    assert torch.equal(got, zeros)


def test_worked_example_by_hand() -> None:
    """Two groups of two (docs/verl.md): step-wise, alpha 0.5, P 1, rescale; the rows arrive shuffled."""
    rows = {  # uid, A, H, mask
        "r3": ("q2", -1.0, [0.2, 0.8], [1, 1]),
        "r0": ("q1", 1.0, [0.2, 0.4], [1, 1]),
        "r2": ("q2", 1.0, [0.6, 0.0], [1, 0]),
        "r1": ("q1", -1.0, [1.0, 0.0], [1, 1]),
    }
    mask = torch.tensor([m for *_, m in rows.values()])
    advantages = torch.tensor([a for _, a, _, _ in rows.values()]).unsqueeze(1) * mask
    entropies = torch.tensor([h for _, _, h, _ in rows.values()])
    index = np.array([u for u, *_ in rows.values()], dtype=object)
    got = egsw_advantages(advantages, entropies, mask, index, alpha=0.5, temperature=1.0, mode="step")

    def top(gap: float) -> float:  # 2 * softmax of the higher of two scores that differ by ``gap``
        return 2.0 / (1.0 + math.exp(-gap))

    expected = torch.tensor(
        [
            [-(2 - top(2.2)), -1.0],  # r3: at t=1 it is alone in q2 (r2 has ended), weight 1
            [top(1.6), top(2.2)],  # r0: scores 1.1 vs -0.5, then 1.2 vs -1.0
            [top(2.2), 0.0],  # r2: 1.3 vs -0.9
            [-(2 - top(1.6)), -(2 - top(2.2))],  # r1
        ]
    )
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)


def test_mode_none_returns_the_advantages_unchanged() -> None:
    batch = as_verl(grpo_batch([3, 3], length=4, seed=8), torch.arange(6))
    got = egsw_advantages(**batch, alpha=0.1, temperature=1.0, mode="none")
    assert torch.equal(got, batch["advantages"]) and got is not batch["advantages"]


def test_bad_inputs_are_rejected() -> None:
    batch = as_verl(grpo_batch([3, 3], length=4, seed=9), torch.arange(6))
    with pytest.raises(ValueError, match="one group id per row"):
        egsw_advantages(**{**batch, "index": batch["index"][:5]}, alpha=0.1, temperature=1.0, mode="step")
    with pytest.raises(ValueError, match="entropies must have response_mask's shape"):
        egsw_advantages(**{**batch, "entropies": batch["entropies"][:, :3]}, alpha=0.1, temperature=1.0, mode="step")
    with pytest.raises(ValueError, match="temperature"):
        egsw_advantages(**batch, alpha=0.1, temperature=-1.0, mode="step")


def test_settings_from_config() -> None:
    assert EGSWSettings.from_config(OmegaConf.create({"algorithm": {}})) is None
    defaults = EGSWSettings.from_config(OmegaConf.create({"egsw": {"plugin": "egsw.integrations.verl"}}))
    assert defaults == EGSWSettings(mode="step", alpha=0.1, temperature=1.0, target_ess=0.8, rescale=True)
    auto = EGSWSettings.from_config(OmegaConf.create({"egsw": {"mode": "trajectory", "temperature": "auto"}}))
    assert (auto.mode, auto.temperature, auto.enabled) == ("trajectory", "auto", True)
    assert not EGSWSettings.from_config(OmegaConf.create({"egsw": {"mode": "none"}})).enabled
    for bad, message in [
        ({"mode": "stepwise"}, "egsw.mode"),
        ({"alpha": "x"}, "egsw.alpha"),
        ({"temperature": 0}, "egsw.temperature"),
        ({"target_ess": 1.5}, "egsw.target_ess"),
        ({"rescale": "yes"}, "egsw.rescale"),
        ({"temprature": 2.0}, "unknown egsw setting"),
    ]:
        with pytest.raises(ValueError, match=message):
            EGSWSettings.from_config(OmegaConf.create({"egsw": bad}))


def test_version_check_accepts_only_the_tested_range() -> None:
    for version in ("0.9.0", "0.9.1", "0.9.2rc1"):
        egsw_verl._check_verl_version(version)
    for version in ("0.8.0", "0.10.0", "1.0.0"):
        with pytest.raises(ImportError, match=rf"tested with verl>=0.9,<0.10, and verl {version} is installed"):
            egsw_verl._check_verl_version(version)


IMPORT_CHECK = """
import importlib, sys
import egsw.integrations.verl as plugin
print("installed", plugin.installed())
print("trl imported", sorted({"trl", "egsw.trainer", "egsw.config"} & set(sys.modules)))
import verl
verl.__version__ = "0.10.0"
try:
    importlib.reload(plugin)
except ImportError as error:
    print("reload with verl 0.10.0:", error)
"""


def test_importing_the_integration_needs_no_trl_and_fails_for_an_untested_verl() -> None:
    result = subprocess.run([sys.executable, "-c", IMPORT_CHECK], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert "installed True" in lines
    assert "trl imported []" in lines
    assert any(line.startswith("reload with verl 0.10.0:") and "tested with verl>=0.9,<0.10" in line for line in lines)
