"""EGSW weights against a float64 reference written from the equations, edge cases and properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from egsw import compute_egsw_weights, effective_sample_size, egsw_weights, token_entropy


def reference_weights(
    advantages: np.ndarray,
    entropies: np.ndarray,
    mask: np.ndarray,
    group_size: int,
    alpha: float,
    temperature: float,
    mode: str,
    rescale: bool,
) -> np.ndarray:
    """docs/design.md section 1 with loops over groups and steps, Python floats (float64)."""
    batch, length = mask.shape
    adv = advantages if advantages.ndim == 2 else np.repeat(advantages[:, None], length, axis=1)
    weights = np.zeros((batch, length))

    def softmax(scores: list[float]) -> list[float]:
        peak = max(scores)
        exps = [math.exp(s - peak) for s in scores]
        total = sum(exps)
        scale = len(scores) if rescale else 1
        return [e / total * scale for e in exps]

    for start in range(0, batch, group_size):
        members = range(start, start + group_size)
        if mode == "step":
            for t in range(length):
                active = [i for i in members if mask[i, t]]
                if not active:
                    continue
                scores = [(float(adv[i, t]) + alpha * float(entropies[i, t])) / temperature for i in active]
                for i, w in zip(active, softmax(scores), strict=True):
                    weights[i, t] = w
        else:
            active = [i for i in members if mask[i].any()]
            if not active:
                continue
            scores = []
            for i in active:
                steps = [t for t in range(length) if mask[i, t]]
                mean_adv = sum(float(adv[i, t]) for t in steps) / len(steps)
                mean_ent = sum(float(entropies[i, t]) for t in steps) / len(steps)
                scores.append((mean_adv + alpha * mean_ent) / temperature)
            for i, w in zip(active, softmax(scores), strict=True):
                for t in range(length):
                    if mask[i, t]:
                        weights[i, t] = w
    return weights


def random_batch(
    seed: int, groups: int = 3, group_size: int = 4, length: int = 7, adv_scale: float = 1.0, per_token: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Ragged right-padded completions, NaN in every masked slot."""
    gen = torch.Generator().manual_seed(seed)
    batch = groups * group_size
    lengths = torch.randint(0, length + 1, (batch,), generator=gen)
    mask = (torch.arange(length).unsqueeze(0) < lengths.unsqueeze(1)).long()
    adv_shape = (batch, length) if per_token else (batch,)
    advantages = torch.randn(adv_shape, generator=gen, dtype=torch.float64) * adv_scale
    entropies = torch.rand((batch, length), generator=gen, dtype=torch.float64) * 3
    entropies = entropies.masked_fill(mask == 0, float("nan"))
    if per_token:
        advantages = advantages.masked_fill(mask == 0, float("nan"))
    return advantages, entropies, mask


def check_against_reference(advantages, entropies, mask, group_size, alpha, temperature, mode, rescale) -> None:
    got = egsw_weights(
        advantages, entropies, mask, group_size=group_size, alpha=alpha, temperature=temperature, mode=mode,
        rescale=rescale,
    )  # fmt: skip
    want = reference_weights(
        advantages.numpy(), entropies.numpy(), mask.numpy(), group_size, alpha, temperature, mode, rescale
    )
    assert got.dtype == torch.float32 and got.shape == mask.shape
    assert torch.isfinite(got).all()
    np.testing.assert_allclose(got.numpy(), want, rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize("mode", ["step", "trajectory"])
@pytest.mark.parametrize("rescale", [True, False])
@pytest.mark.parametrize("temperature", [1e-4, 1e-2, 0.5, 1.0, 10.0, 1e6])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_reference_on_random_ragged_batches(mode, rescale, temperature, seed):
    advantages, entropies, mask = random_batch(seed, per_token=seed == 2)
    check_against_reference(advantages, entropies, mask, 4, 0.3, temperature, mode, rescale)


@pytest.mark.parametrize("mode", ["step", "trajectory"])
@pytest.mark.parametrize("temperature", [1e-4, 1.0, 1e6])
def test_matches_reference_with_huge_advantages(mode, temperature):
    advantages, entropies, mask = random_batch(5, adv_scale=1e4)
    advantages = advantages.clamp(-1e4, 1e4)
    check_against_reference(advantages, entropies, mask, 4, 0.5, temperature, mode, True)


def test_score_gap_of_one_at_magnitude_1e8_is_resolved():
    # |A| = 1e4, P = 1e-4: scores ~1e8 differing by 1 must give weights e/(1+e), 1/(1+e).
    advantages = torch.tensor([1e4, 1e4 - 1e-4], dtype=torch.float64)
    mask = torch.ones(2, 1, dtype=torch.long)
    got = egsw_weights(advantages, torch.zeros(2, 1), mask, group_size=2, alpha=0.0, temperature=1e-4, rescale=False)
    np.testing.assert_allclose(got[:, 0].numpy(), [math.e / (1 + math.e), 1 / (1 + math.e)], rtol=1e-6)


@pytest.mark.parametrize("mode", ["step", "trajectory"])
def test_one_active_member_gets_weight_one(mode):
    mask = torch.tensor([[1, 1, 1], [1, 0, 0], [0, 0, 0]])
    advantages = torch.tensor([5.0, -3.0, 2.0])
    entropies = torch.rand(3, 3)
    weights = egsw_weights(advantages, entropies, mask, group_size=3, alpha=1.0, temperature=0.1, mode=mode)
    if mode == "step":
        assert weights[0, 1] == 1.0 and weights[0, 2] == 1.0  # member 0 alone at t = 1, 2
    else:
        assert weights[0].sum() > 0
    assert (weights[2] == 0).all()  # no active token: weight 0


@pytest.mark.parametrize("mode", ["step", "trajectory"])
def test_fully_masked_row_and_group_get_zero_and_stay_finite(mode):
    mask = torch.zeros(4, 5, dtype=torch.long)
    mask[0, :2] = 1
    entropies = torch.full((4, 5), float("nan"))
    entropies[0, :2] = 1.0
    advantages = torch.tensor([1.0, float("nan"), float("inf"), -float("inf")])
    advantages[1:] = 0.0  # values of fully masked rows are never read ...
    weights = egsw_weights(advantages, entropies, mask, group_size=2, alpha=1.0, temperature=1.0, mode=mode)
    assert torch.isfinite(weights).all()
    assert (weights[1:] == 0).all() and (weights[0, :2] == 1).all()


def test_garbage_in_masked_slots_never_leaks():
    advantages, entropies, mask = random_batch(3, per_token=True)
    clean = egsw_weights(advantages, entropies, mask, group_size=4, alpha=0.7, temperature=0.3)
    dirty_adv = advantages.masked_fill(mask == 0, float("inf"))
    dirty_ent = entropies.masked_fill(mask == 0, -1e30)
    dirty = egsw_weights(dirty_adv, dirty_ent, mask, group_size=4, alpha=0.7, temperature=0.3)
    assert torch.equal(clean, dirty)


@pytest.mark.parametrize("mode", ["step", "trajectory"])
def test_equal_rewards_give_zero_weighted_advantage(mode):
    advantages = torch.zeros(8)  # a group whose rewards are all equal has A = 0
    entropies = torch.rand(8, 6) * 4
    mask = torch.ones(8, 6, dtype=torch.long)
    weights = egsw_weights(advantages, entropies, mask, group_size=4, alpha=2.0, temperature=0.01, mode=mode)
    assert (weights * advantages.unsqueeze(1) == 0).all()
    assert not torch.allclose(weights, torch.ones_like(weights))  # entropy still moves the weights


def test_token_entropy_matches_direct_formula():
    logits = torch.randn(3, 5, 11)
    for temperature in (0.7, 1.0, 2.5):
        probs = torch.softmax(logits.double() / temperature, dim=-1)
        want = -(probs * probs.log()).sum(-1)
        torch.testing.assert_close(token_entropy(logits, temperature).double(), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(advantages=torch.zeros(7)), "advantages must have shape"),
        (dict(entropies=torch.zeros(8, 3)), "entropies must have the mask's shape"),
        (dict(mask=torch.ones(8)), "mask must be 2-D"),
        (dict(group_size=3), "does not divide the batch size"),
        (dict(group_size=0), "group_size must be a positive int"),
        (dict(temperature=0.0), "temperature must be"),
        (dict(temperature=-1.0), "temperature must be"),
        (dict(temperature="hot"), "temperature must be"),
        (dict(mode="token"), "mode must be one of"),
        (dict(alpha="much"), "alpha must be a finite number"),
        (dict(alpha=float("inf")), "alpha must be a finite number"),
        (dict(temperature="auto", target_ess=0.0), "target_ess must be in"),
        (dict(advantages=torch.tensor([float("nan")] + [0.0] * 7)), "non-finite value at an active"),
    ],
)
def test_bad_input_names_the_argument(kwargs, message):
    arguments = dict(
        advantages=torch.zeros(8), entropies=torch.zeros(8, 4), mask=torch.ones(8, 4), group_size=4, alpha=0.1,
        temperature=1.0,
    )  # fmt: skip
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        egsw_weights(**arguments)


# ---- properties (hypothesis) -----------------------------------------------------------------------


@st.composite
def batches(draw):
    group_size = draw(st.integers(1, 5))
    groups = draw(st.integers(1, 3))
    length = draw(st.integers(1, 6))
    batch = groups * group_size
    lengths = draw(st.lists(st.integers(0, length), min_size=batch, max_size=batch))
    mask = (torch.arange(length).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)).long()
    finite = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False)
    advantages = torch.tensor(draw(st.lists(finite, min_size=batch, max_size=batch)), dtype=torch.float64)
    entropy_values = st.floats(0, 12, allow_nan=False)
    entropies = torch.tensor(draw(st.lists(entropy_values, min_size=batch * length, max_size=batch * length)))
    entropies = entropies.view(batch, length).double().masked_fill(mask == 0, float("nan"))
    alpha = draw(st.floats(-3, 3, allow_nan=False))
    temperature = draw(st.floats(1e-4, 1e6, allow_nan=False))
    mode = draw(st.sampled_from(["step", "trajectory"]))
    return advantages, entropies, mask, group_size, alpha, temperature, mode


def normaliser_sums(weights: torch.Tensor, mask: torch.Tensor, group_size: int, mode: str):
    """Sum of weights per softmax and the number of members it ran over."""
    if mode == "step":
        grouped_w = weights.double().view(-1, group_size, weights.size(1))
        grouped_m = mask.view(-1, group_size, mask.size(1))
        return grouped_w.sum(1), grouped_m.sum(1)
    per_completion = weights.double().amax(dim=1).view(-1, group_size)
    return per_completion.sum(1), mask.any(dim=1).view(-1, group_size).sum(1)


@settings(max_examples=150, deadline=None)
@given(batches(), st.booleans())
def test_weights_are_finite_nonnegative_and_sum_to_member_count(batch, rescale):
    advantages, entropies, mask, group_size, alpha, temperature, mode = batch
    weights = egsw_weights(
        advantages, entropies, mask, group_size=group_size, alpha=alpha, temperature=temperature, mode=mode,
        rescale=rescale,
    )  # fmt: skip
    assert torch.isfinite(weights).all() and (weights >= 0).all()
    assert (weights[mask == 0] == 0).all()
    sums, counts = normaliser_sums(weights, mask, group_size, mode)
    expected = counts.double() if rescale else (counts > 0).double()
    torch.testing.assert_close(sums, expected, rtol=1e-5, atol=1e-5)


@settings(max_examples=100, deadline=None)
@given(batches(), st.floats(-50, 50, allow_nan=False), st.integers(0, 2))
def test_adding_a_constant_to_a_groups_scores_changes_nothing(batch, shift, which):
    advantages, entropies, mask, group_size, alpha, temperature, mode = batch
    group = which % (advantages.numel() // group_size)
    shifted = advantages.clone()
    shifted[group * group_size : (group + 1) * group_size] += shift
    kwargs = dict(group_size=group_size, alpha=alpha, temperature=max(temperature, 1e-2), mode=mode)
    torch.testing.assert_close(
        egsw_weights(advantages, entropies, mask, **kwargs),
        egsw_weights(shifted, entropies, mask, **kwargs),
        rtol=1e-4,
        atol=1e-5,
    )


@settings(max_examples=100, deadline=None)
@given(batches())
def test_infinite_temperature_limit_gives_all_ones(batch):
    advantages, entropies, mask, group_size, alpha, _, mode = batch
    weights = egsw_weights(advantages, entropies, mask, group_size=group_size, alpha=alpha, temperature=1e13, mode=mode)
    torch.testing.assert_close(weights, mask.float(), rtol=0, atol=1e-6)


# ---- temperature="auto" ----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["step", "trajectory"])
@pytest.mark.parametrize("target", [0.3, 0.6, 0.9, 0.99])
def test_auto_temperature_hits_the_target_ess_in_every_group(mode, target):
    advantages, entropies, mask = random_batch(11, groups=5, group_size=6, length=9, per_token=True)
    result = compute_egsw_weights(
        advantages, entropies, mask, group_size=6, alpha=0.5, temperature="auto", mode=mode, target_ess=target
    )
    ess = effective_sample_size(result.weights, mask, 6, mode)
    scored = torch.isfinite(result.temperature)  # groups with tied scores need no temperature
    assert scored.any()
    hits = 0
    for group in torch.nonzero(scored).flatten().tolist():
        rows = slice(group * 6, (group + 1) * 6)

        def weights_at(temperature: float, rows: slice = rows) -> torch.Tensor:
            return egsw_weights(
                advantages[rows], entropies[rows], mask[rows], group_size=6, alpha=0.5, temperature=temperature,
                mode=mode,
            )  # fmt: skip

        chosen = result.temperature[group].item()
        torch.testing.assert_close(result.weights[rows], weights_at(chosen), rtol=1e-5, atol=1e-6)
        if abs(ess[group].item() - target) < 1e-6:
            hits += 1
        else:
            # Below the ESS any P reaches (a position with one active member always weighs 1 step-wise):
            # the most concentrated weights, which a 1000x colder P does not change.
            assert ess[group] > target
            colder = effective_sample_size(weights_at(chosen / 1000), mask[rows], 6, mode)
            torch.testing.assert_close(colder[0], ess[group], rtol=0, atol=1e-9)
    assert hits >= (1 if target < 0.5 else scored.sum().item())


def test_auto_temperature_with_target_one_is_grpo_and_tied_groups_get_infinite_p():
    advantages, entropies, mask = random_batch(4)
    result = compute_egsw_weights(
        advantages, entropies, mask, group_size=4, alpha=0.2, temperature="auto", target_ess=1.0
    )
    torch.testing.assert_close(result.weights, mask.float(), rtol=0, atol=1e-6)
    tied = compute_egsw_weights(
        torch.zeros(4), torch.ones(4, 3), torch.ones(4, 3), group_size=4, alpha=1.0, temperature="auto"
    )
    assert torch.isinf(tied.temperature).all() and (tied.weights == 1).all()


def test_lower_target_ess_concentrates_weight():
    advantages, entropies, mask = random_batch(8, per_token=True)
    kwargs = dict(group_size=4, alpha=0.5, temperature="auto")
    max_weights = [
        egsw_weights(advantages, entropies, mask, target_ess=t, **kwargs).max().item() for t in (0.95, 0.7, 0.4)
    ]
    assert max_weights[0] < max_weights[1] < max_weights[2]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("temperature", [0.6, 1.0, 1.7])
def test_generation_hook_entropy_equals_token_entropy(dtype, temperature):
    from egsw.trainer import _GenerationEntropyRecorder

    recorder = _GenerationEntropyRecorder(temperature)
    for step in range(3):  # the buffers are reused across steps
        logits = (torch.randn(5, 300, generator=torch.Generator().manual_seed(step)) * 4).to(dtype)
        torch.testing.assert_close(recorder.entropy(logits), token_entropy(logits, temperature), rtol=0, atol=1e-5)


def test_the_method_imports_without_trl_or_transformers() -> None:
    """A verl integration reuses egsw.weights in an environment of its own: no TRL, no transformers."""
    import subprocess
    import sys

    code = (
        "import sys, egsw.weights, egsw.entropy_advantage, egsw.stats; "
        "print(sorted(m for m in ('trl', 'transformers', 'accelerate', 'datasets') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
