"""configs/verl/: each recipe composes with verl's own Hydra config, names only keys verl has, and passes its checks."""

from __future__ import annotations

from typing import Any

import pytest
from omegaconf import OmegaConf

from egsw.integrations.verl import PLUGIN_ENV, PLUGIN_MODULE, EGSWSettings

from .conftest import RECIPES

EXPECTED_MODES = {"grpo": "none", "egsw-step": "step", "egsw-trajectory": "trajectory"}
# Keys a recipe may add that verl's config does not declare: the EGSW group, and the Ray runtime env's variables.
OWN_KEYS = ("egsw.", "ray_kwargs.ray_init.runtime_env.env_vars.")


def compose_recipe(name: str) -> Any:  # noqa: ANN401 - a DictConfig
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(RECIPES), version_base=None):
        return compose(config_name=name)


def flatten(node: dict, prefix: str = "") -> dict[str, Any]:
    """Dotted path -> value of every leaf of a config read as plain YAML (interpolations left as text)."""
    leaves: dict[str, Any] = {}
    for key, value in node.items():
        path = f"{prefix}{key}"
        leaves.update(flatten(value, f"{path}.") if isinstance(value, dict) else {path: value})
    return leaves


def read_recipe(name: str) -> dict[str, Any]:
    return flatten(OmegaConf.to_container(OmegaConf.load(RECIPES / f"{name}.yaml"), resolve=False))


def test_the_recipes_are_the_three_expected() -> None:
    assert sorted(path.stem for path in RECIPES.glob("*.yaml")) == sorted(EXPECTED_MODES)


@pytest.mark.parametrize("name", sorted(EXPECTED_MODES))
def test_recipe_names_only_keys_of_verls_config(name: str, verl_config_factory) -> None:
    stock = flatten(OmegaConf.to_container(verl_config_factory([]), resolve=False))  # "???" where verl wants a value
    assert "actor_rollout_ref.rollout.name" in stock and "actor_rollout_ref.actor.optim.lr" in stock
    own = [key for key in read_recipe(name) if key.split(".")[0] not in ("hydra", "defaults")]
    assert len(own) > 30, "the recipe sets next to nothing"
    unknown = [key for key in own if not key.startswith(OWN_KEYS) and key not in stock]
    assert unknown == [], f"{name}.yaml sets keys that verl's ppo_trainer config does not have"


@pytest.mark.parametrize("name", sorted(EXPECTED_MODES))
def test_recipe_composes_and_passes_verls_checks(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    config = compose_recipe(name)
    assert config.trainer.use_v1 and config.trainer.v1.trainer_mode == "sync"
    assert config.algorithm.adv_estimator == "grpo" and config.actor_rollout_ref.rollout.name == "vllm"
    assert (config.trainer.nnodes, config.trainer.n_gpus_per_node) == (1, 8)
    assert config.actor_rollout_ref.model.path == "Qwen/Qwen2.5-Math-7B"
    assert config.ray_kwargs.ray_init.runtime_env.env_vars[PLUGIN_ENV] == PLUGIN_MODULE
    validate_config(config=config, use_reference_policy=need_reference_policy(config), use_critic=need_critic(config))

    monkeypatch.setenv(PLUGIN_ENV, PLUGIN_MODULE)
    resolved = OmegaConf.create(OmegaConf.to_container(config, resolve=True))
    settings = EGSWSettings.from_config(resolved)
    assert settings is not None and settings.mode == EXPECTED_MODES[name]
    if settings.enabled:
        assert (settings.alpha, settings.temperature, settings.rescale) == (0.1, 1.0, True)  # the TRL recipes' values


def test_recipes_differ_only_in_their_egsw_lines() -> None:
    flat = {name: read_recipe(name) for name in EXPECTED_MODES}
    for name, values in flat.items():
        assert values.pop("trainer.experiment_name") == f"qwen2.5-math-7b-{name}"
    shared = {name: {k: v for k, v in values.items() if not k.startswith("egsw.")} for name, values in flat.items()}
    assert shared["grpo"] == shared["egsw-step"] == shared["egsw-trajectory"]
    assert flat["egsw-step"]["egsw.mode"] == "step" and flat["egsw-trajectory"]["egsw.mode"] == "trajectory"
