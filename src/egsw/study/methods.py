"""The methods ``egsw compare`` puts side by side, each a name and the ``egsw train`` options it sets.

Every method is GRPO (TRL's GRPOTrainer through EGSWTrainer) plus at most one change, so that a
comparison isolates that change:

- ``grpo``: plain GRPO (``egsw_mode none``).
- ``egsw-step``, ``egsw-trajectory``: EGSW with the recipe's alpha and P (arXiv 2503.22456).
- ``egsw-step-p2``: step-wise EGSW at P = 2, which led ``grpo`` in the tiny-arith sweep's 10-seed
  confirmation (docs/results.md) and is tested again in the pre-registered study.
- ``egsw-auto``: step-wise EGSW whose P is chosen per group for a target effective sample size.
- ``entropy-bonus``: TRL's entropy regularisation (``entropy_coef``), a bonus in the loss.
- ``high-entropy-tokens``: TRL's ``top_entropy_quantile``: the policy loss only on the 20% of
  tokens with the highest entropy ("Beyond the 80/20 rule", arXiv 2506.01939).
- ``entropy-advantage``: ``A + min(beta * H, |A| / kappa)`` (arXiv 2506.14758; egsw.entropy_advantage).
- ``clip-cov``, ``kl-cov``: the policy loss of the few tokens with the largest covariance of advantage
  and log-prob is changed, Clip-Cov detaching their gradient, KL-Cov adding ``|log pi - log pi_old|``
  (arXiv 2505.22617; egsw.covariance_losses, verl's ``clip_cov`` / ``kl_cov``; the defaults of
  EGSWConfig). KL-Cov acts only off-policy (``num_iterations > 1`` or ``steps_per_generation >
  gradient_accumulation_steps``): on a recipe that updates once per generation batch it trains as
  ``grpo`` does.

The options a method sets are its own: a comparison refuses the same options among the options
it passes to every run (they would silently turn one method into another).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from egsw.errors import InputError


@dataclass(frozen=True)
class Method:
    """A comparable training method: ``options`` are ``egsw train`` options (EGSWConfig fields)."""

    name: str
    summary: str
    options: Mapping[str, Any] = field(default_factory=dict)

    def argv(self) -> list[str]:
        """The options as command-line arguments of ``egsw train``."""
        return [token for key, value in self.options.items() for token in (f"--{key}", str(value))]


METHODS: dict[str, Method] = {
    method.name: method
    for method in (
        Method("grpo", "plain GRPO (TRL)", {"egsw_mode": "none"}),
        Method("egsw-step", "EGSW, a softmax per token position", {"egsw_mode": "step"}),
        Method("egsw-trajectory", "EGSW, one softmax per completion", {"egsw_mode": "trajectory"}),
        Method(
            "egsw-step-p2",
            "EGSW step-wise at P = 2 (the lead of the tiny-arith sweep)",
            {
                "egsw_mode": "step",
                "egsw_temperature": 2.0,
            },
        ),  # fmt: skip
        Method(
            "egsw-auto",
            "EGSW step-wise, P chosen per group for ESS 0.8",
            {
                "egsw_mode": "step",
                "egsw_temperature": "auto",
            },
        ),  # fmt: skip
        Method(
            "entropy-bonus",
            "TRL's entropy bonus in the loss, coefficient 0.01",
            {
                "egsw_mode": "none",
                "entropy_coef": 0.01,
            },
        ),  # fmt: skip
        Method(
            "high-entropy-tokens",
            "TRL's top_entropy_quantile 0.2: loss on the top 20% entropy tokens",
            {
                "egsw_mode": "none",
                "top_entropy_quantile": 0.2,
            },
        ),  # fmt: skip
        Method(
            "entropy-advantage",
            "A + min(0.4 H, |A| / 2) (arXiv 2506.14758)",
            {
                "egsw_mode": "none",
                "entropy_advantage_beta": 0.4,
                "entropy_advantage_kappa": 2.0,
            },
        ),  # fmt: skip
        Method(
            "clip-cov",
            "Clip-Cov: gradient detached on 0.02% high-covariance tokens (arXiv 2505.22617)",
            {
                "egsw_mode": "none",
                "policy_loss_variant": "clip_cov",
            },
        ),  # fmt: skip
        Method(
            "kl-cov",
            "KL-Cov: |log-ratio| penalty on the 0.2% highest-covariance tokens (arXiv 2505.22617)",
            {
                "egsw_mode": "none",
                "policy_loss_variant": "kl_cov",
            },
        ),  # fmt: skip
    )
}
# Options that define a method; passing them to every run of a comparison is refused.
METHOD_OPTIONS: frozenset[str] = frozenset(key for method in METHODS.values() for key in method.options)


def parse_methods(text: str | Sequence[str]) -> list[Method]:
    """``"grpo,egsw-step"`` (or a list of names) -> the methods, in order; InputError naming the choices."""
    names = [name.strip() for name in (text.split(",") if isinstance(text, str) else text) if name.strip()]
    unknown = [name for name in names if name not in METHODS]
    if unknown or not names:
        raise InputError(f"unknown method(s) {unknown or names}; choose from {', '.join(METHODS)}")
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise InputError(f"method(s) {', '.join(duplicated)} listed twice; list each once")
    return [METHODS[name] for name in names]
