"""A model that cannot be had is refused in seconds, in one line, exit 2, before any output folder exists."""

from __future__ import annotations

import http.server
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from egsw.hub import cached_model_folder, model_on_hub
from egsw.models import ModelNotFoundError, check_model_name, resolve_model
from tests.helpers import run_egsw

CLOSED_PORT_ENDPOINT = "http://127.0.0.1:9"  # nothing listens there: a connection is refused at once


def fake_hub_cache(root: Path, repo_id: str, files: dict[str, str | Path]) -> Path:
    """A Hugging Face hub cache holding one snapshot of ``repo_id`` with ``files`` (text, or a file to copy)."""
    folder = root / f"models--{repo_id.replace('/', '--')}"
    snapshot = folder / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text("0123abcd")
    for name, content in files.items():
        if isinstance(content, Path):
            shutil.copy(content, snapshot / name)
        else:
            (snapshot / name).write_text(content)
    return snapshot


@pytest.fixture
def answering_hub() -> Iterator[str]:
    """A local stand-in for the hub's model API: ``/api/models/org/known`` exists, everything else is 404."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            known = self.path == "/api/models/org/known"
            self.send_response(200 if known else 404)
            self.end_headers()
            self.wfile.write(b'{"id": "org/known"}' if known else b'{"error": "not found"}')

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def refused(command: str, args: list[str], cwd: Path, env: dict[str, str], message: str) -> float:
    """Run ``egsw COMMAND ARGS``; check it is refused in one line with ``message``; return the seconds it took."""
    started = time.monotonic()
    result = run_egsw(command, *args, cwd=cwd, env=env, timeout=120)
    seconds = time.monotonic() - started
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith(f"egsw {command}: error: ") and message in lines[0], lines
    assert "Traceback" not in result.stderr
    return seconds


CASES = [
    ("hub-shaped, hub unreachable", "org/no-such-model", {"HF_ENDPOINT": CLOSED_PORT_ENDPOINT},
     "not in the Hugging Face cache"),
    ("hub-shaped, HF_HUB_OFFLINE", "no-such-model-xyz", {"HF_HUB_OFFLINE": "1"}, "HF_HUB_OFFLINE is set"),
    ("path-shaped", "./no/such/model", {}, "not shaped like a hub id"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "name", "env", "message"), CASES, ids=[case[0] for case in CASES])
@pytest.mark.parametrize("command", ["train", "eval"])
def test_unknown_model_is_refused_fast_with_nothing_written(
    tmp_path: Path, command: str, case: str, name: str, env: dict[str, str], message: str
) -> None:
    env = {"HF_HUB_CACHE": str(tmp_path / "hub-cache"), **env}
    output = tmp_path / "out"
    args = ["--model_name_or_path", name, "--output_dir", str(output)] if command == "train" else [
        "--model", name, "--output", str(output), "--sets", "procedural", "--limit", "2",
    ]  # fmt: skip
    seconds = refused(command, args, tmp_path, env, message)
    assert seconds < 10, f"{case}: {seconds:.1f} s"
    assert not output.exists() and not (tmp_path / "runs").exists()
    print(f"egsw {command}, {case}: refused in {seconds:.1f} s")


def test_a_cached_model_with_a_corrupt_config_is_one_line_before_the_output_folder(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    cache = tmp_path / "hub-cache"
    files = {
        name: path for name in ("tokenizer.json", "tokenizer_config.json") if (path := tiny_model_dir / name).exists()
    }
    fake_hub_cache(cache, "org/broken", {"config.json": "{not json", **files})
    output = tmp_path / "out"
    env = {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    args = ["--model_name_or_path", "org/broken", "--output_dir", str(output), "--max_steps", "1"]
    seconds = refused("train", args, tmp_path, env, "cannot load model org/broken")
    assert not output.exists()
    print(f"egsw train, cached but corrupt: refused in {seconds:.1f} s")


def test_a_model_in_the_hub_cache_resolves_to_its_snapshot_without_network(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "hub-cache"
    snapshot = fake_hub_cache(cache, "org/tiny", {p.name: p for p in tiny_model_dir.iterdir() if p.is_file()})
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert cached_model_folder("org/tiny") == snapshot
    check_model_name("org/tiny")
    resolved = resolve_model("org/tiny")
    assert (resolved.path, resolved.is_local) == (str(snapshot), True)


def test_one_probe_tells_a_known_hub_model_from_an_unknown_one(
    answering_hub: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", answering_hub)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert model_on_hub("org/known") is True and model_on_hub("org/unknown") is False
    check_model_name("org/known")  # not cached, but the hub has it: transformers will download it
    with pytest.raises(ModelNotFoundError, match="the Hugging Face Hub has no such model"):
        check_model_name("org/unknown")
    monkeypatch.setenv("HF_ENDPOINT", CLOSED_PORT_ENDPOINT)
    started = time.monotonic()
    assert model_on_hub("org/known") is None
    assert time.monotonic() - started < 5
