"""The entropy-shaped advantage (arXiv 2506.14758), a peer of EGSW: the formula, its edge cases, the trainer."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from trl import GRPOConfig, GRPOTrainer

from egsw import EGSWConfig, EGSWTrainer
from egsw.entropy_advantage import entropy_shaped_advantages
from tests.test_trainer import generate_and_score, trl_entropies


def test_hand_computed_values():
    advantages = torch.tensor([1.0, -1.0, 0.0])
    entropies = torch.tensor([[0.5, 4.0], [0.5, 4.0], [3.0, 3.0]])
    mask = torch.tensor([[1, 1], [1, 0], [1, 1]])
    shaped = entropy_shaped_advantages(advantages, entropies, mask, beta=0.4, kappa=2.0)
    # psi = min(0.4 H, |A| / 2): 0.2 and min(1.6, 0.5) = 0.5; the masked position is 0; A = 0 gets nothing
    expected = torch.tensor([[1.2, 1.5], [-0.8, 0.0], [0.0, 0.0]])
    torch.testing.assert_close(shaped, expected)


def test_one_advantage_per_completion_equals_the_broadcast_tensor():
    advantages = torch.randn(6)
    entropies, mask = torch.rand(6, 5) * 3, (torch.rand(6, 5) > 0.3).int()
    one = entropy_shaped_advantages(advantages, entropies, mask, beta=0.3, kappa=1.5)
    full = entropy_shaped_advantages(advantages[:, None].expand(6, 5), entropies, mask, beta=0.3, kappa=1.5)
    torch.testing.assert_close(one, full)


def test_beta_zero_is_the_advantage_itself_and_garbage_under_the_mask_never_leaks():
    advantages = torch.randn(4, 3)
    entropies = torch.tensor([[0.1, math.nan, math.inf]] * 4)
    mask = torch.tensor([[1, 0, 0]] * 4)
    shaped = entropy_shaped_advantages(advantages, entropies, mask, beta=0.0, kappa=2.0)
    assert torch.isfinite(shaped).all()
    torch.testing.assert_close(shaped, advantages * mask)
    shaped = entropy_shaped_advantages(advantages, entropies, mask, beta=1.0, kappa=2.0)
    assert torch.isfinite(shaped).all() and (shaped[:, 1:] == 0).all()


@settings(max_examples=60, deadline=None)
@given(
    advantages=st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=8),
    entropy=st.floats(0.0, 20.0),
    beta=st.floats(0.0, 10.0),
    kappa=st.floats(1.0, 10.0),
)
def test_bonus_is_bounded_and_never_flips_the_sign(advantages, entropy, beta, kappa):
    a = torch.tensor(advantages)
    shaped = entropy_shaped_advantages(
        a, torch.full((a.numel(), 1), entropy), torch.ones(a.numel(), 1), beta=beta, kappa=kappa
    )[:, 0]
    bonus = shaped - a
    assert (bonus >= -1e-4).all()
    assert (bonus <= a.abs() / kappa + 1e-3).all()
    assert (bonus <= beta * entropy + 1e-3).all()
    assert (torch.sign(shaped) * torch.sign(a) >= 0).all()  # kappa >= 1: never flips


@pytest.mark.parametrize(("beta", "kappa"), [(-0.1, 2.0), (0.4, 0.0), (0.4, -1.0), (math.nan, 2.0)])
def test_bad_hyperparameters_are_refused(beta, kappa):
    with pytest.raises(ValueError, match="beta >= 0 and kappa > 0"):
        entropy_shaped_advantages(torch.zeros(2), torch.zeros(2, 2), torch.ones(2, 2), beta=beta, kappa=kappa)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("entropy_advantage_beta", -1.0, "entropy_advantage_beta must be a finite number >= 0"),
        ("entropy_advantage_beta", "lots", "entropy_advantage_beta must be a finite number >= 0"),
        ("entropy_advantage_kappa", 0.0, "entropy_advantage_kappa must be a finite number > 0"),
        ("entropy_advantage_kappa", math.inf, "entropy_advantage_kappa must be a finite number > 0"),
    ],
)
def test_config_refuses_bad_values_with_one_line(tmp_path, field, value, message):
    with pytest.raises(ValueError, match=message) as error:
        EGSWConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, **{field: value})
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("egsw_mode", ["none", "step"])
def test_trainer_shapes_trls_advantages_with_trls_entropies(tiny_model_dir, prompts_dataset, tmp_path, egsw_mode):
    """With egsw_mode none the loss sees exactly A + min(beta H, |A|/kappa); with EGSW on, EGSW weighs that."""
    fields = dict(entropy_advantage_beta=0.4, entropy_advantage_kappa=2.0, egsw_mode=egsw_mode, egsw_alpha=0.1)
    trainer, batch, calls = generate_and_score(
        EGSWTrainer, EGSWConfig, tiny_model_dir, prompts_dataset, tmp_path / "e", **fields
    )
    _, grpo_batch, grpo_calls = generate_and_score(
        GRPOTrainer, GRPOConfig, tiny_model_dir, prompts_dataset, tmp_path / "g"
    )
    assert torch.equal(batch["completion_ids"], grpo_batch["completion_ids"])
    assert calls == grpo_calls  # the entropies come from generation: no extra forward
    mask = batch["completion_mask"]
    expected = entropy_shaped_advantages(
        grpo_batch["advantages"], trl_entropies(trainer, batch), mask, beta=0.4, kappa=2.0
    )
    assert (expected != grpo_batch["advantages"][:, None] * mask).any()  # the bonus is not a no-op here
    if egsw_mode == "step":  # EGSW weighed the shaped advantages
        torch.testing.assert_close(trainer.egsw_last.advantages * mask, expected * mask, atol=1e-4, rtol=1e-4)
        expected = trainer.egsw_last.weights * expected
    assert batch["advantages"].shape == mask.shape
    torch.testing.assert_close(batch["advantages"] * mask, expected * mask, atol=1e-4, rtol=1e-4)
    assert trainer._metrics["train"]["entropy_advantage/bonus_mean"][-1] > 0
