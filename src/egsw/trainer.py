"""EGSWTrainer: TRL's GRPOTrainer with EGSW weights on the advantages. The only file that touches TRL internals.

Where EGSW enters (docs/design.md sections 2 and 3): right after TRL has generated, scored and computed the
group-normalised advantages of a generation batch, and before that batch is split into
micro-batches, the advantages become ``w * A``: (B, T) step-wise, (B,) trajectory-wise. The weights
need every member of a group, so (A, H, mask) are gathered from all processes, weighed, and each
process keeps its own rows.

Where the entropy H comes from, so that it costs no extra forward pass:
  * "old_logps":  TRL already runs a no-grad forward for the old log-probs (``num_iterations > 1``,
    misaligned accumulation, vLLM importance sampling); it is asked for the entropies as well.
  * "generation": the plain transformers ``generate`` path; a forward hook on the causal LM records
    the entropy of ``softmax(logits / temperature)`` of each sampling step.
  * "forward":    otherwise (vLLM without importance sampling, continuous batching, tools, a
    ``rollout_func``): one extra no-grad forward, with a one-time warning. Skipped when alpha == 0.
All three give what ``GRPOTrainer._get_per_token_logps_and_entropies`` computes for the same tokens.

The entropy-shaped advantage (``entropy_advantage_beta > 0``, egsw.entropy_advantage), a peer
method, shares this plumbing: it takes the same entropies and transforms the advantages first.

Clip-Cov and KL-Cov (``policy_loss_variant``, egsw.covariance_losses), two more peers, change the
loss of a few tokens of each micro-batch. ``_compute_loss`` hands the micro-batch to the override of
``_get_per_token_logps_and_entropies``, whose one call inside TRL's loss returns the policy's
log-probs: Clip-Cov returns them with the selected tokens detached, KL-Cov leaves them and keeps its
penalty, reduced as TRL reduces ``per_token_loss``, which ``_compute_loss`` adds to TRL's loss. With
``policy_loss_variant="none"`` neither runs.

TRL internals overridden: ``_generate_and_score_completions``, ``_generate_single_turn``,
``_get_per_token_logps_and_entropies`` and ``_compute_loss``, each calling the original. Tested
against trl 1.16.
"""

from __future__ import annotations

import inspect
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import torch
from accelerate.utils import is_peft_model
from transformers.utils import logging
from trl import GRPOTrainer
from trl.models.utils import disable_gradient_checkpointing

from egsw.config import EGSWConfig
from egsw.covariance_losses import clip_cov_selection, detach_selected, kl_cov_penalty, kl_cov_selection
from egsw.entropy_advantage import entropy_shaped_advantages
from egsw.reward_guard import guard_reward
from egsw.shared_prompt import MULTIMODAL_KEYS, shared_prompt_forward
from egsw.weights import compute_egsw_weights, effective_sample_size

logger = logging.get_logger(__name__)

EntropySource = Literal["old_logps", "generation", "forward"]


@dataclass
class EGSWBatch:
    """The last generation batch EGSW weighed, across all processes (for diagnostics and tests).

    advantages: (B,) or (B, T) as TRL computed them; entropies, mask, weights: (B, T);
    temperature: (N,) per group; entropy_source: where H came from.
    """

    advantages: torch.Tensor
    entropies: torch.Tensor
    mask: torch.Tensor
    weights: torch.Tensor
    temperature: torch.Tensor
    entropy_source: EntropySource


class _GenerationEntropyRecorder:
    """Forward hook that records, at each decoding step, the entropy of the next-token distribution.

    Each call of the model inside ``generate`` produces logits (B, L, V) whose last position is the
    distribution the next token is sampled from; its entropy, (B,), is kept. ``entropies()`` stacks
    them to (B, steps).

    The entropy is ``token_entropy`` computed in two (B, V) buffers reused at every step: fresh
    temporaries of that size at every decoding step made glibc map, unmap and re-fault memory,
    which cost ~15% of CPU generation time (benchmarks/overhead.py); with the buffers it is noise.
    """

    def __init__(self, temperature: float) -> None:
        self.temperature = temperature
        self.steps: list[torch.Tensor] = []
        self._shifted: torch.Tensor | None = None  # (B, V) z / T - max
        self._exps: torch.Tensor | None = None  # (B, V) exp of it

    def __call__(self, module: torch.nn.Module, args: Any, output: Any) -> None:
        logits = output.logits if hasattr(output, "logits") else output[0]
        self.steps.append(self.entropy(logits[:, -1, :]))

    def entropy(self, logits: torch.Tensor) -> torch.Tensor:
        """(B, V) -> (B,) float32: ``log sum_v e_v - sum_v e_v (z_v - m) / sum_v e_v`` with ``e = exp(z - m)``."""
        if self._shifted is None or self._shifted.shape != logits.shape or self._shifted.device != logits.device:
            self._shifted = torch.empty(logits.shape, dtype=torch.float32, device=logits.device)
            self._exps = torch.empty_like(self._shifted)
        shifted, exps = self._shifted, self._exps
        assert exps is not None
        shifted.copy_(logits).div_(self.temperature)
        shifted.sub_(shifted.amax(dim=-1, keepdim=True))
        torch.exp(shifted, out=exps)
        total = exps.sum(dim=-1)
        expected_shift = torch.bmm(exps.unsqueeze(1), shifted.unsqueeze(2)).view(-1) / total
        return total.log() - expected_shift

    @contextmanager
    def attached(self, model: torch.nn.Module):
        handle = model.register_forward_hook(self)
        try:
            yield self
        finally:
            handle.remove()
            self._shifted = self._exps = None

    def entropies(self) -> torch.Tensor | None:
        return torch.stack(self.steps, dim=1) if self.steps else None


def _guard_reward_funcs(reward_funcs: Any, max_unscorable_batches: int) -> Any:  # noqa: ANN401 - GRPOTrainer's
    """Wrap each Python reward function (sync or async, any callable form) in ``guard_reward``.

    Reward models (``nn.Module``) and model names (``str``) are TRL's to load and run: left as they are.
    """

    def guard(func: Any) -> Any:  # noqa: ANN401
        python_function = callable(func) and not isinstance(func, torch.nn.Module | str)
        return guard_reward(func, max_unscorable_batches) if python_function else func

    return [guard(f) for f in reward_funcs] if isinstance(reward_funcs, list) else guard(reward_funcs)


class EGSWTrainer(GRPOTrainer):
    """GRPOTrainer whose advantages are weighted by EGSW. Takes exactly GRPOTrainer's arguments.

    ``args`` must be an :class:`EGSWConfig` (or None for its defaults). With ``egsw_mode="none"``
    (and the peers' options at their defaults) it is GRPOTrainer. ``egsw_last`` holds the last
    weighed batch; ``egsw/*`` metrics are logged with TRL's own. ``policy_loss_variant`` "clip_cov" /
    "kl_cov" changes the loss of the tokens with the largest advantage-log-prob covariance
    (egsw.covariance_losses); ``cov_last_selection`` holds the last micro-batch's selected tokens,
    (B_local, T) bool. Python reward functions are wrapped by ``egsw.reward_guard.guard_reward``: a
    completion on which one raises or returns NaN is scored None (unscorable) and counted in
    ``rewards/<name>/unscorable`` instead of stopping training; ``max_unscorable_batches`` batches in a
    row with nothing scorable stop it (``UnscorableRewardsError``).
    """

    def __init__(self, model: Any, reward_funcs: Any = None, args: EGSWConfig | None = None, *rest: Any, **kwargs: Any):
        if args is None:
            name = model if isinstance(model, str) else getattr(model.config, "_name_or_path", "model")
            args = EGSWConfig(f"{str(name).split('/')[-1]}-EGSW")
        elif not isinstance(args, EGSWConfig):
            raise TypeError(
                f"EGSWTrainer needs args=EGSWConfig(...), got {type(args).__name__}: "
                "EGSWConfig takes every GRPOConfig field plus the egsw_* options"
            )
        self.egsw_last: EGSWBatch | None = None
        self._egsw_entropies: torch.Tensor | None = None
        self._egsw_record_generation = False
        self._egsw_capture_old_logps = False
        self._egsw_warned_extra_forward = False
        self._egsw_shared_prompt_fallbacks: set[str] = set()  # reasons already logged by egsw.shared_prompt
        self.cov_last_selection: torch.Tensor | None = None
        self._cov_inputs: dict[str, Any] | None = None  # the micro-batch whose loss TRL is computing
        self._cov_penalty: torch.Tensor | None = None  # KL-Cov's term, reduced like TRL's loss
        self._cov_generator = torch.Generator()
        self._cov_generator_step = -1
        super().__init__(model, _guard_reward_funcs(reward_funcs, args.max_unscorable_batches), args, *rest, **kwargs)
        if args.policy_loss_variant == "kl_cov" and not self._trl_computes_old_logps():
            logger.warning(
                "KL-Cov: every micro-batch is trained on-policy here (old log-probs = current ones), so its penalty "
                "|log pi - log pi_old| and its gradient are 0 and training is GRPO's; it acts with num_iterations > 1 "
                "or steps_per_generation > gradient_accumulation_steps."
            )

    # ---- where the entropy comes from -------------------------------------------------------------

    def _trl_computes_old_logps(self) -> bool:
        """The condition under which GRPOTrainer._generate_and_score_completions runs its old-log-prob pass."""
        generate_every = self.args.steps_per_generation * self.num_iterations
        return self.args.gradient_accumulation_steps % generate_every != 0 or bool(
            self.use_vllm and self.vllm_importance_sampling_correction
        )

    def _egsw_entropy_source(self) -> EntropySource:
        """The cheapest place this configuration offers the entropies of a generation batch."""
        if self._trl_computes_old_logps():
            return "old_logps"
        plain_generate = not (
            self.use_vllm or self.use_transformers_continuous_batching or self.tools or self.rollout_func is not None
        )
        return "generation" if plain_generate else "forward"

    def _egsw_causal_lm(self) -> torch.nn.Module:
        """The module whose forward returns the logits during ``generate`` (under any PEFT wrapper)."""
        model = self.accelerator.unwrap_model(self.model)
        return model.get_base_model() if is_peft_model(model) else model

    def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        if not self._egsw_record_generation:
            return super()._generate_single_turn(
                prompt_ids, images, multimodal_fields, num_generations, has_tool_images
            )
        recorder = _GenerationEntropyRecorder(self.temperature)
        with recorder.attached(self._egsw_causal_lm()):
            result = super()._generate_single_turn(
                prompt_ids, images, multimodal_fields, num_generations, has_tool_images
            )
        self._egsw_entropies = recorder.entropies()
        return result

    def _get_per_token_logps_and_entropies(self, model, *args, **kwargs):
        # The first call on the policy after generation is the old-log-prob pass (the reference pass
        # comes after it); when it runs, the entropies come from it for free.
        capture = self._egsw_capture_old_logps and model is self.model and not kwargs.get("compute_entropy", False)
        if capture:
            self._egsw_capture_old_logps = False
            kwargs = {**kwargs, "compute_entropy": True}
        # Each distinct prompt once for all its completions (egsw.shared_prompt); None where that cannot apply.
        result = shared_prompt_forward(self, model, *args, **kwargs) if self.args.share_prompt_forward else None
        if result is None:
            result = super()._get_per_token_logps_and_entropies(model, *args, **kwargs)
        if capture:
            logps, self._egsw_entropies, aux_loss = result
            return logps, None, aux_loss
        if self._cov_inputs is not None:  # the policy's forward inside _compute_loss (its only call there)
            inputs, self._cov_inputs = self._cov_inputs, None
            logps, entropies, aux_loss = result
            return self._cov_apply(logps, inputs), entropies, aux_loss
        return result

    def _egsw_extra_forward_entropies(self, batch: dict[str, Any]) -> torch.Tensor:
        """Entropies (B, T) of the batch's completions from one no-grad forward: the fallback path."""
        if not self._egsw_warned_extra_forward:
            logger.warning(
                "EGSW: this configuration offers no token entropies for free (no old-log-prob pass, no plain "
                "transformers generate), so each generation batch costs one extra no-grad forward pass."
            )
            self._egsw_warned_extra_forward = True
        mode = "train" if self.model.training else "eval"
        batch_size = self.args.per_device_train_batch_size if mode == "train" else self.args.per_device_eval_batch_size
        completion_ids = batch["completion_ids"]
        forward_kwargs = {key: batch[key] for key in MULTIMODAL_KEYS if key in batch}
        with torch.no_grad(), disable_gradient_checkpointing(self.model, self.args.gradient_checkpointing_kwargs):
            _, entropies, _ = super()._get_per_token_logps_and_entropies(
                self.model,
                torch.cat([batch["prompt_ids"], completion_ids], dim=1),
                torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1),
                completion_ids.size(1),
                batch_size=batch_size,
                compute_entropy=True,
                **forward_kwargs,
            )
        return entropies

    # ---- the weighting ----------------------------------------------------------------------------

    def _generate_and_score_completions(self, inputs):
        weighs = self.args.egsw_mode != "none"
        shapes = self.args.entropy_advantage_beta > 0.0
        if not (weighs or shapes):
            return super()._generate_and_score_completions(inputs)
        source = self._egsw_entropy_source()
        self._egsw_entropies = None
        self._egsw_record_generation = source == "generation"
        self._egsw_capture_old_logps = source == "old_logps"
        try:
            batch = super()._generate_and_score_completions(inputs)
        finally:
            self._egsw_record_generation = self._egsw_capture_old_logps = False
        captured, self._egsw_entropies = self._egsw_entropies, None

        mask = batch["completion_mask"]
        if "tool_mask" in batch:
            mask = mask * batch["tool_mask"]
        entropies = _fit_columns(captured, mask) if captured is not None else None
        if entropies is None and (shapes or self.args.egsw_alpha != 0.0):
            source = "forward"
            entropies = self._egsw_extra_forward_entropies(batch)
        advantages = batch["advantages"]
        if shapes:  # the entropy-shaped advantage (a peer method), per token: (B_l, T)
            assert entropies is not None
            advantages = self._entropy_shape(advantages, entropies, mask)
        if weighs:
            advantages = self._egsw_weigh(advantages, entropies, mask, source)
        batch["advantages"] = advantages
        return batch

    def _entropy_shape(self, advantages: torch.Tensor, entropies: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Local advantages (B_l,) or (B_l, T) -> ``A + min(beta H, |A| / kappa)``, (B_l, T); logs the bonus."""
        shaped = entropy_shaped_advantages(
            advantages, entropies, mask,
            beta=self.args.entropy_advantage_beta, kappa=self.args.entropy_advantage_kappa,
        )  # fmt: skip
        active = mask.bool()
        base = advantages.unsqueeze(1).expand_as(shaped) if advantages.dim() == 1 else advantages
        bonus = (shaped - base.float())[active]
        # Every process gathers (sum, count), so none waits on another that had no active token.
        total, count = (
            self.accelerator.gather(torch.stack([bonus.sum(), bonus.new_tensor(bonus.numel())])).view(-1, 2).sum(0)
        )
        if count > 0:
            mode = "train" if self.model.training else "eval"
            self._metrics[mode]["entropy_advantage/bonus_mean"].append((total / count).item())
        return shaped.to(advantages.dtype)

    def _egsw_weigh(
        self, advantages: torch.Tensor, entropies: torch.Tensor | None, mask: torch.Tensor, source: EntropySource
    ) -> torch.Tensor:
        """Local advantages (B_l,) or (B_l, T) -> weighted local advantages, weights from whole groups.

        Step-wise the result is (B_l, T); trajectory-wise it keeps the advantages' shape.
        """
        mode = "train" if self.model.training else "eval"
        group_size = self.num_generations if mode == "train" else self.num_generations_eval
        has_entropy = entropies is not None
        if entropies is None:  # alpha == 0 and no free entropy: H does not enter the weights
            entropies = torch.zeros(mask.shape, dtype=torch.float32, device=mask.device)

        local_rows, local_cols = mask.shape
        all_advantages = self.accelerator.gather(_pad_columns(self.accelerator, advantages))
        all_entropies = self.accelerator.gather(self.accelerator.pad_across_processes(entropies.float(), dim=1))
        all_mask = self.accelerator.gather(self.accelerator.pad_across_processes(mask, dim=1))
        result = compute_egsw_weights(
            all_advantages,
            all_entropies,
            all_mask,
            group_size=group_size,
            alpha=self.args.egsw_alpha,
            temperature=self.args.egsw_temperature,
            mode=self.args.egsw_mode,
            rescale=self.args.egsw_rescale,
            target_ess=self.args.egsw_target_ess,
        )
        self.egsw_last = EGSWBatch(all_advantages, all_entropies, all_mask, result.weights, result.temperature, source)
        self._egsw_log_metrics(mode, self.egsw_last, group_size, has_entropy)

        first = self.accelerator.process_index * local_rows
        weights = result.weights[first : first + local_rows, :local_cols].to(advantages.dtype)
        if self.args.egsw_mode == "trajectory" and advantages.dim() == 1:
            return weights.amax(dim=1) * advantages  # one weight per completion: keep TRL's (B,) shape
        return weights * (advantages.unsqueeze(1) if advantages.dim() == 1 else advantages)

    def _egsw_log_metrics(self, mode: str, batch: EGSWBatch, group_size: int, has_entropy: bool) -> None:
        """egsw/* diagnostics over the whole (gathered) batch, logged with TRL's metrics."""
        active = batch.mask.bool()
        if not bool(active.any()):
            return
        weights = batch.weights[active]
        advantages = (
            batch.advantages if batch.advantages.dim() == 2 else batch.advantages.unsqueeze(1).expand_as(active)
        )
        metrics = self._metrics[mode]
        metrics["egsw/weight_mean"].append(weights.mean().item())
        metrics["egsw/weight_max"].append(weights.max().item())
        ess = effective_sample_size(batch.weights, batch.mask, group_size, self.args.egsw_mode)
        metrics["egsw/ess"].append(ess.mean().item())
        total = weights.sum()
        if total > 0:
            positive = batch.weights[active & (advantages > 0)].sum()
            metrics["egsw/positive_advantage_mass"].append((positive / total).item())
        if has_entropy and weights.numel() > 1:
            correlation = torch.corrcoef(torch.stack([weights.double(), batch.entropies[active].double()]))[0, 1]
            if torch.isfinite(correlation):
                metrics["egsw/weight_entropy_corr"].append(correlation.item())
        finite = batch.temperature[torch.isfinite(batch.temperature)]
        if finite.numel() > 0:
            metrics["egsw/temperature"].append(finite.mean().item())

    # ---- Clip-Cov and KL-Cov --------------------------------------------------------------------------

    def _compute_loss(self, model, inputs):
        # TRL's loss; with a variant, _get_per_token_logps_and_entropies sees this micro-batch (_cov_apply).
        if self.args.policy_loss_variant == "none":
            return super()._compute_loss(model, inputs)
        self._cov_inputs, self._cov_penalty = inputs, None
        try:
            loss = super()._compute_loss(model, inputs)
        finally:
            self._cov_inputs = None
        penalty, self._cov_penalty = self._cov_penalty, None
        return loss if penalty is None else loss + penalty

    def _cov_apply(self, logps: torch.Tensor, inputs: dict[str, Any]) -> torch.Tensor:
        """The policy's log-probs (B_l, T) inside TRL's loss -> what TRL's loss goes on with; selects the tokens.

        Clip-Cov: the log-probs with the selected tokens detached. KL-Cov: the log-probs unchanged; the
        penalty, reduced like TRL's ``per_token_loss``, waits in ``_cov_penalty`` for ``_compute_loss``.
        """
        mask = inputs["completion_mask"]
        mask = mask * inputs["tool_mask"] if "tool_mask" in inputs else mask  # TRL's loss mask
        old = inputs.get("old_per_token_logps")
        old = logps.detach() if old is None else old  # as TRL does when it skipped the old-log-prob pass
        advantages = inputs["advantages"]
        if self.args.policy_loss_variant == "clip_cov":
            selected = clip_cov_selection(
                logps, old, advantages, mask,
                ratio=self.args.clip_cov_ratio, lower=self.args.clip_cov_lb, upper=self.args.clip_cov_ub,
                epsilon_low=self.epsilon_low, epsilon_high=self.epsilon_high, delta=self.args.delta,
                generator=self._cov_step_generator(),
            )  # fmt: skip
            self._cov_log(selected, mask, None)
            return detach_selected(logps, selected)
        selected = kl_cov_selection(logps, advantages, mask, ratio=self.args.kl_cov_ratio)
        penalty = kl_cov_penalty(logps, old, selected, coef=self.args.kl_cov_coef)
        if self.use_vllm and self.vllm_importance_sampling_correction:  # TRL weighs per_token_loss so; verl too
            penalty = penalty * inputs["importance_sampling_ratio"]
        self._cov_penalty = self._reduce_like_trl(penalty, mask, inputs)
        self._cov_log(selected, mask, penalty)
        return logps

    def _cov_step_generator(self) -> torch.Generator:
        """Clip-Cov's random draw, reseeded at each optimizer step from (seed, step, process).

        Its own generator leaves the global RNG, hence sampling, as GRPO's; reseeding per step makes
        a resumed run draw what an uninterrupted one would.
        """
        step = self.state.global_step
        if step != self._cov_generator_step:
            seed = (self.args.seed * 1_000_003 + step) * 1_009 + self.accelerator.process_index
            self._cov_generator.manual_seed(seed % 2**63)
            self._cov_generator_step = step
        return self._cov_generator

    def _reduce_like_trl(self, per_token: torch.Tensor, mask: torch.Tensor, inputs: dict[str, Any]) -> torch.Tensor:
        """A per-token loss term (B_l, T) -> its contribution to the micro-batch loss, as TRL reduces per_token_loss.

        The same normalisation as ``GRPOTrainer._compute_loss`` (trl 1.16) for each loss type the
        variants accept (EGSWConfig refuses the others), so the term weighs as if TRL had added it to
        ``per_token_loss``: the loss is linear in it.
        """
        mode = "train" if self.model.training else "eval"
        accumulation = self.current_gradient_accumulation_steps if mode == "train" else 1.0
        masked = per_token * mask
        if self.loss_type == "grpo":
            return (masked.sum(-1) / mask.sum(-1).clamp(min=1.0)).mean() / accumulation
        if self.loss_type == "bnpo":
            return masked.sum() / mask.sum().clamp(min=1.0) / accumulation
        if self.loss_type == "dr_grpo":
            return masked.sum() / (per_token.size(0) * self.max_completion_length) / accumulation
        if self.loss_type == "dapo":
            normalizer = inputs["num_items_in_batch"].clamp(min=1.0) / self.accelerator.num_processes
            if mode == "train":
                normalizer = normalizer * self.current_gradient_accumulation_steps / self.args.steps_per_generation
            return masked.sum() / normalizer
        if self.loss_type == "luspo":
            return masked.sum(-1).mean() / accumulation
        raise ValueError(f"policy_loss_variant {self.args.policy_loss_variant}: unsupported loss_type {self.loss_type}")

    def _cov_log(self, selected: torch.Tensor, mask: torch.Tensor, penalty: torch.Tensor | None) -> None:
        """Logs ``cov/selected_fraction`` and KL-Cov's ``cov/kl_penalty`` (mean over selected tokens), all processes."""
        self.cov_last_selection = selected
        chosen = selected.float().sum()
        penalty_sum = penalty.detach()[selected].sum().float() if penalty is not None else chosen.new_zeros(())
        # Every process gathers, so none waits on another.
        totals = self.accelerator.gather(torch.stack([chosen, mask.float().sum(), penalty_sum])).view(-1, 3).sum(0)
        mode = "train" if self.model.training else "eval"
        if totals[1] > 0:
            self._metrics[mode]["cov/selected_fraction"].append((totals[0] / totals[1]).item())
        if penalty is not None and totals[0] > 0:
            self._metrics[mode]["cov/kl_penalty"].append((totals[2] / totals[0]).item())


EGSWTrainer.__init__.__signature__ = inspect.signature(GRPOTrainer.__init__)  # type: ignore[attr-defined]


def _fit_columns(entropies: torch.Tensor, mask: torch.Tensor) -> torch.Tensor | None:
    """Entropies recorded per decoding step (B, S) -> the completion tensor's columns (B, T).

    Completions are cut after their first EOS and padded, so T <= S unless ``pad_to_multiple_of``
    padded further (zeros there; those positions are masked). None if the rows do not match.
    """
    rows, cols = mask.shape
    if entropies.dim() != 2 or entropies.size(0) != rows:
        return None
    fitted = entropies.new_zeros((rows, cols))
    width = min(cols, entropies.size(1))
    fitted[:, :width] = entropies[:, :width]
    return fitted


def _pad_columns(accelerator: Any, advantages: torch.Tensor) -> torch.Tensor:
    return advantages if advantages.dim() == 1 else accelerator.pad_across_processes(advantages, dim=1)
