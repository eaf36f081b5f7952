"""Unscorable completions: a reward function that raises or returns NaN must not stop training.

``EGSWTrainer`` wraps every Python reward function with ``guard_reward`` (docs/design.md section 5):
a completion on which the function raises, or for which it returns NaN, is scored ``None``, which
TRL reads as "unscorable" (left out of that function's mean), and the count is logged as
``rewards/<name>/unscorable``. Every form TRL accepts keeps its TRL behaviour: plain functions,
callable instances, ``functools.partial``, async functions and async callable instances (the
wrapper is async exactly when TRL's ``is_async_callable`` says the function is, and carries the name
TRL's ``get_callable_name`` gives it). Reward models and model names are not Python functions and
are passed through unwrapped.

A function that can score *no* completion of a generation batch is a broken function, not a hard
completion: each such batch is a warning naming it, and ``max_unscorable_batches`` of them in a row
stop the run with ``UnscorableRewardsError`` instead of training on zero advantages.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from transformers.utils import logging

RewardFunc = Callable[..., list[float | None]]
LogMetric = Callable[[str, float], None]

logger = logging.get_logger(__name__)


class UnscorableRewardsError(RuntimeError):
    """A reward function scored no completion in ``max_unscorable_batches`` generation batches in a row."""


def _is_unscorable(value: Any) -> bool:  # noqa: ANN401 - whatever a reward function returned
    return value is None or (isinstance(value, float) and math.isnan(value))


def _single_rows(prompts: list[Any], completions: list[Any], kwargs: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The keyword arguments of one call per completion: per-completion columns split, shared ones kept."""
    for index in range(len(completions)):
        row = {
            key: [value[index]] if isinstance(value, list) and len(value) == len(completions) else value
            for key, value in kwargs.items()
        }
        yield {"prompts": [prompts[index]], "completions": [completions[index]], **row}


class _UnscorableCounter:
    """Turns a batch's raw rewards into TRL's (None for unscorable), logs the count, tracks fully unscorable batches."""

    def __init__(self, name: str, max_unscorable_batches: int) -> None:
        self.name = name
        self.limit = max_unscorable_batches
        self.in_a_row = 0

    def checked(self, raw: list[Any], log_metric: Any) -> list[float | None]:  # noqa: ANN401 - TRL's hook or None
        values = [None if _is_unscorable(value) else value for value in raw]
        unscorable = sum(value is None for value in values)
        if callable(log_metric):
            log_metric(f"rewards/{self.name}/unscorable", float(unscorable))
        if not values or unscorable < len(values):
            self.in_a_row = 0
            return values
        self.in_a_row += 1
        logger.warning(
            f"reward function {self.name!r} scored none of the {len(values)} completions of this batch "
            f"({self.in_a_row} batch(es) in a row): it raised or returned None/NaN on every one"
        )
        if self.limit and self.in_a_row >= self.limit:
            raise UnscorableRewardsError(
                f"reward function {self.name!r} scored no completion in {self.in_a_row} generation batches in a row "
                f"(it raised or returned None/NaN on every one); fix it, or raise max_unscorable_batches "
                f"(0 never stops, for functions that return None by design)"
            )
        return values


def guard_reward(func: RewardFunc, max_unscorable_batches: int = 0) -> RewardFunc:
    """Wrap a TRL reward function so that a completion that breaks it is unscorable, not fatal.

    When the function raises on a batch, it is called again one completion at a time and the
    completions on which it still raises get ``None``; NaN results become ``None`` too. The number
    of such completions in the batch is logged as ``rewards/<name>/unscorable`` through TRL's
    ``log_metric`` hook. ``max_unscorable_batches`` > 0 raises ``UnscorableRewardsError`` after that
    many batches in a row with no scorable completion (0: only warn).
    """
    from trl.trainer.utils import get_callable_name, is_async_callable  # TRL's own naming and async test

    if getattr(func, "__egsw_guarded__", False):
        return func
    name = get_callable_name(func)
    counter = _UnscorableCounter(name, max_unscorable_batches)

    if is_async_callable(func):
        score_async: Callable[..., Awaitable[list[float | None]]] = func

        async def guarded_async(*, prompts: list[Any], completions: list[Any], **kwargs: Any) -> list[float | None]:
            try:
                raw = list(await score_async(prompts=prompts, completions=completions, **kwargs))
            except Exception:  # noqa: BLE001 - retried item by item to find the completions at fault
                raw = []
                for row in _single_rows(prompts, completions, kwargs):
                    try:
                        raw.extend(await score_async(**row))
                    except Exception:  # noqa: BLE001 - this completion is unscorable
                        raw.append(None)
            return counter.checked(raw, kwargs.get("log_metric"))

        guarded: Any = guarded_async
    else:

        def guarded_sync(*, prompts: list[Any], completions: list[Any], **kwargs: Any) -> list[float | None]:
            try:
                raw = list(func(prompts=prompts, completions=completions, **kwargs))
            except Exception:  # noqa: BLE001 - retried item by item to find the completions at fault
                raw = []
                for row in _single_rows(prompts, completions, kwargs):
                    try:
                        raw.extend(func(**row))
                    except Exception:  # noqa: BLE001 - this completion is unscorable
                        raw.append(None)
            return counter.checked(raw, kwargs.get("log_metric"))

        guarded = guarded_sync
    guarded.__name__ = guarded.__qualname__ = name
    guarded.__doc__ = getattr(func, "__doc__", None)
    guarded.__egsw_guarded__ = True
    guarded.__egsw_original__ = func
    return guarded
