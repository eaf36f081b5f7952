"""Models by name: a local folder, an ``egsw train`` output folder, a hub id, or a built-in name.

Built-in: ``smollm2-135m-instruct`` (the bundled default, ``egsw.models.smollm2``), ``tiny-random``
(``egsw.models.tiny_random``, for tests) and ``tiny-arith`` (``egsw.models.tiny_arith``, the
pre-trained CPU testbed). ``python -m egsw.models NAME...`` prepares them once into the cache.
"""

from egsw.models.registry import (
    TINY_ARITH,
    TINY_ARITH_FOLDER,
    TINY_RANDOM,
    TRAIN_OUTPUT_MODEL,
    ResolvedModel,
    build_tiny_arith,
    build_tiny_random,
    builtin_models,
    check_loadable,
    check_model_name,
    load_model_and_tokenizer,
    model_load_errors,
    resolve_model,
)
from egsw.models.smollm2 import BUNDLED_SMOLLM2, convert_bundled_smollm2, smollm2_gguf_path
from egsw.models.store import COMPLETE_MARKER, ModelLoadError, ModelNotFoundError, ModelUnavailableError, cache_dir

__all__ = [
    "BUNDLED_SMOLLM2",
    "COMPLETE_MARKER",
    "TINY_ARITH",
    "TINY_ARITH_FOLDER",
    "TINY_RANDOM",
    "TRAIN_OUTPUT_MODEL",
    "ModelLoadError",
    "ModelNotFoundError",
    "ModelUnavailableError",
    "ResolvedModel",
    "build_tiny_arith",
    "build_tiny_random",
    "builtin_models",
    "cache_dir",
    "check_loadable",
    "check_model_name",
    "convert_bundled_smollm2",
    "load_model_and_tokenizer",
    "model_load_errors",
    "resolve_model",
    "smollm2_gguf_path",
]
