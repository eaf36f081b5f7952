"""Where built-in models are kept: the cache folder, complete-or-absent writes, the not-found error."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from egsw.errors import InputError

# Written last into a converted or built folder: its presence means the folder is complete.
COMPLETE_MARKER = ".egsw-complete"


class ModelLoadError(InputError):
    """A model that was found but cannot be read (corrupt config, missing tokenizer files, unreadable GGUF)."""


class ModelNotFoundError(InputError):
    """A model name that is neither built in, nor a local folder, nor shaped like a hub id."""


def cache_dir() -> Path:
    """Where converted models live: ``$EGSW_CACHE``, else ``$XDG_CACHE_HOME/egsw``, else ``~/.cache/egsw``."""
    if os.environ.get("EGSW_CACHE"):
        return Path(os.environ["EGSW_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")).expanduser() / "egsw"


def write_complete_folder(target: Path, write: Callable[[Path], str]) -> Path:
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


class ModelUnavailableError(ModelNotFoundError):
    """A hub id that is not in the local cache and cannot be fetched from here (offline, or no network).

    It may well exist where the run will happen: a dry run reports it as a note, a run refuses it.
    """
