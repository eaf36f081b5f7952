"""EGSWConfig: TRL's GRPOConfig plus the EGSW options, validated when the config is built."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from trl import GRPOConfig

from egsw.weights import MODES

EGSW_MODES: tuple[str, ...] = (*MODES, "none")


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
        super().__post_init__()

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
