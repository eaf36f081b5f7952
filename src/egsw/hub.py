"""Whether the Hugging Face Hub can be used right now, and what is already in its local cache.

huggingface_hub retries an unreachable hub with back-off (about 50 s before transformers gives up
with a traceback); egsw asks once, with a short timeout and no retry, so that a model or data set
that cannot be had is refused in seconds with the fix.
"""

from __future__ import annotations

import json
import os
import socket
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote, urlparse

PROBE_TIMEOUT_S = 3.0
DEFAULT_ENDPOINT = "https://huggingface.co"


def offline_mode() -> bool:
    """``HF_HUB_OFFLINE`` (or ``HF_DATASETS_OFFLINE``) is set: nothing may be fetched from the hub."""
    return any(
        os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")
        for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    )


def endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", DEFAULT_ENDPOINT).rstrip("/")


def hub_cache_dir() -> Path:
    """The hub cache as huggingface_hub resolves it: ``HF_HUB_CACHE``, else ``HF_HOME/hub``, else the default."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "huggingface"
    return Path(home).expanduser() / "hub"


def hub_reachable(timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    """Whether the hub's host answers a TCP connection within ``timeout_s`` seconds."""
    host = urlparse(endpoint()).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout_s).close()
    except OSError:
        return False
    return True


def cached_model_folder(repo_id: str, revision: str | None = None) -> Path | None:
    """The snapshot folder of ``repo_id`` in the local hub cache when its ``config.json`` is there, else None."""
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(repo_id, "config.json", cache_dir=hub_cache_dir(), revision=revision)
    except ValueError:  # not a valid repo id
        return None
    return Path(found).parent if isinstance(found, str) else None


def model_on_hub(repo_id: str, timeout_s: float = PROBE_TIMEOUT_S) -> bool | None:
    """One request, no retry: True when the hub knows ``repo_id``, False when it says no, None when unreachable."""
    request = urllib.request.Request(f"{endpoint()}/api/models/{quote(repo_id, safe='/')}", method="GET")
    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return isinstance(json.loads(response.read() or b"{}"), dict)
    except urllib.error.HTTPError as error:
        return False if error.code in (401, 403, 404) else None
    except (OSError, ValueError):
        return None
