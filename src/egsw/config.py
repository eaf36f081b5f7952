"""EGSWConfig: TRL's GRPOConfig plus the EGSW options, validated when the config is built."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from trl import GRPOConfig

from egsw.covariance_losses import VARIANTS
from egsw.weights import MODES

EGSW_MODES: tuple[str, ...] = (*MODES, "none")
POLICY_LOSS_VARIANTS: tuple[str, ...] = ("none", *VARIANTS)
# TRL's loss types with PPO's clipped per-token surrogate -min(r A, clip(r) A), which the variants modify.
_CLIPPED_LOSS_TYPES: tuple[str, ...] = ("grpo", "bnpo", "dr_grpo", "dapo", "luspo")


@dataclass
class EGSWConfig(GRPOConfig):
    r"""GRPOConfig with Entropy-Guided Sequence Weighting (arXiv 2503.22456).

    Every GRPOConfig field keeps its meaning. EGSW multiplies each advantage by a weight
    ``w = n * softmax_group((A + egsw_alpha * H) / egsw_temperature)`` (docs/design.md section 1), a
    constant in the loss, so it works with every ``loss_type`` that is linear in the advantage.
    The defaults alpha 0.1, P 1.0 were kept after ``make sweep-tiny`` and ``make sweep-confirm-p``
    found no setting that beats them detectably (README, "Sensitivity to alpha and P").
    """

    egsw_mode: str = field(
        default="step",
        metadata={
            "help": "How EGSW weighs: 'step' (a softmax over the group's members at each token position), "
            "'trajectory' (one softmax over whole completions, from their mean advantage and mean entropy), or "
            "'none' (plain GRPO, the trainer changes nothing).",
            "choices": list(EGSW_MODES),
        },
    )
    egsw_alpha: float = field(
        default=0.1,
        metadata={"help": "Weight of the token entropy H in the score A + alpha * H. 0 weighs by advantage only."},
    )
    # Typed like GRPOConfig.pad_to_multiple_of (`int | str | None`) so that the command line passes
    # "auto" or a number as a string; __post_init__ turns a number into a float.
    egsw_temperature: float | str | None = field(
        default=1.0,
        metadata={
            "help": "Softmax temperature P > 0 of the EGSW weights: small P concentrates the weight on the "
            "highest-scoring members, large P approaches GRPO (P -> inf is GRPO exactly, with egsw_rescale). "
            "'auto' chooses P for each group so that the weights' effective sample size is egsw_target_ess."
        },
    )
    egsw_target_ess: float = field(
        default=0.8,
        metadata={
            "help": "With egsw_temperature='auto': the normalised effective sample size (sum w)^2 / (n sum w^2), "
            "in (0, 1], that each group's weights keep. 1 is GRPO; lower concentrates the update."
        },
    )
    egsw_rescale: bool = field(
        default=True,
        metadata={
            "help": "Multiply each softmax by the number of members it ran over, so the mean weight is 1 and the "
            "learning rate that suits GRPO suits EGSW. Off: weights sum to 1 per group (the paper's normalisation)."
        },
    )

    entropy_advantage_beta: float = field(
        default=0.0,
        metadata={
            "help": "The entropy-shaped advantage of arXiv 2506.14758, an entropy-based peer of EGSW: each token's "
            "advantage becomes A + min(beta * H, |A| / kappa) (H detached). 0 (the default) turns it off; the paper "
            "uses 0.4. Applied before the EGSW weights when both are on."
        },
    )
    entropy_advantage_kappa: float = field(
        default=2.0,
        metadata={
            "help": "Bound of the entropy-shaped advantage's bonus: at most |A| / kappa, so for kappa > 1 it never "
            "flips the advantage's sign. The paper uses 2."
        },
    )
    # Clip-Cov and KL-Cov (arXiv 2505.22617, egsw.covariance_losses), verl's policy_loss.loss_mode clip_cov / kl_cov.
    # The Clip-Cov defaults are verl's (PolicyLossConfig in verl/workers/config/actor.py and the fallbacks of
    # compute_policy_loss_clip_cov, verl 0.9.1). The KL-Cov ones are those of verl's 7B KL-Cov recipe
    # (recipe/entropy/7b_kl_cov.sh: kl_cov_ratio 0.002, ppo_kl_coef 1), the paper's Qwen2.5-7B setting; verl's
    # generic PolicyLossConfig defaults are 0.0002 (the paper's 32B value) and 0.1, and compute_policy_loss_kl_cov
    # falls back to a coefficient of 1.
    policy_loss_variant: str = field(
        default="none",
        metadata={
            "help": "A change to the policy loss on the few tokens with the largest covariance of advantage and "
            "log-prob (arXiv 2505.22617): 'clip_cov' detaches the gradient of a random clip_cov_ratio of the tokens "
            "whose covariance is in (clip_cov_lb, clip_cov_ub); 'kl_cov' adds kl_cov_coef * |log pi - log pi_old| "
            "to the loss of the kl_cov_ratio of the tokens with the largest covariance (it acts only off-policy: "
            "num_iterations > 1 or steps_per_generation > gradient_accumulation_steps); 'none' leaves TRL's loss.",
            "choices": list(POLICY_LOSS_VARIANTS),
        },
    )
    clip_cov_ratio: float = field(
        default=2e-4,
        metadata={"help": "Clip-Cov: the share of a micro-batch's tokens detached, at least 1 (verl's default)."},
    )
    clip_cov_lb: float = field(
        default=1.0,
        metadata={"help": "Clip-Cov: a candidate token's covariance is above this (verl's default)."},
    )
    clip_cov_ub: float = field(
        default=5.0,
        metadata={"help": "Clip-Cov: a candidate token's covariance is below this (verl's default)."},
    )
    kl_cov_ratio: float = field(
        default=2e-3,
        metadata={
            "help": "KL-Cov: the share of a micro-batch's tokens penalised, at least 1: the paper's and verl's 7B "
            "recipe value (its 32B runs and verl's generic default use 2e-4)."
        },
    )
    kl_cov_coef: float = field(
        default=1.0,
        metadata={"help": "KL-Cov: the penalty's coefficient (verl's ppo_kl_coef; 1 in the paper's recipes)."},
    )
    max_unscorable_batches: int = field(
        default=3,
        metadata={
            "help": "Stop the run when a reward function scores no completion (it raised or returned None/NaN on "
            "every one) in this many generation batches in a row: training on such batches learns nothing. Each "
            "such batch is a warning naming the function. 0 never stops (for functions that return None by design)."
        },
    )

    share_prompt_forward: bool = field(
        default=True,
        metadata={
            "help": "Run each distinct prompt of a micro-batch once for all its completions in the log-prob forward "
            "passes (training, old policy, reference): one packed row per prompt, [prompt | c1 | ... | cG], with a "
            "mask that keeps completions apart. Same log-probs and gradients as the plain forward (to fp32 rounding), "
            "fewer tokens; also with egsw_mode='none'. Falls back to the plain forward, with one info line, where it "
            "cannot apply (docs/shared-prompt.md)."
        },
    )

    def __post_init__(self) -> None:
        self._validate_egsw()
        self._validate_policy_loss_variant()
        super().__post_init__()
        self._check_variant_fits_the_loss()

    def _validate_egsw(self) -> None:
        """Refuses invalid EGSW options with one line that names the field and what it accepts."""
        if self.egsw_mode not in EGSW_MODES:
            raise ValueError(f"egsw_mode must be one of {', '.join(EGSW_MODES)}; got {self.egsw_mode!r}")
        self.egsw_alpha = _as_float("egsw_alpha", self.egsw_alpha, "a finite number")
        if not math.isfinite(self.egsw_alpha):
            raise ValueError(f"egsw_alpha must be a finite number; got {self.egsw_alpha!r}")
        self.egsw_temperature = _parse_temperature(self.egsw_temperature)
        self.egsw_target_ess = _as_float("egsw_target_ess", self.egsw_target_ess, "a number in (0, 1]")
        if not 0.0 < self.egsw_target_ess <= 1.0:
            raise ValueError(f"egsw_target_ess must be a number in (0, 1]; got {self.egsw_target_ess!r}")
        if not isinstance(self.egsw_rescale, bool):
            raise ValueError(f"egsw_rescale must be true or false; got {self.egsw_rescale!r}")
        if not isinstance(self.share_prompt_forward, bool):
            raise ValueError(f"share_prompt_forward must be true or false; got {self.share_prompt_forward!r}")
        beta = _as_float("entropy_advantage_beta", self.entropy_advantage_beta, "a finite number >= 0")
        if not (beta >= 0.0 and math.isfinite(beta)):
            raise ValueError(
                f"entropy_advantage_beta must be a finite number >= 0; got {self.entropy_advantage_beta!r}"
            )
        kappa = _as_float("entropy_advantage_kappa", self.entropy_advantage_kappa, "a finite number > 0")
        if not (kappa > 0.0 and math.isfinite(kappa)):
            raise ValueError(
                f"entropy_advantage_kappa must be a finite number > 0; got {self.entropy_advantage_kappa!r}"
            )
        self.entropy_advantage_beta, self.entropy_advantage_kappa = beta, kappa
        limit = self.max_unscorable_batches
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise ValueError(f"max_unscorable_batches must be a whole number >= 0; got {limit!r}")

    def _validate_policy_loss_variant(self) -> None:
        """Refuses invalid Clip-Cov / KL-Cov options with one line that names the field and what it accepts."""
        if self.policy_loss_variant not in POLICY_LOSS_VARIANTS:
            choices = ", ".join(POLICY_LOSS_VARIANTS)
            raise ValueError(f"policy_loss_variant must be one of {choices}; got {self.policy_loss_variant!r}")
        for name in ("clip_cov_ratio", "kl_cov_ratio"):
            value = _as_float(name, getattr(self, name), "a number in (0, 1]")
            if not 0.0 < value <= 1.0:
                raise ValueError(f"{name} must be a number in (0, 1]; got {getattr(self, name)!r}")
            setattr(self, name, value)
        lower = _as_float("clip_cov_lb", self.clip_cov_lb, "a finite number")
        upper = _as_float("clip_cov_ub", self.clip_cov_ub, "a finite number above clip_cov_lb")
        if not (math.isfinite(lower) and math.isfinite(upper) and lower < upper):
            raise ValueError(
                f"clip_cov_lb and clip_cov_ub must be finite numbers, clip_cov_lb < clip_cov_ub; got {lower}, {upper}"
            )
        coef = _as_float("kl_cov_coef", self.kl_cov_coef, "a finite number >= 0")
        if not (coef >= 0.0 and math.isfinite(coef)):
            raise ValueError(f"kl_cov_coef must be a finite number >= 0; got {self.kl_cov_coef!r}")
        self.clip_cov_lb, self.clip_cov_ub, self.kl_cov_coef = lower, upper, coef

    def _check_variant_fits_the_loss(self) -> None:
        """Refuses a policy_loss_variant with TRL options its hook cannot modify, naming the option to change."""
        variant = self.policy_loss_variant
        if variant == "none":
            return
        if self.loss_type not in _CLIPPED_LOSS_TYPES:
            raise ValueError(
                f"policy_loss_variant {variant} modifies PPO's clipped surrogate: use loss_type "
                f"{', '.join(_CLIPPED_LOSS_TYPES)}; got {self.loss_type!r}"
            )
        if self.importance_sampling_level != "token":
            raise ValueError(
                f"policy_loss_variant {variant} selects single tokens: use importance_sampling_level token; "
                f"got {self.importance_sampling_level!r}"
            )
        if variant == "kl_cov" and (self.top_entropy_quantile < 1.0 or self.off_policy_mask_threshold is not None):
            raise ValueError(
                "policy_loss_variant kl_cov adds a term that TRL's token masks would not reach: leave "
                "top_entropy_quantile at 1 and off_policy_mask_threshold unset"
            )


def _as_float(name: str, value: object, allowed: str) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be {allowed}; got {value!r}")
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be {allowed}; got {value!r}") from None


def _parse_temperature(value: object) -> float | str:
    allowed = "a finite number > 0 or 'auto'"
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    temperature = _as_float("egsw_temperature", value, allowed)
    if not (temperature > 0.0 and math.isfinite(temperature)):
        raise ValueError(f"egsw_temperature must be {allowed}; got {value!r}")
    return temperature
