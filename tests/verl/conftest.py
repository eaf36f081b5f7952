"""tests/verl runs in the verl environment (.venv-verl, `make test`); elsewhere its files are not collected.

The main environment pins a transformers that verl 0.9 refuses, so it has no verl: there the suite leaves this
folder out rather than failing on an import. Run it with
    .venv-verl/bin/python -m pytest -q -p no:cacheprovider --confcutdir=tests/verl tests/verl
(--confcutdir keeps tests/conftest.py, which builds TRL fixtures, out of this run).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

if importlib.util.find_spec("verl") is None:
    collect_ignore_glob = ["test_*.py"]

REPO_ROOT = Path(__file__).resolve().parents[2]
RECIPES = REPO_ROOT / "configs" / "verl"
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def ray_with_transfer_queue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A local Ray instance with verl's TransferQueue, as verl's TaskRunner starts it; yields the tq module.

    num_cpus=4 although this machine has 2 cores: the TransferQueue controller and storage units are Ray actors
    that each hold a CPU, and with 2 the next actor never gets one and tq.init() waits forever.
    """
    import ray
    import transfer_queue as tq
    from omegaconf import OmegaConf

    os.environ.pop("VERL_USE_EXTERNAL_MODULES", None)  # the workers inherit this environment: start them without it
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    try:
        tq.init(OmegaConf.create({"backend": {"SimpleStorage": {"num_data_storage_units": 1}}}))
        try:
            yield tq
        finally:
            tq.close()
    finally:
        ray.shutdown()


@pytest.fixture(scope="session")
def verl_config_factory():
    """compose(overrides) -> verl's own ppo_trainer config (trainer.use_v1=true) with the overrides applied."""
    from hydra import compose, initialize_config_module

    def compose_config(overrides: list[str]) -> Any:
        with initialize_config_module(config_module="verl.trainer.config", version_base=None):
            return compose(config_name="ppo_trainer", overrides=overrides)

    return compose_config
