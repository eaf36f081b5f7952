"""EGSWTrainer against TRL's GRPOTrainer on a tiny random Llama: equivalence, effect, entropy, cost."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from trl import GRPOConfig, GRPOTrainer

from egsw import EGSWConfig, EGSWTrainer
from tests.helpers import deterministic_rollout, trainer_kwargs, word_variety_reward

pytestmark = pytest.mark.slow


def train(trainer_cls, config_cls, model_dir: Path, dataset, out: Path, **fields):
    """Trains for the config's max_steps; returns the trainer, its logged losses and final parameters."""
    args = config_cls(**trainer_kwargs(out, **fields))
    trainer = trainer_cls(model=str(model_dir), reward_funcs=word_variety_reward, args=args, train_dataset=dataset)
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    params = {name: p.detach().clone() for name, p in trainer.model.named_parameters()}
    return trainer, losses, params


def max_param_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max((a[name] - b[name]).abs().max().item() for name in a)


@pytest.fixture(scope="module")
def grpo_run(tiny_model_dir, prompts_dataset, tmp_path_factory):
    """Plain TRL GRPO, two optimizer steps: the baseline every equivalence test compares with."""
    trainer, losses, params = train(
        GRPOTrainer, GRPOConfig, tiny_model_dir, prompts_dataset, tmp_path_factory.mktemp("grpo")
    )
    del trainer
    return losses, params


def test_grpo_baseline_learns_something(grpo_run, tiny_model_dir):
    losses, params = grpo_run
    from transformers import AutoModelForCausalLM

    start = dict(AutoModelForCausalLM.from_pretrained(tiny_model_dir).named_parameters())
    assert len(losses) == 2 and any(loss != 0 for loss in losses)
    assert max_param_difference({k: v.detach() for k, v in start.items()}, params) > 1e-4


@pytest.mark.parametrize(
    "egsw_fields",
    [dict(egsw_mode="none"), dict(egsw_mode="step", egsw_temperature=1e9, egsw_alpha=0.0),
     dict(egsw_mode="trajectory", egsw_temperature=1e9, egsw_alpha=0.0)],
    ids=["mode-none", "step-P1e9-alpha0", "trajectory-P1e9-alpha0"],
)  # fmt: skip
def test_reproduces_grpo_losses_and_parameters(grpo_run, tiny_model_dir, prompts_dataset, tmp_path, egsw_fields):
    grpo_losses, grpo_params = grpo_run
    # The plain forward, as TRL's: this test is about the weighting. The shared-prompt forward equals it to fp32
    # rounding, which Adam at lr 1e-2 turns into 1e-5-sized parameter differences (tests/test_shared_prompt.py
    # checks it with SGD, where it stays within 2e-8).
    trainer, losses, params = train(
        EGSWTrainer, EGSWConfig, tiny_model_dir, prompts_dataset, tmp_path, **egsw_fields, share_prompt_forward=False
    )
    assert losses == pytest.approx(grpo_losses, abs=1e-6)
    assert max_param_difference(grpo_params, params) <= 1e-6
    if egsw_fields["egsw_mode"] != "none":
        assert trainer.egsw_last is not None and trainer.egsw_last.entropy_source == "generation"


@pytest.mark.parametrize("mode", ["step", "trajectory"])
def test_small_temperature_changes_the_update(grpo_run, tiny_model_dir, prompts_dataset, tmp_path, mode):
    _, grpo_params = grpo_run
    trainer, _, params = train(
        EGSWTrainer, EGSWConfig, tiny_model_dir, prompts_dataset, tmp_path,
        egsw_mode=mode, egsw_temperature=0.05, egsw_alpha=0.5,
    )  # fmt: skip
    assert max_param_difference(grpo_params, params) > 1e-4
    logged = trainer.state.log_history[-2]
    for key in ("egsw/weight_mean", "egsw/weight_max", "egsw/ess", "egsw/positive_advantage_mass", "egsw/temperature"):
        assert key in logged
    assert logged["egsw/weight_max"] > 1.0 and logged["egsw/ess"] < 1.0


@pytest.mark.parametrize(
    ("loss_type", "level"),
    [("grpo", "token"), ("bnpo", "token"), ("dr_grpo", "token"), ("dapo", "token"), ("dapo", "sequence"),
     ("cispo", "token"), ("sapo", "token"), ("luspo", "sequence"), ("vespo", "token")],
)  # fmt: skip
def test_every_linear_loss_type(tiny_model_dir, prompts_dataset, tmp_path, loss_type, level):
    """Each loss: P -> inf reproduces GRPO's update, a small P changes it.

    Plain SGD, so that the parameters show the gradient: Adam's first step, lr * g / |g|, would turn
    float-rounding noise in a near-zero gradient entry (step-wise advantages are (B, T), so sums run in
    another order) into a full lr-sized difference.
    """
    fields = dict(max_steps=1, loss_type=loss_type, importance_sampling_level=level, optim="sgd", learning_rate=0.1)
    _, _, grpo = train(GRPOTrainer, GRPOConfig, tiny_model_dir, prompts_dataset, tmp_path / "g", **fields)
    _, _, flat = train(
        EGSWTrainer, EGSWConfig, tiny_model_dir, prompts_dataset, tmp_path / "e", egsw_temperature=1e9,
        egsw_alpha=0.0, **fields,
    )  # fmt: skip
    _, _, sharp = train(
        EGSWTrainer, EGSWConfig, tiny_model_dir, prompts_dataset, tmp_path / "s", egsw_temperature=0.05, **fields
    )
    assert max_param_difference(grpo, flat) <= 1e-6
    assert max_param_difference(grpo, sharp) > 1e-5


# ---- the entropies, and what they cost ------------------------------------------------------------


def generation_batch(trainer, dataset, prompts: int = 2) -> list[dict]:
    return [{"prompt": p} for p in dataset["prompt"][:prompts] for _ in range(trainer.num_generations)]


def trl_entropies(trainer, batch) -> torch.Tensor:
    """What GRPOTrainer._get_per_token_logps_and_entropies computes for the batch's completions."""
    completion_ids = batch["completion_ids"]
    with torch.no_grad():
        _, entropies, _ = GRPOTrainer._get_per_token_logps_and_entropies(
            trainer,
            trainer.model,
            torch.cat([batch["prompt_ids"], completion_ids], dim=1),
            torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1),
            completion_ids.size(1),
            compute_entropy=True,
        )
    return entropies


class ForwardCounter:
    def __init__(self, model: torch.nn.Module) -> None:
        self.calls = 0
        self.handle = model.register_forward_pre_hook(self)

    def __call__(self, *_: object) -> None:
        self.calls += 1


def generate_and_score(trainer_cls, config_cls, model_dir, dataset, out, seed=3, **fields):
    """One generation batch through the trainer; returns (trainer, batch, number of forward calls)."""
    fields = {"max_steps": 1, **fields}
    rollout = fields.pop("rollout_func", None)
    args = config_cls(**trainer_kwargs(out, **fields))
    trainer = trainer_cls(
        model=str(model_dir), reward_funcs=word_variety_reward, args=args, train_dataset=dataset, rollout_func=rollout
    )
    trainer.model.train()
    counter = ForwardCounter(trainer.model)
    torch.manual_seed(seed)
    batch = trainer._generate_and_score_completions(generation_batch(trainer, dataset))
    counter.handle.remove()
    return trainer, batch, counter.calls


@pytest.mark.parametrize(
    ("fields", "source", "extra_forwards"),
    [
        (dict(), "generation", 0),
        (dict(pad_to_multiple_of=16), "generation", 0),
        (dict(num_iterations=2), "old_logps", 0),
        (dict(rollout_func=deterministic_rollout), "forward", 1),
    ],
    ids=["hf-generate", "hf-generate-padded", "num_iterations-2", "rollout_func-fallback"],
)
def test_entropies_equal_trls_and_cost_no_extra_forward(
    tiny_model_dir, prompts_dataset, tmp_path, fields, source, extra_forwards
):
    trainer, batch, calls = generate_and_score(
        EGSWTrainer, EGSWConfig, tiny_model_dir, prompts_dataset, tmp_path / "e", **fields
    )
    _, grpo_batch, grpo_calls = generate_and_score(
        GRPOTrainer, GRPOConfig, tiny_model_dir, prompts_dataset, tmp_path / "g", **fields
    )
    assert trainer.egsw_last.entropy_source == source
    assert torch.equal(batch["completion_ids"], grpo_batch["completion_ids"])  # same samples
    assert calls == grpo_calls + extra_forwards

    mask = batch["completion_mask"].bool()
    lengths = mask.sum(1)
    assert lengths.min() < lengths.max()  # ragged completions: the alignment is exercised
    got, want = trainer.egsw_last.entropies, trl_entropies(trainer, batch)
    assert got.shape == want.shape
    torch.testing.assert_close(got[mask], want[mask].float(), rtol=0, atol=1e-4)
    # and the advantages the loss sees are the weights times TRL's advantages
    expected = trainer.egsw_last.weights * grpo_batch["advantages"].unsqueeze(1)
    assert batch["advantages"].shape == expected.shape  # step-wise: (B, T)
    torch.testing.assert_close(batch["advantages"], expected)


def test_evaluation_weighs_eval_groups_and_logs_diagnostics(tiny_model_dir, prompts_dataset, tmp_path):
    args = EGSWConfig(
        **trainer_kwargs(tmp_path, per_device_eval_batch_size=8, num_generations_eval=4, egsw_temperature=0.1)
    )
    trainer = EGSWTrainer(
        model=str(tiny_model_dir),
        reward_funcs=word_variety_reward,
        args=args,
        train_dataset=prompts_dataset,
        eval_dataset=prompts_dataset.select(range(4)),
    )
    metrics = trainer.evaluate()
    assert metrics["eval_egsw/weight_mean"] == pytest.approx(1.0, abs=1e-5)
    assert metrics["eval_egsw/ess"] < 1.0


def test_bf16_autocast_default_trains_and_entropies_agree_to_bf16_rounding(tiny_model_dir, prompts_dataset, tmp_path):
    """GRPOConfig turns bf16 autocast on by default (also on the CPU): TRL's forward then rounds its logits
    to bf16 while generate runs the fp32 weights, so the two entropies agree to bf16 precision only."""
    trainer, batch, _ = generate_and_score(
        EGSWTrainer, EGSWConfig, tiny_model_dir, prompts_dataset, tmp_path, bf16=True
    )
    assert trainer.args.bf16 and trainer.egsw_last.entropy_source == "generation"
    mask = batch["completion_mask"].bool()
    got, want = trainer.egsw_last.entropies[mask], trl_entropies(trainer, batch)[mask].float()
    torch.testing.assert_close(got, want, rtol=0, atol=2e-2)
    assert torch.isfinite(batch["advantages"]).all()
