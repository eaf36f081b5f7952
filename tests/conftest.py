"""Shared fixtures: a tiny random Llama saved once per session, and prompts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from datasets import Dataset

from egsw.models.tiny_random import build_random_model

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny random Llama, its EOS embedding scaled up so that completions end at ragged lengths."""
    model, tokenizer = build_random_model("tiny", seed=0)
    with torch.no_grad():
        model.get_input_embeddings().weight[tokenizer.eos_token_id] *= 16.0
    path = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def prompts_dataset() -> Dataset:
    return Dataset.from_dict(
        {"prompt": [f"What is {a} + {b} ?" for a, b in zip(range(16), range(20, 36), strict=True)]}
    )
