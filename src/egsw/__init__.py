"""egsw: Entropy-Guided Sequence Weighting (arXiv 2503.22456) for GRPO fine-tuning with TRL."""

from egsw.config import EGSW_MODES, EGSWConfig
from egsw.trainer import EGSWBatch, EGSWTrainer
from egsw.weights import EGSWWeights, compute_egsw_weights, effective_sample_size, egsw_weights, token_entropy

__all__ = [
    "EGSW_MODES",
    "EGSWBatch",
    "EGSWConfig",
    "EGSWTrainer",
    "EGSWWeights",
    "compute_egsw_weights",
    "effective_sample_size",
    "egsw_weights",
    "token_entropy",
]
__version__ = "0.1.0"
