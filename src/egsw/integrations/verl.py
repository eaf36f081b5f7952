"""EGSW on verl: importing this module installs EGSW into verl 0.9's v1 trainers (docs/verl.md).

Where EGSW enters
    verl's v1 trainer (``trainer.use_v1=true``, ``verl/trainer/ppo/v1/trainer_base.py``) computes the old
    policy's token entropies in ``_compute_old_log_prob`` and stores them in the TransferQueue batch as
    ``"entropy"``; ``_compute_advantage`` computes GRPO's advantages without reading them. verl's advantage
    estimators are never given the entropy, and its policy losses see no group id and run on micro-batches that
    split groups, so EGSW (a softmax over each whole group) lives in the trainer: ``EGSWAdvantageMixin`` calls
    verl's ``_compute_advantage``, reads ``uid, advantages, entropy, response_mask`` of the whole batch, weighs
    with ``egsw.weights`` and writes ``w * A`` back. It costs no extra forward pass. ``returns`` are left alone.

    verl picks the trainer class by name (``trainer.v1.trainer_mode``: "sync", "colocate_async",
    "separate_async") from ``TRAINER_REGISTRY``. Importing this module replaces every entry with a subclass that
    has the mixin. With EGSW off (no ``egsw`` group, or ``egsw.mode=none``) the subclass is verl's trainer.

Loading it where the trainer runs
    ``VERL_USE_EXTERNAL_MODULES=egsw.integrations.verl`` makes ``import verl`` import this module. verl's
    trainer runs in its ``TaskRunner`` Ray actor, so the variable must reach the Ray workers:
    ``+ray_kwargs.ray_init.runtime_env.env_vars.VERL_USE_EXTERNAL_MODULES=egsw.integrations.verl``. The recipes
    in configs/verl/ set it, and their ``egsw.plugin: ${oc.env:VERL_USE_EXTERNAL_MODULES}`` makes a trainer
    process that lacks the variable stop when it resolves its config, with an error naming it.

Configuration: a top-level ``egsw`` group (``+egsw.mode=step`` on verl's stock config); see ``EGSWSettings``.
Metrics: ``egsw/weight_mean``, ``egsw/weight_max``, ``egsw/ess``, ``egsw/temperature``,
``egsw/positive_advantage_mass``, ``egsw/weight_entropy_corr``, in verl's step metrics.

Shapes: B rows (completions) of T response positions; a group is the rows that share a ``uid``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from egsw.weights import compute_egsw_weights, effective_sample_size

VERL_TESTED = ">=0.9,<0.10"
PLUGIN_ENV = "VERL_USE_EXTERNAL_MODULES"
PLUGIN_MODULE = "egsw.integrations.verl"
ENTROPY_SETTING = "algorithm.rollout_correction.bypass_mode"
MODES = ("step", "trajectory", "none")


def _check_verl_version(version: str) -> None:
    """Raises ImportError unless ``version`` is in the range this integration is tested with."""
    from packaging.specifiers import SpecifierSet

    if not SpecifierSet(VERL_TESTED).contains(version, prereleases=True):
        raise ImportError(
            f"{PLUGIN_MODULE} is tested with verl{VERL_TESTED}, and verl {version} is installed: its trainer "
            f"internals may differ. Install a tested verl: pip install 'egsw[verl]'."
        )


try:
    import verl as _verl
except ImportError as error:  # pragma: no cover - the environment without verl
    raise ImportError(f"{PLUGIN_MODULE} needs verl: pip install 'egsw[verl]' (docs/verl.md)") from error
_check_verl_version(_verl.__version__)


# --------------------------------------------------------------------------------------------------------------
# The weights, vectorised over groups given by uid
# --------------------------------------------------------------------------------------------------------------


class GroupLayout(NamedTuple):
    """Where each row goes in a group-major (N * G, T) layout that ``egsw.weights`` takes.

    rows:  (K,) long, the rows that have an active token (rows without one take part in no softmax).
    slots: (K,) long, their positions ``group * G + rank`` in the layout; empty slots are inactive padding.
    num_groups: N, the distinct uids among ``rows``.  group_size: G, the largest group.
    """

    rows: torch.Tensor
    slots: torch.Tensor
    num_groups: int
    group_size: int


class EGSWResult(NamedTuple):
    """What ``egsw_weigh`` computed for a (B, T) batch.

    advantages:  (B, T), ``w * A`` at active positions, 0 elsewhere (rows without an active token: all 0).
    weights:     (B, T) float32, the EGSW weights, 0 where the mask is 0.
    temperature: (N,) float64, the P each group used (inf for a tied group under "auto").
    layout:      the grouping of the rows (``GroupLayout``).
    """

    advantages: torch.Tensor
    weights: torch.Tensor
    temperature: torch.Tensor
    layout: GroupLayout


def group_layout(index: Sequence[Any] | np.ndarray, active_rows: torch.Tensor) -> GroupLayout:
    """Groups the active rows by their id, in any order, without a Python loop over groups.

    index: length-B group ids (str or int, e.g. verl's ``uid``, a numpy object array); active_rows: (B,) bool.
    """
    ids = np.asarray(index)
    if ids.ndim != 1 or ids.shape[0] != active_rows.shape[0]:
        raise ValueError(f"index must hold one group id per row ({active_rows.shape[0]}), got shape {ids.shape}")
    rows = np.flatnonzero(active_rows.cpu().numpy())
    try:
        _, group = np.unique(ids[rows], return_inverse=True)
    except TypeError as error:
        raise ValueError(f"group ids must be mutually comparable (all str or all int): {error}") from None
    group = group.reshape(-1)
    counts = np.bincount(group)
    group_size = int(counts.max()) if counts.size else 1
    order = np.argsort(group, kind="stable")
    first = np.cumsum(counts) - counts
    rank = np.empty_like(group)
    rank[order] = np.arange(group.size) - first[group[order]]
    slots = group * group_size + rank
    return GroupLayout(torch.from_numpy(rows).long(), torch.from_numpy(slots).long(), int(counts.size), group_size)


def _to_layout(values: torch.Tensor, layout: GroupLayout) -> torch.Tensor:
    """(B, T) rows -> (N * G, T) in group-major order, zeros in empty slots."""
    out = values.new_zeros((layout.num_groups * layout.group_size, values.shape[1]))
    out[layout.slots.to(values.device)] = values[layout.rows.to(values.device)]
    return out


def _from_layout(values: torch.Tensor, layout: GroupLayout, batch: int) -> torch.Tensor:
    """(N * G, T) in group-major order -> (B, T) rows, zeros for the rows that are in no group."""
    out = values.new_zeros((batch, values.shape[1]))
    out[layout.rows.to(values.device)] = values[layout.slots.to(values.device)]
    return out


def _check_batch(advantages: torch.Tensor, entropies: torch.Tensor, response_mask: torch.Tensor) -> None:
    if response_mask.dim() != 2:
        raise ValueError(f"response_mask must be 2-D (B, T), got shape {tuple(response_mask.shape)}")
    for name, tensor in (("advantages", advantages), ("entropies", entropies)):
        if tensor.shape != response_mask.shape:
            raise ValueError(
                f"{name} must have response_mask's shape {tuple(response_mask.shape)}, got {tuple(tensor.shape)}"
            )


def egsw_weigh(
    advantages: torch.Tensor,
    entropies: torch.Tensor,
    response_mask: torch.Tensor,
    index: Sequence[Any] | np.ndarray,
    *,
    alpha: float,
    temperature: float | str,
    mode: str,
    rescale: bool = True,
    target_ess: float = 0.8,
) -> EGSWResult:
    """``egsw_advantages``, with the weights, each group's temperature and the grouping (for metrics)."""
    _check_batch(advantages, entropies, response_mask)
    active = response_mask.bool()
    layout = group_layout(index, active.any(dim=1))
    grouped = compute_egsw_weights(
        _to_layout(advantages, layout),
        _to_layout(entropies, layout),
        _to_layout(active, layout),
        group_size=layout.group_size,
        alpha=alpha,
        temperature=temperature,
        mode=mode,  # type: ignore[arg-type]
        rescale=rescale,
        target_ess=target_ess,
    )
    weights = _from_layout(grouped.weights, layout, active.shape[0])
    weighted = torch.where(active, weights.to(advantages.dtype) * advantages, torch.zeros_like(advantages))
    return EGSWResult(weighted, weights, grouped.temperature, layout)


def egsw_advantages(
    advantages: torch.Tensor,
    entropies: torch.Tensor,
    response_mask: torch.Tensor,
    index: Sequence[Any] | np.ndarray,
    *,
    alpha: float,
    temperature: float | str,
    mode: str,
    rescale: bool = True,
    target_ess: float = 0.8,
) -> torch.Tensor:
    """EGSW-weighted advantages ``w * A``, (B, T), for a verl batch whose groups are given by ``index``.

    advantages:    (B, T) as verl's advantage estimator wrote them (GRPO: A_i broadcast over the response).
    entropies:     (B, T) the old policy's token entropies (verl's ``"entropy"``).
    response_mask: (B, T) 1 on response tokens the loss trains on, 0 on padding.
    index:         length B group ids, e.g. verl's ``uid`` (numpy array of str or int); any order.
    mode: "step" | "trajectory" (docs/design.md section 1), or "none" (a copy of ``advantages``).
    The weights are those of ``egsw.weights.compute_egsw_weights`` on each group, exactly as ``EGSWTrainer``
    computes them. Groups may differ in size. Rows with no active token take part in no group and come back 0,
    never NaN; so do masked positions.
    """
    if mode == "none":
        _check_batch(advantages, entropies, response_mask)
        return advantages.clone()
    result = egsw_weigh(
        advantages, entropies, response_mask, index,
        alpha=alpha, temperature=temperature, mode=mode, rescale=rescale, target_ess=target_ess,
    )  # fmt: skip
    return result.advantages


def egsw_metrics(
    result: EGSWResult, advantages: torch.Tensor, entropies: torch.Tensor | None, response_mask: torch.Tensor, mode: str
) -> dict[str, float]:
    """The ``egsw/*`` diagnostics of one weighed batch, as ``EGSWTrainer`` logs them (docs/design.md section 3).

    advantages, response_mask: (B, T) the inputs of ``egsw_weigh``; entropies: (B, T), or None if H was not used.
    """
    active = response_mask.bool()
    if not bool(active.any()):
        return {}
    weights = result.weights[active].double()
    layout = result.layout
    grouped = _to_layout(result.weights, layout), _to_layout(active, layout)
    grouped_ess = effective_sample_size(*grouped, layout.group_size, mode)  # type: ignore[arg-type]
    metrics = {
        "egsw/weight_mean": weights.mean().item(),
        "egsw/weight_max": weights.max().item(),
        "egsw/ess": grouped_ess.mean().item(),
    }
    total = weights.sum()
    if total > 0:
        metrics["egsw/positive_advantage_mass"] = (result.weights[active & (advantages > 0)].sum() / total).item()
    if entropies is not None and weights.numel() > 1:
        correlation = torch.corrcoef(torch.stack([weights, entropies[active].double()]))[0, 1]
        if torch.isfinite(correlation):
            metrics["egsw/weight_entropy_corr"] = correlation.item()
    finite = result.temperature[torch.isfinite(result.temperature)]
    if finite.numel() > 0:
        metrics["egsw/temperature"] = finite.mean().item()
    return metrics


# --------------------------------------------------------------------------------------------------------------
# Configuration: the top-level ``egsw`` group
# --------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class EGSWSettings:
    """The ``egsw`` group of a verl config; the defaults are ``EGSWConfig``'s (the TRL trainer's).

    mode:        "step" (a softmax over the group at each position), "trajectory" (one per group), "none" (off)
    alpha:       weight of the entropy in the score A + alpha * H
    temperature: the softmax temperature P > 0, or "auto" (P per group so that the ESS is ``target_ess``)
    target_ess:  with temperature "auto": the normalised effective sample size each group keeps, in (0, 1]
    rescale:     mean weight 1, so GRPO's learning rate suits EGSW (true), or weights summing to 1 (false)
    """

    mode: str = "step"
    alpha: float = 0.1
    temperature: float | str = 1.0
    target_ess: float = 0.8
    rescale: bool = True

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"egsw.mode must be one of {', '.join(MODES)}; got {self.mode!r}")
        object.__setattr__(self, "alpha", _finite("egsw.alpha", self.alpha))
        object.__setattr__(self, "temperature", _temperature(self.temperature))
        target = _finite("egsw.target_ess", self.target_ess)
        if not 0.0 < target <= 1.0:
            raise ValueError(f"egsw.target_ess must be a number in (0, 1]; got {self.target_ess!r}")
        object.__setattr__(self, "target_ess", target)
        if not isinstance(self.rescale, bool):
            raise ValueError(f"egsw.rescale must be true or false; got {self.rescale!r}")

    @property
    def enabled(self) -> bool:
        return self.mode != "none"

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> EGSWSettings | None:
        """The settings of ``config.egsw``; None when the group is absent. Unknown keys are an error."""
        group = config.get("egsw") if hasattr(config, "get") else None
        if group is None:
            return None
        fields = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(group.keys()) - fields - {"plugin"})
        if unknown:
            raise ValueError(f"unknown egsw setting(s) {unknown}; the egsw group takes {sorted(fields)} (and plugin)")
        return cls(**{key: group[key] for key in fields & set(group.keys())})


def _finite(name: str, value: Any) -> float:  # noqa: ANN401 - a config value of any type
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a finite number; got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a finite number; got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number; got {value!r}")
    return number


def _temperature(value: Any) -> float | str:  # noqa: ANN401 - a config value of any type
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    try:
        number = _finite("egsw.temperature", value)
    except ValueError:
        number = -1.0
    if not number > 0.0:
        raise ValueError(f"egsw.temperature must be a finite number > 0 or 'auto'; got {value!r}")
    return number


def _entropy_error(settings: EGSWSettings) -> str:
    return (
        f"EGSW with egsw.alpha={settings.alpha} needs the old policy's token entropies, which verl computes in its "
        f"old-log-prob pass; {ENTROPY_SETTING}=true skips that pass, so the batch holds no 'entropy'. Set "
        f"{ENTROPY_SETTING}=false, or egsw.alpha=0 (weights from the advantages alone)."
    )


def _check_entropy_source(config: Mapping[str, Any], settings: EGSWSettings) -> None:
    """Raises ValueError at start if the config skips the pass that computes the entropies EGSW needs."""
    rollout_correction = (config.get("algorithm") or {}).get("rollout_correction") or {}
    if settings.alpha != 0.0 and bool(rollout_correction.get("bypass_mode", False)):
        raise ValueError(_entropy_error(settings))


# --------------------------------------------------------------------------------------------------------------
# The trainer mixin and its installation into verl's registry
# --------------------------------------------------------------------------------------------------------------

_BATCH_FIELDS = ("uid", "advantages", "entropy", "response_mask")


class EGSWAdvantageMixin:
    """Put before a verl v1 ``PPOTrainer`` class: ``_compute_advantage`` then returns EGSW-weighted advantages.

    ``egsw_settings`` is read from ``config.egsw`` at construction (bad settings fail at start); None or mode
    "none" leaves verl's trainer unchanged. ``egsw_last`` holds the last ``EGSWResult`` (for tests).
    """

    config: Any
    egsw_plugin = True  # marks the classes with the mixin, also across a reload of this module

    def __init__(self, config: Any, *args: Any, **kwargs: Any) -> None:  # noqa: ANN401 - verl's DictConfig
        super().__init__(config, *args, **kwargs)  # type: ignore[call-arg]
        settings = EGSWSettings.from_config(config)
        self.egsw_settings = settings if settings is not None and settings.enabled else None
        self.egsw_last: EGSWResult | None = None
        if self.egsw_settings is not None:
            _check_entropy_source(config, self.egsw_settings)

    def _compute_advantage(self, batch: Any, metrics: dict) -> Any:  # noqa: ANN401 - a TransferQueue KVBatchMeta
        batch = super()._compute_advantage(batch, metrics)  # type: ignore[misc]
        if self.egsw_settings is None:
            return batch
        return self._egsw_weigh_batch(batch, metrics)

    def _egsw_weigh_batch(self, batch: Any, metrics: dict) -> Any:  # noqa: ANN401 - a KVBatchMeta
        """Reads the batch's advantages from the TransferQueue, weighs them, writes them back."""
        import transfer_queue as tq
        from tensordict import TensorDict
        from verl.workers.utils.padding import response_to_nested

        settings = self.egsw_settings
        assert settings is not None
        data = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=list(_BATCH_FIELDS))
        has_entropy = "entropy" in data.keys()  # noqa: SIM118 - a TensorDict refuses `in` on itself
        if not has_entropy and settings.alpha != 0.0:
            raise RuntimeError(_entropy_error(settings))
        nested_mask = data["response_mask"]
        index = np.array(data.pop("uid").tolist(), dtype=object)
        padded = data.to_padded_tensor()
        advantages, mask = padded["advantages"], padded["response_mask"]
        entropies = padded["entropy"].to(advantages.dtype) if has_entropy else torch.zeros_like(advantages)
        result = egsw_weigh(
            advantages, entropies, mask, index,
            alpha=settings.alpha, temperature=settings.temperature, mode=settings.mode,
            rescale=settings.rescale, target_ess=settings.target_ess,
        )  # fmt: skip
        self.egsw_last = result
        metrics.update(egsw_metrics(result, advantages, entropies if has_entropy else None, mask, settings.mode))
        output = TensorDict({"advantages": response_to_nested(result.advantages, nested_mask)}, batch_size=len(batch))
        return tq.kv_batch_put(keys=batch.keys, partition_id=batch.partition_id, fields=output)


def with_egsw(trainer_cls: type) -> type:
    """The subclass of a verl v1 trainer class with ``EGSWAdvantageMixin`` (the class itself if it has it)."""
    if getattr(trainer_cls, "egsw_plugin", False):
        return trainer_cls
    return type(
        f"EGSW{trainer_cls.__name__}",
        (EGSWAdvantageMixin, trainer_cls),
        {"__module__": __name__, "__doc__": f"verl's {trainer_cls.__name__} with EGSW advantages."},
    )


def install() -> dict[str, type]:
    """Replaces every trainer in verl's ``TRAINER_REGISTRY`` with its EGSW subclass; idempotent.

    verl's ``register_trainer`` refuses a second class for a name, so the entries are replaced in place.
    Returns the registry after the change.
    """
    from verl.trainer.ppo.v1 import trainer_base

    registry = trainer_base.TRAINER_REGISTRY
    for name, trainer_cls in list(registry.items()):
        registry[name] = with_egsw(trainer_cls)
    return dict(registry)


def installed() -> bool:
    """Whether every trainer verl can pick by ``trainer.v1.trainer_mode`` has the EGSW mixin."""
    from verl.trainer.ppo.v1 import trainer_base

    registry = trainer_base.TRAINER_REGISTRY
    return bool(registry) and all(getattr(cls, "egsw_plugin", False) for cls in registry.values())


install()
