"""The unit every task and evaluation set yields: a chat prompt with a reference answer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Messages = list[dict[str, str]]


@dataclass(frozen=True)
class Example:
    """One problem ready for a chat model.

    ``prompt`` is a list of chat messages (TRL's conversational format); ``answer`` is the
    reference the scorer compares with (``kind`` "math": any expression math-verify reads;
    "choice": a letter).
    """

    id: str
    prompt: Messages
    answer: str
    kind: str = "math"
    meta: dict[str, Any] = field(default_factory=dict)

    def to_row(self) -> dict[str, Any]:
        """The row TRL's GRPOTrainer reads: ``prompt`` plus the columns the rewards take."""
        return {"prompt": self.prompt, "answer": self.answer, "kind": self.kind, "id": self.id}
