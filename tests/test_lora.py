"""LoRA through PEFT on the CPU: `egsw train --use_peft` trains and merges; EGSW's weights do not depend on LoRA."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from peft import LoraConfig
from safetensors.torch import load_file

from egsw import EGSWConfig, EGSWTrainer
from egsw.models import resolve_model
from egsw.run.options import parse
from egsw.run.training import peft_config_of
from egsw.weights import compute_egsw_weights
from tests.helpers import run_egsw, trainer_kwargs, word_variety_reward

pytestmark = pytest.mark.slow

TARGETS = ["q_proj", "v_proj"]


def one_generation_batch(model_dir: Path, dataset, out: Path, mode: str, lora: bool) -> EGSWTrainer:  # noqa: ANN001
    """One optimizer step from the same seed; LoRA (r=4, no dropout, B = 0 at the start) or full fine-tuning."""
    args = EGSWConfig(**trainer_kwargs(out, max_steps=1, egsw_mode=mode, egsw_alpha=0.5, egsw_temperature=0.5))
    peft = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=TARGETS, task_type="CAUSAL_LM")
    trainer = EGSWTrainer(
        model=str(model_dir), reward_funcs=word_variety_reward, args=args, train_dataset=dataset,
        peft_config=peft if lora else None,
    )  # fmt: skip
    trainer.train()
    return trainer


@pytest.mark.parametrize("mode", ["step", "trajectory"])
def test_egsw_weights_are_the_same_with_and_without_lora(tiny_model_dir, prompts_dataset, tmp_path, mode) -> None:
    full = one_generation_batch(tiny_model_dir, prompts_dataset, tmp_path / "full", mode, lora=False)
    lora = one_generation_batch(tiny_model_dir, prompts_dataset, tmp_path / "lora", mode, lora=True)
    assert lora.model.peft_config and not hasattr(full.model, "peft_config")
    trainable = [name for name, p in lora.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in name for name in trainable)

    a, b = full.egsw_last, lora.egsw_last
    assert a is not None and b is not None and a.entropy_source == b.entropy_source == "generation"
    # LoRA starts at B = 0, so the policy, the sampled completions, their entropies and advantages are the same...
    assert torch.equal(a.mask, b.mask) and torch.equal(a.advantages, b.advantages)
    assert torch.allclose(a.entropies, b.entropies, atol=1e-6)
    assert a.advantages.abs().max() > 0 and (a.weights[a.mask.bool()] != 1).any()
    # ...and so are EGSW's weights, which are exactly the paper's equations on those tensors.
    assert torch.allclose(a.weights, b.weights, atol=1e-6)
    reference = compute_egsw_weights(
        b.advantages, b.entropies, b.mask, group_size=4, alpha=0.5, temperature=0.5, mode=mode
    ).weights
    assert torch.allclose(b.weights, reference, atol=1e-6)


def test_lora_options_reach_peft() -> None:
    model_args = parse(
        ["--model_name_or_path", "tiny-random", "--use_peft", "--lora_r", "4", "--lora_alpha", "8",
         "--lora_dropout", "0", "--lora_target_modules", "q_proj", "v_proj"]
    ).model  # fmt: skip
    config = peft_config_of(model_args)
    assert isinstance(config, LoraConfig)
    assert (config.r, config.lora_alpha, config.lora_dropout, set(config.target_modules)) == (4, 8, 0.0, set(TARGETS))
    assert peft_config_of(parse(["--model_name_or_path", "tiny-random"]).model) is None


def test_egsw_train_with_lora_saves_the_adapter_and_the_merged_model(tmp_path: Path) -> None:
    args = [
        "--model_name_or_path", "tiny-random", "--use_peft", "--lora_r", "4", "--lora_alpha", "8",
        "--lora_target_modules", "q_proj", "v_proj", "--learning_rate", "1e-2", "--entropy_coef", "0.05",
        "--bf16", "false", "--max_steps", "2", "--max_completion_length", "8", "--per_device_train_batch_size", "8",
        "--num_generations", "4", "--eval_before", "false", "--heldout_size", "4", "--eval_max_new_tokens", "4",
        "--report_to", "none", "--output_dir", "run",
    ]  # fmt: skip
    result = run_egsw("train", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "run"
    assert [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()][:2] == [1, 2]
    assert (run / "adapter" / "adapter_model.safetensors").exists()
    assert json.loads((run / "adapter" / "adapter_config.json").read_text())["r"] == 4
    assert json.loads((run / "eval.json").read_text())["after"]["num_problems"] == 4

    # model/ is the base with the trained adapter merged in: only the targeted projections moved.
    base = load_file(Path(resolve_model("tiny-random").path) / "model.safetensors")
    merged = load_file(run / "model" / "model.safetensors")
    assert base.keys() == merged.keys()
    moved = {name for name in base if not torch.equal(base[name], merged[name])}
    assert moved and all(name.endswith(("q_proj.weight", "v_proj.weight")) for name in moved)
    egsw_eval = run_egsw(
        "eval", "--model", "run", "--limit", "2", "--max-new-tokens", "2", "--output", "eval", "--no-progress",
        cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert egsw_eval.returncode == 0, egsw_eval.stderr[-2000:]
