"""The entropy-shaped advantage of "Reasoning with Exploration: An Entropy Perspective" (arXiv 2506.14758).

One of the entropy-based peers EGSW is compared with (docs/design.md section 4). Where EGSW
*re-weights* each advantage by a softmax over the group, this method *adds* a bounded,
gradient-free entropy bonus to each token's advantage:

    psi[i,t]  = min(beta * H[i,t].detach(), |A[i,t]| / kappa)
    A'[i,t]   = A[i,t] + psi[i,t]

``beta > 0`` scales the entropy; ``kappa > 1`` bounds the bonus by a fraction of the advantage, so
it never flips the advantage's sign and vanishes where ``A = 0`` (a group whose rewards are all
equal still gives no update). Like EGSW it is an advantage transform: it runs where TRL has just
computed the advantages, on the same token entropies EGSW uses (egsw.trainer), and every loss that
is linear in the advantage takes it unchanged.
"""

from __future__ import annotations

import torch


def entropy_shaped_advantages(
    advantages: torch.Tensor, entropies: torch.Tensor, mask: torch.Tensor, *, beta: float, kappa: float
) -> torch.Tensor:
    """``A + min(beta * H, |A| / kappa)`` per token, (B, T) float32, 0 where ``mask == 0``.

    advantages: (B,) (one per completion, broadcast over its tokens) or (B, T); entropies and
    mask: (B, T). Entropies are detached; a masked position may hold NaN and never leaks.
    """
    if not beta >= 0.0 or not kappa > 0.0:
        raise ValueError(f"entropy-shaped advantage needs beta >= 0 and kappa > 0, got beta={beta}, kappa={kappa}")
    if entropies.dim() != 2 or mask.shape != entropies.shape:
        raise ValueError(
            f"entropies and mask must both be (B, T), got {tuple(entropies.shape)} and {tuple(mask.shape)}"
        )
    if advantages.dim() == 1:
        advantages = advantages.unsqueeze(1).expand_as(entropies)
    if advantages.shape != entropies.shape:
        raise ValueError(f"advantages must be (B,) or (B, T) = {tuple(entropies.shape)}, got {tuple(advantages.shape)}")
    active = mask.bool()
    adv = torch.where(active, advantages.float(), 0.0)
    ent = torch.where(active, entropies.detach().float(), 0.0)
    bonus = torch.minimum(beta * ent, adv.abs() / kappa)
    return torch.where(active, adv + bonus, 0.0)
