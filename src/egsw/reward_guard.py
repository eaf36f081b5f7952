"""Unscorable completions: a reward function that raises or returns NaN must not stop training.

``EGSWTrainer`` wraps every Python reward function with ``guard_reward`` (docs/design.md section 5):
a completion on which the function raises, or for which it returns NaN, is scored ``None``, which
TRL reads as "unscorable" (left out of that function's mean), and the count is logged as
``rewards/<name>/unscorable``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

RewardFunc = Callable[..., list[float | None]]


def _is_unscorable(value: Any) -> bool:  # noqa: ANN401 - whatever a reward function returned
    return value is None or (isinstance(value, float) and math.isnan(value))


def guard_reward(func: RewardFunc) -> RewardFunc:
    """Wrap a TRL reward function so that a completion that breaks it is unscorable, not fatal.

    When the function raises on a batch, it is called again one completion at a time and the
    completions on which it still raises get ``None``; NaN results become ``None`` too. The
    number of such completions in the batch is logged as ``rewards/<name>/unscorable`` through
    TRL's ``log_metric`` hook.
    """
    if getattr(func, "__egsw_guarded__", False):
        return func
    name = getattr(func, "__name__", type(func).__name__)

    @functools.wraps(func)
    def guarded(*, prompts: list[Any], completions: list[Any], **kwargs: Any) -> list[float | None]:
        try:
            values = list(func(prompts=prompts, completions=completions, **kwargs))
        except Exception:  # noqa: BLE001 - retried item by item to find the completions at fault
            values = []
            for index in range(len(completions)):
                row = {
                    key: [value[index]] if isinstance(value, list) and len(value) == len(completions) else value
                    for key, value in kwargs.items()
                }
                try:
                    values.extend(func(prompts=[prompts[index]], completions=[completions[index]], **row))
                except Exception:  # noqa: BLE001 - this completion is unscorable
                    values.append(None)
        values = [None if _is_unscorable(value) else value for value in values]
        log_metric = kwargs.get("log_metric")
        if callable(log_metric):
            log_metric(f"rewards/{name}/unscorable", float(sum(value is None for value in values)))
        return values

    guarded.__egsw_guarded__ = True  # type: ignore[attr-defined]
    return guarded
