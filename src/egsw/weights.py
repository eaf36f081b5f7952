"""Entropy-Guided Sequence Weighting: the paper's equations as pure torch functions.

Notation (arXiv 2503.22456; docs/design.md section 1). A batch holds ``B = N * G`` completions, N groups
of G completions each, laid out group after group. Completion ``i`` has tokens ``t = 1..T``:

    A[i,t]   advantage (shape (B,) is broadcast over t)                     (B, T)
    H[i,t]   entropy of the next-token distribution the token came from     (B, T)
    m[i,t]   1 on real completion tokens, 0 on padding                      (B, T)

The score of a token (step-wise) or of a completion (trajectory-wise) is

    step:        s[i,t] = (A[i,t] + alpha * H[i,t]) / P
    trajectory:  s[i]   = (mean_t A[i,t] + alpha * mean_t H[i,t]) / P     (means over active tokens)

and the weight is a softmax of the scores over the members of the group that take part:

    step:        w[i,t] = n_t * exp(s[i,t]) / sum_{j in g(i), m[j,t]=1} exp(s[j,t])
    trajectory:  w[i]   = n   * exp(s[i])   / sum_{j in g(i), j active}  exp(s[j])

``n_t`` (``n``) is the number of members the softmax ran over when ``rescale`` is on, so the mean
weight is 1 and ``P -> inf`` gives GRPO exactly; with ``rescale`` off it is 1 (the paper's
normalisation: weights sum to 1). Positions with ``m = 0`` and completions with no active token
get weight 0. Both modes reduce to one operation, a masked softmax over the group axis of a
``(N, G, K)`` score tensor (K = T step-wise, K = 1 trajectory-wise): ``_group_softmax``.
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import torch

Mode = Literal["step", "trajectory"]
MODES: tuple[str, ...] = ("step", "trajectory")

# Bisection for temperature="auto" searches log P in [log(spread) - R, log(spread) + R], spread being
# the group's range of raw scores: at the top the scores differ by < spread * e^-R (weights ~ 1),
# at the bottom the softmax is a hard max.
_AUTO_LOG_RANGE = 30.0
_AUTO_ITERATIONS = 60


class EGSWWeights(NamedTuple):
    """The weights and the softmax temperature each group used.

    weights:     (B, T) float32, >= 0, 0 where mask == 0.
    temperature: (N,) float64, the P of each group (the given one, or the one "auto" chose).
    """

    weights: torch.Tensor
    temperature: torch.Tensor


def token_entropy(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Entropy ``-sum_v p(v) log p(v)`` of ``p = softmax(logits / temperature)``, in nats.

    logits: (..., V) -> returns (...,) float32. This is the distribution a token is sampled from
    (before top-k/top-p truncation), the same one TRL scores its log-probs under.
    """
    scaled = logits.float() / temperature
    log_probs = torch.log_softmax(scaled, dim=-1)
    return -(log_probs.exp() * log_probs).sum(dim=-1)


def egsw_weights(
    advantages: torch.Tensor,
    entropies: torch.Tensor,
    mask: torch.Tensor,
    *,
    group_size: int,
    alpha: float,
    temperature: float | str,
    mode: Mode = "step",
    rescale: bool = True,
    target_ess: float = 0.8,
) -> torch.Tensor:
    """EGSW weights, (B, T) float32, 0 where ``mask == 0``. See the module docstring.

    advantages: (B,) or (B, T); entropies and mask: (B, T); B = groups x ``group_size``, groups
    contiguous. ``temperature`` is P > 0, or ``"auto"`` to choose P per group so that the weights'
    normalised effective sample size equals ``target_ess`` (see ``effective_sample_size``).
    """
    return compute_egsw_weights(
        advantages,
        entropies,
        mask,
        group_size=group_size,
        alpha=alpha,
        temperature=temperature,
        mode=mode,
        rescale=rescale,
        target_ess=target_ess,
    ).weights


def compute_egsw_weights(
    advantages: torch.Tensor,
    entropies: torch.Tensor,
    mask: torch.Tensor,
    *,
    group_size: int,
    alpha: float,
    temperature: float | str,
    mode: Mode = "step",
    rescale: bool = True,
    target_ess: float = 0.8,
) -> EGSWWeights:
    """Like ``egsw_weights``, and also returns the temperature each group used, (N,)."""
    adv, ent, active = _check_inputs(advantages, entropies, mask, group_size)
    _check_hyperparameters(alpha, temperature, mode, target_ess)
    scores, score_active = _raw_scores(adv, ent, active, group_size, alpha, mode)
    num_groups = scores.size(0)

    if temperature == "auto":
        group_temperature = _auto_temperature(scores, score_active, target_ess)
    else:
        group_temperature = torch.full((num_groups,), float(temperature), dtype=scores.dtype, device=scores.device)

    group_weights = _group_softmax(scores / group_temperature.view(-1, 1, 1), score_active, rescale)
    weights = group_weights.reshape(-1, group_weights.size(-1))  # (B, K)
    weights = weights.expand_as(active) if mode == "trajectory" else weights
    weights = torch.where(active, weights, torch.zeros_like(weights))
    return EGSWWeights(weights.to(torch.float32), group_temperature)


def effective_sample_size(
    weights: torch.Tensor, mask: torch.Tensor, group_size: int, mode: Mode = "step"
) -> torch.Tensor:
    """Normalised effective sample size ``(sum w)^2 / (n * sum w^2)`` of each group, (N,) in (0, 1].

    weights, mask: (B, T). Step-wise the sums run over the group's n active tokens; trajectory-wise
    over its n completions that have an active token (one weight each). 1 means uniform weights
    (GRPO). A group with nothing active counts as 1. This is the quantity ``temperature="auto"``
    steers to ``target_ess``.
    """
    if weights.shape != mask.shape:
        raise ValueError(f"weights {tuple(weights.shape)} and mask {tuple(mask.shape)} must have the same shape")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    active = mask.bool()
    values = torch.where(active, weights.double(), 0.0)
    if mode == "trajectory":
        values, active = values.amax(dim=1, keepdim=True), active.any(dim=1, keepdim=True)
    width = group_size * active.size(-1)
    return _ess(values.reshape(-1, width), active.reshape(-1, width))


def _ess(weights: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
    """ESS fraction over the last axis of (N, M) weights; active: (N, M) bool."""
    count = active.sum(dim=-1)
    total = weights.sum(dim=-1)
    square_sum = (weights * weights).sum(dim=-1)
    ess = total * total / (count * square_sum).clamp(min=torch.finfo(weights.dtype).tiny)
    return torch.where(count > 0, ess, torch.ones_like(ess))


def _compute_dtype(device: torch.device) -> torch.dtype:
    # float64 keeps P = 1e-4 with |A| = 1e4 exact (score gaps of 1 at magnitude 1e8); MPS lacks it.
    return torch.float32 if device.type == "mps" else torch.float64


def _check_inputs(
    advantages: torch.Tensor, entropies: torch.Tensor, mask: torch.Tensor, group_size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Validates shapes and returns (A (B,T), H (B,T), active (B,T) bool) in the compute dtype."""
    if mask.dim() != 2:
        raise ValueError(f"mask must be 2-D (B, T), got shape {tuple(mask.shape)}")
    batch = mask.size(0)
    if entropies.shape != mask.shape:
        raise ValueError(f"entropies must have the mask's shape {tuple(mask.shape)}, got {tuple(entropies.shape)}")
    if advantages.shape not in ((batch,), mask.shape):
        raise ValueError(
            f"advantages must have shape ({batch},) or {tuple(mask.shape)} to match mask, got {tuple(advantages.shape)}"
        )
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1:
        raise ValueError(f"group_size must be a positive int, got {group_size!r}")
    if batch % group_size != 0:
        raise ValueError(f"group_size={group_size} does not divide the batch size B={batch}: groups must be whole")

    dtype = _compute_dtype(mask.device)
    active = mask.bool()
    adv = advantages.to(dtype)
    adv = adv.unsqueeze(1).expand_as(active) if adv.dim() == 1 else adv
    ent = entropies.to(dtype)
    # Masked slots may hold anything (NaN, inf, garbage); only active ones must be finite.
    if not bool(torch.isfinite(torch.where(active, adv, 0.0)).all()):
        raise ValueError("advantages hold a non-finite value at an active (mask == 1) position")
    if not bool(torch.isfinite(torch.where(active, ent, 0.0)).all()):
        raise ValueError("entropies hold a non-finite value at an active (mask == 1) position")
    return torch.where(active, adv, 0.0), torch.where(active, ent, 0.0), active


def _check_hyperparameters(alpha: float, temperature: float | str, mode: str, target_ess: float) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    try:
        finite_alpha = math.isfinite(float(alpha))
    except (TypeError, ValueError):
        finite_alpha = False
    if not finite_alpha:
        raise ValueError(f"alpha must be a finite number, got {alpha!r}")
    if isinstance(temperature, str):
        if temperature != "auto":
            raise ValueError(f"temperature must be a number > 0 or 'auto', got {temperature!r}")
        if not 0.0 < target_ess <= 1.0:
            raise ValueError(f"target_ess must be in (0, 1] with temperature='auto', got {target_ess!r}")
    elif not (float(temperature) > 0.0 and float(temperature) != float("inf")):
        raise ValueError(f"temperature must be a finite number > 0 or 'auto', got {temperature!r}")


def _raw_scores(
    adv: torch.Tensor, ent: torch.Tensor, active: torch.Tensor, group_size: int, alpha: float, mode: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores before the temperature, ``A + alpha * H``, as (N, G, K), and which take part, (N, G, K) bool.

    Step-wise K = T (one softmax per group and position); trajectory-wise K = 1 (one per group).
    """
    if mode == "step":
        scores, score_active = adv + alpha * ent, active
    else:
        count = active.sum(dim=1, keepdim=True)
        denom = count.clamp(min=1).to(adv.dtype)
        scores = adv.sum(dim=1, keepdim=True) / denom + alpha * ent.sum(dim=1, keepdim=True) / denom
        score_active = count > 0
    shape = (-1, group_size, scores.size(-1))
    return scores.reshape(shape), score_active.reshape(shape)


def _group_softmax(scores: torch.Tensor, active: torch.Tensor, rescale: bool) -> torch.Tensor:
    """Softmax over the group axis (dim 1) among active entries; (N, G, K) -> (N, G, K), 0 where inactive.

    Log-sum-exp: the max active score is subtracted first, so no exponent exceeds 0.
    """
    masked = torch.where(active, scores, float("-inf"))
    peak = masked.amax(dim=1, keepdim=True)
    peak = torch.where(torch.isfinite(peak), peak, 0.0)  # columns with no active member
    exps = torch.where(active, torch.exp(masked - peak), 0.0)
    total = exps.sum(dim=1, keepdim=True)
    weights = exps / torch.where(total > 0, total, 1.0)
    if rescale:
        weights = weights * active.sum(dim=1, keepdim=True).to(weights.dtype)
    return weights


def _auto_temperature(scores: torch.Tensor, active: torch.Tensor, target_ess: float) -> torch.Tensor:
    """Per-group P whose rescaled weights have ESS fraction ``target_ess``; (N, G, K) -> (N,).

    The ESS of a tempered softmax rises monotonically with P, so a bisection on log P, run for all
    groups at once, finds it. Where even the top of the range stays below the target (target 1) the
    top is used, which is GRPO to within 1e-13. Where the target lies below what any P reaches (step-wise
    a position with one active member always weighs 1), the bottom is used: the most concentrated
    weights. A group whose scores all tie has ESS 1 at any P: it gets P = inf, which says the
    temperature plays no part there.
    """
    flat_active = active.flatten(1)
    masked = scores.flatten(1)
    high = torch.where(flat_active, masked, float("-inf")).amax(dim=1)
    low = torch.where(flat_active, masked, float("inf")).amin(dim=1)
    spread = torch.where(flat_active.any(dim=1), high - low, 0.0).clamp(min=1e-12)
    log_lo = spread.log() - _AUTO_LOG_RANGE
    log_hi = spread.log() + _AUTO_LOG_RANGE

    def ess_at(log_temperature: torch.Tensor) -> torch.Tensor:
        weights = _group_softmax(scores / log_temperature.exp().view(-1, 1, 1), active, rescale=True)
        return _ess(weights.flatten(1), flat_active)

    for _ in range(_AUTO_ITERATIONS):
        log_mid = (log_lo + log_hi) / 2
        too_peaked = ess_at(log_mid) < target_ess
        log_lo = torch.where(too_peaked, log_mid, log_lo)
        log_hi = torch.where(too_peaked, log_hi, log_mid)
    tied = ~(high > low)
    return torch.where(tied, float("inf"), log_hi.exp())
