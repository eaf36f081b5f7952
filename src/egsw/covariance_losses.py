r"""Clip-Cov and KL-Cov of "The Entropy Mechanism of Reinforcement Learning for Reasoning Language Models".

Cui et al., arXiv 2505.22617; the reference code is verl's policy losses ``clip_cov`` and ``kl_cov``
(``verl/trainer/ppo/core_algos.py``, ``compute_policy_loss_clip_cov`` / ``compute_policy_loss_kl_cov``,
verl 0.9.1). Two peers of EGSW (docs/design.md section 4) that keep the policy entropy from
collapsing by restraining the few tokens whose update lowers it most: those with a large
covariance between their log-probability and their advantage,

    Cov[i,t] = (A[i,t] - mean(A)) * (log pi(y[i,t]) - mean(log pi))

with both means over the valid tokens (``mask == 1``) of the micro-batch, the log-probs those of
the policy being trained and the advantages those the loss uses. With ``N`` valid tokens, the
ratio ``r[i,t] = pi(y[i,t]) / pi_old(y[i,t])`` and PPO's per-token loss
``L[i,t] = -min(r A, clip(r, 1 - eps_low, 1 + eps_high) A)``:

- **Clip-Cov**: ``I_clip`` = ``max(floor(ratio * N), 1)`` tokens drawn uniformly at random from the
  valid tokens that PPO's clip leaves alone and whose covariance lies strictly inside
  ``(lower, upper)``; their gradient is detached::

      L_clip_cov[i,t] = L[i,t] with r[i,t] -> detach(r[i,t])       if (i,t) in I_clip
                        L[i,t]                                     otherwise

- **KL-Cov**: ``I_kl`` = the ``max(floor(ratio * N), 1)`` valid tokens of largest covariance; a
  penalty pulls them back towards the policy that sampled them, ``|log r|`` standing for
  ``KL(pi_old || pi)`` as in verl::

      L_kl_cov[i,t] = L[i,t] + coef * |log pi(y[i,t]) - log pi_old(y[i,t])|   if (i,t) in I_kl
                      L[i,t]                                                  otherwise

verl rounds both counts this way (``max(int(clip_cov_ratio * N), 1)``,
``max(1, int(N * kl_cov_ratio))``), so a micro-batch with a valid token always treats at least one.
Two differences from verl: verl multiplies a Clip-Cov token's loss by 0 where this detaches it
(the same gradient; the logged loss keeps its value), and verl's ``kl_cov`` drops PPO's clip on
every token (``-A r``) where here the penalty is added to the clipped ``L``, which differs only
where a ratio leaves the clip range (set ``epsilon`` / ``epsilon_high`` wide to get verl's). KL-Cov
acts only off-policy: where ``pi_old`` is ``pi`` itself (one update per generation batch) the
penalty and its gradient are 0.

Defaults (EGSWConfig): Clip-Cov ``ratio = 2e-4``, ``(lower, upper) = (1, 5)``, verl's
(``PolicyLossConfig``); KL-Cov ``ratio = 2e-3``, ``coef = 1``, verl's 7B KL-Cov recipe
(``recipe/entropy/7b_kl_cov.sh``), the paper's Qwen2.5-7B setting. verl's generic KL-Cov defaults
(2e-4, the paper's 32B value, and 0.1) were left aside: the models trained here are 7B or smaller.

These functions only select tokens and build the per-token terms, over (B, T) tensors; the trainer
puts them into TRL's loss (egsw.trainer). Pure torch, no TRL.
"""

from __future__ import annotations

import torch

VARIANTS: tuple[str, ...] = ("clip_cov", "kl_cov")


def selection_size(num_valid: int, ratio: float) -> int:
    """How many of ``num_valid`` tokens a ``ratio`` treats: ``max(floor(ratio * num_valid), 1)``, 0 if none is valid."""
    if num_valid <= 0:
        return 0
    return max(int(ratio * num_valid), 1)


def token_covariance(logps: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``Cov[i,t] = (A[i,t] - mean A) * (logp[i,t] - mean logp)``, means over valid tokens; (B, T) float32.

    logps, mask: (B, T); advantages: (B,) (one per completion, broadcast over its tokens) or (B, T).
    Detached; 0 where ``mask == 0`` (a masked position may hold NaN or inf and never leaks).
    """
    valid = _check_shapes(logps, mask)
    adv = _per_token(advantages, logps)
    adv = torch.where(valid, adv.detach().float(), 0.0)
    logp = torch.where(valid, logps.detach().float(), 0.0)
    count = valid.sum().clamp(min=1)
    adv_mean, logp_mean = adv.sum() / count, logp.sum() / count
    return torch.where(valid, (adv - adv_mean) * (logp - logp_mean), 0.0)


def ppo_clipped(
    logps: torch.Tensor,
    old_logps: torch.Tensor,
    advantages: torch.Tensor,
    *,
    epsilon_low: float,
    epsilon_high: float,
    delta: float | None = None,
) -> torch.Tensor:
    """Tokens whose clipped surrogate ``-min(r A, clip(r, 1 - eps_low, 1 + eps_high) A)`` is clipped; (B, T) bool.

    Clipped means the constant branch is in effect, so the token already has no gradient: verl's
    ``-A clip(r) > -A r`` (strict), or, with TRL's two-sided clipping ``delta``, ``r > delta``
    (TRL caps the unclipped ratio there). logps, old_logps: (B, T); advantages: (B,) or (B, T).
    """
    ratio = torch.exp(logps.detach().float() - old_logps.detach().float())
    adv = _per_token(advantages, logps).detach().float()
    clipped = ratio.clamp(1.0 - epsilon_low, 1.0 + epsilon_high) * adv < ratio * adv
    if delta is not None:
        clipped = clipped | (ratio > delta)
    return clipped


def clip_cov_selection(
    logps: torch.Tensor,
    old_logps: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    ratio: float,
    lower: float,
    upper: float,
    epsilon_low: float,
    epsilon_high: float,
    generator: torch.Generator,
    delta: float | None = None,
) -> torch.Tensor:
    """Clip-Cov's tokens, (B, T) bool: ``selection_size(N, ratio)`` drawn at random from the candidates.

    Candidates: valid, not ``ppo_clipped``, and ``lower < Cov < upper``. All of them when there are
    no more than that; none when there are none. ``generator`` is a CPU generator; the draw is a
    ``randperm`` over the candidates in row-major order, as verl's. logps, old_logps, mask: (B, T);
    advantages: (B,) or (B, T).
    """
    valid = _check_shapes(logps, mask)
    cov = token_covariance(logps, advantages, mask)
    clipped = ppo_clipped(logps, old_logps, advantages, epsilon_low=epsilon_low, epsilon_high=epsilon_high, delta=delta)
    candidates = valid & ~clipped & (cov > lower) & (cov < upper)
    flat = candidates.reshape(-1).nonzero().squeeze(1)
    selected = torch.zeros_like(candidates)
    if flat.numel() == 0:
        return selected
    order = torch.randperm(flat.numel(), generator=generator).to(flat.device)
    chosen = flat[order[: selection_size(int(valid.sum()), ratio)]]
    selected.view(-1)[chosen] = True
    return selected


def kl_cov_selection(
    logps: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, *, ratio: float
) -> torch.Tensor:
    """KL-Cov's tokens, (B, T) bool: the ``selection_size(N, ratio)`` valid tokens of largest ``Cov``.

    Whatever the sign of their covariance, as verl's. Ties go to ``torch.topk``. logps, mask: (B, T);
    advantages: (B,) or (B, T).
    """
    valid = _check_shapes(logps, mask)
    flat = valid.reshape(-1).nonzero().squeeze(1)
    selected = torch.zeros_like(valid)
    count = selection_size(flat.numel(), ratio)
    if count == 0:
        return selected
    cov = token_covariance(logps, advantages, mask).reshape(-1)[flat]
    selected.view(-1)[flat[torch.topk(cov, count).indices]] = True
    return selected


def detach_selected(logps: torch.Tensor, selected: torch.Tensor) -> torch.Tensor:
    """Clip-Cov's gradient stop: ``logps`` (B, T) with the ``selected`` entries detached; values unchanged.

    Every loss term built from these log-probs then has no gradient through a selected token: the
    ratio ``r = exp(logp - logp_old)`` of the surrogate, and also a KL-to-reference term (beta > 0).
    """
    return torch.where(selected, logps.detach(), logps)


def kl_cov_penalty(
    logps: torch.Tensor, old_logps: torch.Tensor, selected: torch.Tensor, *, coef: float
) -> torch.Tensor:
    """KL-Cov's added loss per token, (B, T): ``coef * |logp - logp_old|`` on ``selected`` tokens, 0 elsewhere.

    Differentiable in ``logps``: its gradient is ``coef * sign(logp - logp_old)`` on a selected token,
    0 where ``logp == logp_old`` (torch's ``abs``), so on-policy, where TRL takes ``logp_old`` to be
    ``logp.detach()``, the penalty and its gradient are exactly 0.
    """
    penalty = coef * (logps - old_logps.detach()).abs()
    return torch.where(selected, penalty, torch.zeros_like(penalty))


def _check_shapes(logps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    if logps.dim() != 2 or mask.shape != logps.shape:
        raise ValueError(f"logps and mask must both be (B, T), got {tuple(logps.shape)} and {tuple(mask.shape)}")
    return mask.bool()


def _per_token(advantages: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if advantages.dim() == 1:
        advantages = advantages.unsqueeze(1)
    if advantages.dim() != 2 or advantages.size(0) != like.size(0) or advantages.size(1) not in (1, like.size(1)):
        raise ValueError(f"advantages must be (B,) or (B, T) = {tuple(like.shape)}, got {tuple(advantages.shape)}")
    return advantages.expand_as(like)
