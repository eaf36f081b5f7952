"""verl's real v1 trainer ``_compute_advantage`` with the EGSW mixin, against a local TransferQueue on Ray.

The batches are laid out as verl's agent loop and padding put them: keys ``{uid}_{session}_{index}``, ragged
(nested) response fields, rm_scores with the reward on the last token, the old policy's "entropy", and a
padding row (``pad...`` uid, one response position with mask 0), in shuffled order.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from egsw.integrations.verl import ENTROPY_SETTING, PLUGIN_ENV, PLUGIN_MODULE, egsw_advantages

pytestmark = pytest.mark.slow

_partitions = itertools.count()


def put_batch(tq: Any, *, with_entropy: bool = True, seed: int = 0) -> Any:  # noqa: ANN401 - a KVBatchMeta
    """Puts 3 prompts x 4 responses of lengths 1..7 (plus one padding row), shuffled; returns the KVBatchMeta."""
    from verl.utils.tensordict_utils import list_of_dict_to_tensordict

    generator = torch.Generator().manual_seed(seed)
    rows = []
    for prompt, session in itertools.product(range(3), range(4)):
        length = int(torch.randint(1, 8, (1,), generator=generator))
        scores = torch.zeros(length)
        scores[-1] = float(torch.randint(0, 2, (1,), generator=generator))
        entropy = torch.rand(length, generator=generator) * 2.0
        rows.append((f"prompt{prompt}", session, torch.ones(length, dtype=torch.int64), scores, entropy))
    rows.append(("pad5f3a", 0, torch.zeros(1, dtype=torch.int64), torch.zeros(1), torch.zeros(1)))
    order = torch.randperm(len(rows), generator=generator).tolist()
    keys, fields = [], []
    for uid, session, mask, scores, entropy in (rows[i] for i in order):
        keys.append(f"{uid}_{session}_0")
        field = {"uid": uid, "response_mask": mask, "rm_scores": scores}
        if with_entropy:
            field["entropy"] = entropy
        fields.append(field)
    partition = f"test{next(_partitions)}"
    return tq.kv_batch_put(keys=keys, partition_id=partition, fields=list_of_dict_to_tensordict(fields))


def read(tq: Any, batch: Any, field: str) -> torch.Tensor:  # noqa: ANN401
    """One field of the batch, padded to (B, T)."""
    nested = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=[field])[field]
    return nested.to_padded_tensor(0.0) if nested.is_nested else nested


def run_compute_advantage(trainer_cls: type, config: Any, batch: Any) -> tuple[Any, dict]:  # noqa: ANN401
    trainer = trainer_cls(config)
    metrics: dict = {}
    trainer._compute_advantage(batch, metrics)
    return trainer, metrics


def row_weights_rows(batch: Any) -> list[int]:  # noqa: ANN401
    """The rows of the batch that are responses (not verl's padding)."""
    return [i for i, key in enumerate(batch.keys) if not key.startswith("pad")]


GRPO = ["algorithm.adv_estimator=grpo", "actor_rollout_ref.rollout.n=4"]


@pytest.fixture(scope="module")
def stock(ray_with_transfer_queue, verl_config_factory) -> dict[str, Any]:
    """verl's own PPOTrainerSync on a batch: the GRPO advantages and returns that EGSW starts from."""
    from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync

    tq = ray_with_transfer_queue
    batch = put_batch(tq)
    run_compute_advantage(PPOTrainerSync, verl_config_factory(GRPO), batch)
    return {"advantages": read(tq, batch, "advantages"), "returns": read(tq, batch, "returns"), "batch": batch}


def test_importing_the_plugin_replaces_every_trainer_mode() -> None:
    from verl.trainer.ppo.v1 import get_trainer_cls
    from verl.trainer.ppo.v1.trainer_colocate_async import PPOTrainerColocateAsync
    from verl.trainer.ppo.v1.trainer_separate_async import PPOTrainerSeparateAsync
    from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync

    for mode, base in [
        ("sync", PPOTrainerSync),
        ("colocate_async", PPOTrainerColocateAsync),
        ("separate_async", PPOTrainerSeparateAsync),
    ]:
        trainer_cls = get_trainer_cls(mode)
        assert trainer_cls is not base and issubclass(trainer_cls, base) and trainer_cls.egsw_plugin


@pytest.mark.parametrize("egsw", [None, "+egsw.mode=none", "+egsw={mode: none, alpha: 5.0, temperature: 0.01}"])
def test_egsw_off_is_bitwise_stock_grpo(ray_with_transfer_queue, verl_config_factory, stock, egsw) -> None:
    from verl.trainer.ppo.v1 import get_trainer_cls

    tq = ray_with_transfer_queue
    batch = put_batch(tq)
    trainer, metrics = run_compute_advantage(
        get_trainer_cls("sync"), verl_config_factory(GRPO + ([egsw] if egsw else [])), batch
    )
    assert trainer.egsw_settings is None
    assert torch.equal(read(tq, batch, "advantages"), stock["advantages"])
    assert torch.equal(read(tq, batch, "returns"), stock["returns"])
    assert not any(key.startswith("egsw/") for key in metrics)


@pytest.mark.parametrize("mode", ["step", "trajectory"])
def test_egsw_writes_weighted_advantages_back(ray_with_transfer_queue, verl_config_factory, stock, mode) -> None:
    from verl.trainer.ppo.v1 import get_trainer_cls

    tq = ray_with_transfer_queue
    batch = put_batch(tq)
    overrides = GRPO + [f"+egsw.mode={mode}", "+egsw.alpha=0.5", "+egsw.temperature=0.5"]
    trainer, metrics = run_compute_advantage(get_trainer_cls("sync"), verl_config_factory(overrides), batch)

    got = read(tq, batch, "advantages")
    mask = read(tq, batch, "response_mask")
    uids = np.array(tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=["uid"])["uid"])
    expected = egsw_advantages(
        stock["advantages"], read(tq, batch, "entropy"), mask, uids, alpha=0.5, temperature=0.5, mode=mode
    )
    assert torch.equal(got, expected)
    assert not torch.equal(got, stock["advantages"])
    assert torch.equal(got != 0, stock["advantages"] != 0)  # w > 0: only the magnitudes change, never a sign
    assert torch.equal(torch.sign(got), torch.sign(stock["advantages"]))
    assert torch.equal(read(tq, batch, "returns"), stock["returns"])
    padding_row = [i for i, key in enumerate(batch.keys) if key.startswith("pad")]
    assert torch.equal(got[padding_row], torch.zeros_like(got[padding_row]))
    assert {"egsw/weight_mean", "egsw/weight_max", "egsw/ess", "egsw/temperature"} <= metrics.keys()
    # rescale: the mean weight is 1 over each softmax (step: the group's active tokens at a position; trajectory:
    # the group's responses), so 1 over all active tokens step-wise and over all responses trajectory-wise.
    row_weights = trainer.egsw_last.weights.amax(dim=1)[row_weights_rows(batch)]
    mean_weight = metrics["egsw/weight_mean"] if mode == "step" else row_weights.double().mean().item()
    assert mean_weight == pytest.approx(1.0, abs=1e-6)
    assert trainer.egsw_last.layout.num_groups == 3  # the padding row takes part in no group


def test_missing_entropy_fails_naming_the_setting(ray_with_transfer_queue, verl_config_factory) -> None:
    from verl.trainer.ppo.v1 import get_trainer_cls

    batch = put_batch(ray_with_transfer_queue, with_entropy=False)
    trainer = get_trainer_cls("sync")(verl_config_factory(GRPO + ["+egsw.mode=step"]))
    with pytest.raises(RuntimeError, match=ENTROPY_SETTING.replace(".", r"\.")):
        trainer._compute_advantage(batch, {})


def test_alpha_zero_needs_no_entropy(ray_with_transfer_queue, verl_config_factory, stock) -> None:
    from verl.trainer.ppo.v1 import get_trainer_cls

    tq = ray_with_transfer_queue
    batch = put_batch(tq, with_entropy=False)
    overrides = GRPO + ["+egsw.mode=step", "+egsw.alpha=0", f"{ENTROPY_SETTING}=true"]
    run_compute_advantage(get_trainer_cls("sync"), verl_config_factory(overrides), batch)
    mask = read(tq, batch, "response_mask")
    uids = np.array(tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=["uid"])["uid"])
    zeros = torch.zeros_like(stock["advantages"])
    expected = egsw_advantages(stock["advantages"], zeros, mask, uids, alpha=0.0, temperature=1.0, mode="step")
    assert torch.equal(read(tq, batch, "advantages"), expected)


def test_bypass_mode_fails_at_start_naming_the_setting(ray_with_transfer_queue, verl_config_factory) -> None:
    from verl.trainer.ppo.v1 import get_trainer_cls

    config = verl_config_factory(GRPO + ["+egsw.mode=trajectory", f"{ENTROPY_SETTING}=true"])
    with pytest.raises(ValueError, match=ENTROPY_SETTING.replace(".", r"\.")):
        get_trainer_cls("sync")(config)


def test_bad_settings_fail_at_start(ray_with_transfer_queue, verl_config_factory) -> None:
    from verl.trainer.ppo.v1 import get_trainer_cls

    with pytest.raises(ValueError, match="egsw.temperature"):
        get_trainer_cls("sync")(verl_config_factory(GRPO + ["+egsw.temperature=hot"]))


def test_ray_workers_load_the_plugin_through_the_runtime_env(ray_with_transfer_queue) -> None:
    """What the recipes' ray_kwargs.ray_init.runtime_env does: a worker gets the variable, verl imports the plugin."""
    import ray

    @ray.remote(num_cpus=0)
    def trainer_classes() -> list[str]:
        from verl.trainer.ppo.v1 import get_trainer_cls

        return [get_trainer_cls(mode).__name__ for mode in ("sync", "colocate_async", "separate_async")]

    with_plugin = trainer_classes.options(runtime_env={"env_vars": {PLUGIN_ENV: PLUGIN_MODULE}}).remote()
    without = trainer_classes.options(runtime_env={"env_vars": {PLUGIN_ENV: ""}}).remote()
    assert ray.get(with_plugin, timeout=300) == [
        "EGSWPPOTrainerSync", "EGSWPPOTrainerColocateAsync", "EGSWPPOTrainerSeparateAsync"
    ]  # fmt: skip
    assert ray.get(without, timeout=300) == ["PPOTrainerSync", "PPOTrainerColocateAsync", "PPOTrainerSeparateAsync"]


def test_task_runner_without_the_plugin_stops_naming_the_variable(ray_with_transfer_queue) -> None:
    """verl's own TaskRunnerV1.run, in a Ray worker that lacks the variable, on an EGSW recipe: it stops at start."""
    import ray
    from hydra import compose, initialize_config_dir
    from verl.trainer.main_ppo import TaskRunnerV1

    from tests.verl.conftest import RECIPES

    with initialize_config_dir(config_dir=str(RECIPES), version_base=None):
        config = compose(config_name="egsw-step")
    assert OmegaConf.select(config, "egsw.mode") == "step"
    runner = TaskRunnerV1.options(num_cpus=0).remote()  # the Ray instance was started without the variable
    try:
        with pytest.raises(ray.exceptions.RayTaskError, match=f"Environment variable '{PLUGIN_ENV}' not found"):
            ray.get(runner.run.remote(config), timeout=300)
    finally:
        ray.kill(runner)
