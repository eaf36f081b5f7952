"""Clip-Cov and KL-Cov (arXiv 2505.22617), peers of EGSW: token selection, loss terms, gradients, the trainer.

The references are written from the equations with loops over float64 numpy arrays; the trainer is
checked against TRL's own loss on the same micro-batch with advantages changed so that TRL's
surrogate itself carries the variant's change.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from trl import GRPOTrainer

from egsw import EGSWConfig, EGSWTrainer
from egsw.cli import main
from egsw.covariance_losses import (
    clip_cov_selection,
    detach_selected,
    kl_cov_penalty,
    kl_cov_selection,
    ppo_clipped,
    selection_size,
    token_covariance,
)
from tests.helpers import trainer_kwargs, word_variety_reward
from tests.test_trainer import generate_and_score

# ---- references, from the equations -------------------------------------------------------------


def reference_covariance(logps, advantages, mask) -> np.ndarray:
    """Cov[i,t] = (A[i,t] - mean A) * (logp[i,t] - mean logp), means over mask == 1; 0 elsewhere."""
    logps, mask = np.asarray(logps, np.float64), np.asarray(mask)
    advantages = np.asarray(advantages, np.float64)
    rows, cols = logps.shape
    adv = lambda i, t: advantages[i] if advantages.ndim == 1 else advantages[i, t]  # noqa: E731
    valid = [(i, t) for i in range(rows) for t in range(cols) if mask[i, t]]
    mean_a = sum(adv(i, t) for i, t in valid) / len(valid)
    mean_l = sum(logps[i, t] for i, t in valid) / len(valid)
    cov = np.zeros((rows, cols))
    for i, t in valid:
        cov[i, t] = (adv(i, t) - mean_a) * (logps[i, t] - mean_l)
    return cov


def reference_candidates(logps, old, advantages, mask, lower, upper, eps_low, eps_high) -> set[tuple[int, int]]:
    """Valid tokens whose PPO surrogate is not clipped (-A clip(r) <= -A r) and whose Cov is in (lower, upper)."""
    cov = reference_covariance(logps, advantages, mask)
    out = set()
    for i in range(len(logps)):
        for t in range(len(logps[0])):
            a = advantages[i]
            r = math.exp(logps[i][t] - old[i][t])
            clipped = -a * min(max(r, 1 - eps_low), 1 + eps_high) > -a * r
            if mask[i][t] and not clipped and lower < cov[i, t] < upper:
                out.add((i, t))
    return out


def positions(selected: torch.Tensor) -> set[tuple[int, int]]:
    return {(int(i), int(t)) for i, t in selected.nonzero()}


def ragged_batch(seed: int, rows: int = 6, cols: int = 7):
    gen = torch.Generator().manual_seed(seed)
    logps = -torch.rand(rows, cols, generator=gen) * 6.0
    advantages = torch.randn(rows, generator=gen) * 2.0
    lengths = torch.randint(1, cols + 1, (rows,), generator=gen)
    mask = (torch.arange(cols)[None, :] < lengths[:, None]).int()
    return logps, advantages, mask


# ---- the covariance and the counts --------------------------------------------------------------


@pytest.mark.parametrize(
    ("valid", "ratio", "count"),
    [(0, 2e-4, 0), (1, 2e-4, 1), (4999, 2e-4, 1), (5000, 2e-4, 1), (10_000, 2e-4, 2), (14_999, 2e-4, 2),
     (999, 2e-3, 1), (1000, 2e-3, 2), (640, 2e-3, 1), (7, 0.5, 3), (7, 1.0, 7)],
)  # fmt: skip
def test_selection_size_rounds_down_with_at_least_one(valid, ratio, count):
    assert selection_size(valid, ratio) == count


def test_covariance_equals_the_reference_and_padding_never_leaks():
    logps, advantages, mask = ragged_batch(0)
    logps[mask == 0] = math.nan  # garbage under the mask
    cov = token_covariance(logps, advantages, mask)
    expected = reference_covariance(torch.nan_to_num(logps).numpy(), advantages.numpy(), mask.numpy())
    assert torch.isfinite(cov).all() and (cov[mask == 0] == 0).all()
    np.testing.assert_allclose(cov.numpy(), expected, rtol=1e-5, atol=1e-5)
    full = token_covariance(logps, advantages[:, None].expand(-1, logps.size(1)), mask)
    torch.testing.assert_close(cov, full)  # (B,) advantages broadcast over the tokens


def test_wrong_shapes_are_refused():
    logps, advantages, mask = ragged_batch(1)
    with pytest.raises(ValueError, match="advantages must be"):
        token_covariance(logps, advantages[:-1], mask)
    with pytest.raises(ValueError, match="logps and mask must both be"):
        token_covariance(logps, advantages, mask[:, :-1])


# ---- Clip-Cov -----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_clip_cov_selects_only_candidates_and_the_right_number(seed):
    logps, advantages, mask = ragged_batch(seed)
    old = logps + torch.randn(logps.shape, generator=torch.Generator().manual_seed(seed)) * 0.3  # some are clipped
    candidates = reference_candidates(
        logps.tolist(), old.tolist(), advantages.tolist(), mask.tolist(), 0.1, 4.0, 0.2, 0.28
    )
    assert candidates  # the case is not vacuous
    kwargs = dict(lower=0.1, upper=4.0, epsilon_low=0.2, epsilon_high=0.28)
    for ratio in (0.05, 0.2, 1.0):
        selected = clip_cov_selection(
            logps, old, advantages, mask, ratio=ratio, generator=torch.Generator().manual_seed(7), **kwargs
        )
        wanted = min(len(candidates), max(math.floor(ratio * int(mask.sum())), 1))
        assert positions(selected) <= candidates and len(positions(selected)) == wanted
    everything = clip_cov_selection(
        logps, old, advantages, mask, ratio=1.0, generator=torch.Generator().manual_seed(0), **kwargs
    )
    assert positions(everything) == candidates


def test_clip_cov_excludes_clipped_tokens_and_respects_the_bounds():
    logps = torch.tensor([[-1.0, -3.0, -5.0, -0.5]])
    advantages = torch.tensor([[3.0, -3.0, 3.0, 0.0]])
    mask = torch.ones(1, 4)
    # means: A 0.75, logp -2.375; Cov = 3.09, 2.34, -5.91, -1.41: only the first two are in (1, 5)
    cov = token_covariance(logps, advantages, mask)
    torch.testing.assert_close(cov, torch.tensor([[2.25 * 1.375, -3.75 * -0.625, 2.25 * -2.625, -0.75 * 1.875]]))

    def draw(old: torch.Tensor, **extra: float) -> set[tuple[int, int]]:
        generator = torch.Generator().manual_seed(0)
        return positions(
            clip_cov_selection(
                logps, old, advantages, mask, ratio=1.0, lower=1.0, upper=5.0, epsilon_low=0.2, epsilon_high=0.2,
                generator=generator, **extra,
            )
        )  # fmt: skip

    assert draw(logps.clone()) == {(0, 0), (0, 1)}  # on-policy: r = 1, nothing is clipped
    old = logps.clone()
    old[0, 0] -= 0.5  # r = 1.65 > 1.2 with A > 0: clipped, so no candidate
    assert draw(old) == {(0, 1)}
    assert ppo_clipped(logps, old, advantages, epsilon_low=0.2, epsilon_high=0.2).tolist() == [
        [True, False] + [False] * 2
    ]
    old = logps.clone()
    old[0, 1] -= 0.1  # r = 1.105, inside the clip range; A < 0 so PPO does not clip it, but delta 1.05 caps it
    assert draw(old) == {(0, 0), (0, 1)} and draw(old, delta=1.05) == {(0, 0)}


def test_clip_cov_draw_is_uniform_reproducible_and_never_picks_padding():
    logps, advantages, mask = ragged_batch(3, rows=8, cols=9)
    logps[mask == 0] = 50.0  # padding that would have a huge covariance
    kwargs = dict(ratio=0.02, lower=0.0, upper=1e9, epsilon_low=0.2, epsilon_high=0.2)
    candidates = positions(clip_cov_selection(
        logps, logps, advantages, mask, generator=torch.Generator().manual_seed(0), **{**kwargs, "ratio": 1.0}
    ))  # fmt: skip
    counts = dict.fromkeys(candidates, 0)
    for seed in range(400):
        chosen = positions(
            clip_cov_selection(logps, logps, advantages, mask, generator=torch.Generator().manual_seed(seed), **kwargs)
        )
        assert len(chosen) == 1 and chosen <= candidates
        counts[next(iter(chosen))] += 1
    assert all(mask[i, t] for i, t in candidates)
    assert min(counts.values()) > 0  # every candidate comes up
    again = [
        clip_cov_selection(logps, logps, advantages, mask, generator=torch.Generator().manual_seed(5), **kwargs)
        for _ in range(2)
    ]
    assert torch.equal(*again)


def test_clip_cov_detaches_exactly_the_selected_tokens():
    logps, advantages, mask = ragged_batch(4)
    old = logps - 0.05
    selected = torch.zeros_like(mask, dtype=torch.bool)
    selected[0, 0] = selected[2, 0] = True

    def surrogate(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        leaf = values.clone().requires_grad_(True)
        used = detach_selected(leaf, selected) if values is logps else leaf
        ratio = torch.exp(used - old)
        adv = advantages[:, None]
        loss = (-torch.min(ratio * adv, ratio.clamp(0.8, 1.2) * adv) * mask).sum()
        loss.backward()
        return loss.detach(), leaf.grad

    loss, grad = surrogate(logps)
    plain_loss, plain_grad = surrogate(logps.clone())
    torch.testing.assert_close(loss, plain_loss)  # the values are kept
    assert (grad[selected] == 0).all() and (plain_grad[selected] != 0).all()
    torch.testing.assert_close(grad[~selected], plain_grad[~selected])


# ---- KL-Cov -------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_kl_cov_selects_the_largest_covariances(seed):
    logps, advantages, mask = ragged_batch(seed, rows=10, cols=12)
    logps[mask == 0] = math.inf
    cov = reference_covariance(torch.where(mask.bool(), logps, 0.0).numpy(), advantages.numpy(), mask.numpy())
    valid = [(i, t) for i in range(10) for t in range(12) if mask[i, t]]
    ranked = sorted(valid, key=lambda p: -cov[p])
    for ratio in (2e-3, 0.05, 0.3, 1.0):
        k = max(math.floor(ratio * len(valid)), 1)
        selected = kl_cov_selection(logps, advantages, mask, ratio=ratio)
        assert positions(selected) == set(ranked[:k])


def test_kl_cov_with_no_valid_token_selects_nothing():
    logps, advantages, _ = ragged_batch(0)
    mask = torch.zeros_like(logps)
    assert not kl_cov_selection(logps, advantages, mask, ratio=0.5).any()
    assert not clip_cov_selection(
        logps, logps, advantages, mask, ratio=0.5, lower=-1e9, upper=1e9, epsilon_low=0.2, epsilon_high=0.2,
        generator=torch.Generator(),
    ).any()  # fmt: skip


def test_kl_cov_penalty_values_and_gradient():
    logps, _, mask = ragged_batch(2)
    old = logps + torch.linspace(-0.3, 0.3, logps.numel()).view_as(logps)
    selected = torch.zeros_like(mask, dtype=torch.bool)
    selected[0, 0] = selected[1, 0] = selected[3, 0] = True
    leaf = logps.clone().requires_grad_(True)
    penalty = kl_cov_penalty(leaf, old, selected, coef=0.7)
    penalty.sum().backward()
    for i in range(logps.size(0)):
        for t in range(logps.size(1)):
            gap = logps[i, t].item() - old[i, t].item()
            want_value = 0.7 * abs(gap) if selected[i, t] else 0.0
            want_grad = 0.7 * math.copysign(1.0, gap) if selected[i, t] and gap != 0 else 0.0
            assert penalty[i, t].item() == pytest.approx(want_value, abs=1e-6)
            assert leaf.grad[i, t].item() == pytest.approx(want_grad, abs=1e-6)
    # on-policy, TRL's old log-probs are the current ones: no penalty and no gradient
    leaf.grad = None
    on_policy = kl_cov_penalty(leaf, leaf.detach(), selected, coef=0.7)
    on_policy.sum().backward()
    assert (on_policy == 0).all() and (leaf.grad == 0).all()


# ---- the trainer --------------------------------------------------------------------------------


def loss_and_grads(loss_fn, trainer, inputs) -> tuple[float, dict[str, torch.Tensor]]:
    trainer.model.zero_grad()
    loss = loss_fn(trainer, trainer.model, inputs)
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in trainer.model.named_parameters() if p.grad is not None}
    return loss.item(), grads


def assert_same_grads(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    assert got.keys() == want.keys()
    for name in got:
        torch.testing.assert_close(got[name], want[name], rtol=1e-4, atol=1e-7, msg=name)


def with_advantages(inputs: dict, advantages: torch.Tensor) -> dict:
    return {**inputs, "advantages": advantages}


def current_logps(trainer, inputs) -> torch.Tensor:
    with torch.no_grad():
        logps, _, _ = GRPOTrainer._get_per_token_logps_and_entropies(
            trainer,
            trainer.model,
            torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1),
            torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1),
            inputs["completion_ids"].size(1),
        )
    return logps


def micro_batch(tmp_path, tiny_model_dir, prompts_dataset, **fields):
    trainer, batch, _ = generate_and_score(
        EGSWTrainer, EGSWConfig, tiny_model_dir, prompts_dataset, tmp_path, egsw_mode="none",
        share_prompt_forward=False, **fields,
    )  # fmt: skip
    trainer.current_gradient_accumulation_steps = 1  # set by the training loop
    advantages = batch["advantages"]
    batch["advantages"] = advantages[:, None].expand_as(batch["completion_mask"]).clone()
    lengths = batch["completion_mask"].sum(1)
    assert lengths.min() > 0 and lengths.min() < lengths.max()  # ragged: the loss types normalise differently
    return trainer, batch


def test_variant_none_is_trls_loss_exactly(tmp_path, tiny_model_dir, prompts_dataset):
    """(tests/test_trainer.py checks whole training runs with egsw_mode none against GRPOTrainer.)"""
    trainer, inputs = micro_batch(tmp_path, tiny_model_dir, prompts_dataset, num_iterations=2)
    inputs["old_per_token_logps"] = current_logps(trainer, inputs) - 0.05
    loss, grads = loss_and_grads(EGSWTrainer._compute_loss, trainer, inputs)
    want_loss, want_grads = loss_and_grads(GRPOTrainer._compute_loss, trainer, inputs)
    assert loss == want_loss and all(torch.equal(grads[n], want_grads[n]) for n in want_grads)
    assert trainer.cov_last_selection is None and "cov/selected_fraction" not in trainer._metrics["train"]


@pytest.mark.parametrize("loss_type", ["grpo", "bnpo", "dr_grpo", "dapo", "luspo"])
def test_kl_cov_adds_its_penalty_as_trl_adds_per_token_loss(tmp_path, tiny_model_dir, prompts_dataset, loss_type):
    """Off-policy, r = e^0.05 is inside the clip range, so TRL's surrogate is -r A on every token and
    ``-r A + p = -r (A - p / r)``: TRL's own loss with A - p / r on the selected tokens must give
    KL-Cov's value, and with A - coef / r (the gradient of coef * |log r|) KL-Cov's gradient."""
    trainer, inputs = micro_batch(
        tmp_path, tiny_model_dir, prompts_dataset, policy_loss_variant="kl_cov", kl_cov_ratio=0.1, kl_cov_coef=0.5,
        loss_type=loss_type,
    )  # fmt: skip
    inputs["old_per_token_logps"] = current_logps(trainer, inputs) - 0.05
    loss, grads = loss_and_grads(EGSWTrainer._compute_loss, trainer, inputs)
    selected = trainer.cov_last_selection
    assert selected.sum() == max(int(0.1 * inputs["completion_mask"].sum()), 1)
    ratio = math.exp(0.05)
    value_shift = torch.where(selected, 0.5 * 0.05 / ratio, 0.0)
    want_loss, _ = loss_and_grads(
        GRPOTrainer._compute_loss, trainer, with_advantages(inputs, inputs["advantages"] - value_shift)
    )
    assert loss == pytest.approx(want_loss, rel=1e-5, abs=1e-7)
    grad_shift = torch.where(selected, 0.5 / ratio, 0.0)
    _, want_grads = loss_and_grads(
        GRPOTrainer._compute_loss, trainer, with_advantages(inputs, inputs["advantages"] - grad_shift)
    )
    assert_same_grads(grads, want_grads)
    assert trainer._metrics["train"]["cov/kl_penalty"][-1] == pytest.approx(0.5 * 0.05, rel=1e-4)


@pytest.mark.parametrize("loss_type", ["grpo", "dapo"])
def test_clip_cov_removes_the_selected_tokens_gradient_only(tmp_path, tiny_model_dir, prompts_dataset, loss_type):
    """Clip-Cov's loss has TRL's value, and TRL's gradient with the selected tokens' advantage set to 0."""
    trainer, inputs = micro_batch(
        tmp_path, tiny_model_dir, prompts_dataset, policy_loss_variant="clip_cov", clip_cov_ratio=0.1,
        clip_cov_lb=0.0, clip_cov_ub=100.0, loss_type=loss_type,
    )  # fmt: skip
    loss, grads = loss_and_grads(EGSWTrainer._compute_loss, trainer, inputs)
    selected = trainer.cov_last_selection
    assert selected.sum() == max(int(0.1 * inputs["completion_mask"].sum()), 1)
    plain_loss, plain_grads = loss_and_grads(GRPOTrainer._compute_loss, trainer, inputs)
    assert loss == pytest.approx(plain_loss, rel=1e-6, abs=1e-8)
    _, want_grads = loss_and_grads(
        GRPOTrainer._compute_loss, trainer, with_advantages(inputs, inputs["advantages"].masked_fill(selected, 0.0))
    )
    assert_same_grads(grads, want_grads)
    assert max((grads[n] - plain_grads[n]).abs().max().item() for n in grads) > 1e-6  # it did change the update
    fraction = trainer._metrics["train"]["cov/selected_fraction"][-1]
    assert fraction == pytest.approx(selected.sum().item() / inputs["completion_mask"].sum().item())


@pytest.mark.slow
@pytest.mark.parametrize(
    "fields",
    # The tiny random model's log-probs are nearly uniform: no covariance reaches the default Clip-Cov band (1, 5).
    [dict(policy_loss_variant="clip_cov", clip_cov_lb=0.0), dict(policy_loss_variant="kl_cov", num_iterations=2)],
    ids=["clip_cov", "kl_cov-num_iterations-2"],
)
def test_training_steps_run_and_log_the_selection(tmp_path, tiny_model_dir, prompts_dataset, fields):
    args = EGSWConfig(**trainer_kwargs(tmp_path, egsw_mode="none", **fields))
    trainer = EGSWTrainer(
        model=str(tiny_model_dir), reward_funcs=word_variety_reward, args=args, train_dataset=prompts_dataset
    )
    trainer.train()
    logged = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logged) == 2 and all(math.isfinite(entry["loss"]) for entry in logged)
    for entry in logged:  # default ratios: at least one token of each micro-batch, 0.02% / 0.2% of them
        assert 0 < entry["cov/selected_fraction"] < 0.05
    if fields["policy_loss_variant"] == "kl_cov":
        assert trainer._trl_computes_old_logps()
        assert logged[1]["cov/kl_penalty"] > 0  # the second pass over the batch is off-policy


def test_config_defaults_and_refusals(tmp_path):
    config = EGSWConfig(**trainer_kwargs(tmp_path))
    assert config.policy_loss_variant == "none"
    assert (config.clip_cov_ratio, config.clip_cov_lb, config.clip_cov_ub) == (2e-4, 1.0, 5.0)
    assert (config.kl_cov_ratio, config.kl_cov_coef) == (2e-3, 1.0)
    refusals = [
        (dict(policy_loss_variant="kl"), "policy_loss_variant must be one of none, clip_cov, kl_cov"),
        (dict(clip_cov_ratio=0.0), "clip_cov_ratio must be a number in \\(0, 1\\]"),
        (dict(kl_cov_ratio=2.0), "kl_cov_ratio must be a number in \\(0, 1\\]"),
        (dict(clip_cov_lb=5.0), "clip_cov_lb < clip_cov_ub"),
        (dict(clip_cov_ub=math.inf), "clip_cov_lb and clip_cov_ub must be finite"),
        (dict(kl_cov_coef=-1.0), "kl_cov_coef must be a finite number >= 0"),
        (dict(policy_loss_variant="clip_cov", loss_type="cispo"), "use loss_type grpo, bnpo, dr_grpo, dapo, luspo"),
        (dict(policy_loss_variant="kl_cov", loss_type="sapo"), "got 'sapo'"),
        (dict(policy_loss_variant="kl_cov", importance_sampling_level="sequence"), "importance_sampling_level token"),
        (dict(policy_loss_variant="kl_cov", top_entropy_quantile=0.2), "leave top_entropy_quantile at 1"),
        (dict(policy_loss_variant="kl_cov", off_policy_mask_threshold=0.5), "off_policy_mask_threshold unset"),
    ]
    for fields, message in refusals:
        with pytest.raises(ValueError, match=message) as error:
            EGSWConfig(**trainer_kwargs(tmp_path, **fields))
        assert "\n" not in str(error.value)
    # settings that compose: Clip-Cov with TRL's high-entropy tokens, the reference KL, strings from a command line
    EGSWConfig(**trainer_kwargs(tmp_path, policy_loss_variant="clip_cov", top_entropy_quantile=0.2, beta=0.04))
    assert EGSWConfig(**trainer_kwargs(tmp_path, kl_cov_ratio="0.01")).kl_cov_ratio == 0.01


def test_train_dry_run_shows_the_variant(capsys):
    assert main(["train", "--egsw_mode", "none", "--policy_loss_variant", "kl_cov", "--dry-run"]) == 0
    method = next(line for line in capsys.readouterr().out.splitlines() if line.strip().startswith("method"))
    assert "KL-Cov: 1 x |log-ratio| on the 0.002 of the tokens" in method and "on-policy here" in method
    assert main(["train", "--policy_loss_variant", "clip_cov", "--clip_cov_ub", "4", "--dry-run"]) == 0
    assert "Clip-Cov: gradient detached on 0.0002 of the tokens with covariance in (1, 4)" in capsys.readouterr().out
