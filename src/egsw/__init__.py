"""egsw: Entropy-Guided Sequence Weighting (arXiv 2503.22456) for GRPO fine-tuning with TRL.

The public names load on first use, so that light entry points (``egsw score``, the answer
verifier's worker process, ``--help``) do not import torch and TRL.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "EGSW_MODES": "egsw.config",
    "EGSWConfig": "egsw.config",
    "EGSWBatch": "egsw.trainer",
    "EGSWTrainer": "egsw.trainer",
    "EGSWWeights": "egsw.weights",
    "compute_egsw_weights": "egsw.weights",
    "effective_sample_size": "egsw.weights",
    "egsw_weights": "egsw.weights",
    "token_entropy": "egsw.weights",
}

if TYPE_CHECKING:
    from egsw.config import EGSW_MODES as EGSW_MODES
    from egsw.config import EGSWConfig as EGSWConfig
    from egsw.trainer import EGSWBatch as EGSWBatch
    from egsw.trainer import EGSWTrainer as EGSWTrainer
    from egsw.weights import EGSWWeights as EGSWWeights
    from egsw.weights import compute_egsw_weights as compute_egsw_weights
    from egsw.weights import effective_sample_size as effective_sample_size
    from egsw.weights import egsw_weights as egsw_weights
    from egsw.weights import token_entropy as token_entropy

__all__ = sorted(_EXPORTS)
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:  # noqa: ANN401 - whatever the exported object is
    if name not in _EXPORTS:
        raise AttributeError(f"module 'egsw' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value
