"""Random-initialised causal LMs of real architectures, built offline, for tests and benchmarks.

Nothing is downloaded: the tokenizer is a word-level vocabulary made here, the weights are drawn
from a seed. ``save_random_model`` writes a folder that ``from_pretrained`` (and so TRL) loads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import WhitespaceSplit
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

SPECIAL_TOKENS = ("<pad>", "<eos>", "<unk>")
# Words every prompt of the tests may use; the rest of the vocabulary is filler "w<i>".
BASE_WORDS = tuple(str(d) for d in range(100)) + ("+", "-", "*", "=", "?", "What", "is", "answer", "the")

# Chat prompts become the messages' words in a row; the generation prompt is the word "answer".
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['content'] }} {% endfor %}{% if add_generation_prompt %}answer {% endif %}"
)

ARCHITECTURES: dict[str, dict[str, int | float | bool]] = {
    # A two-layer Llama: about 2 s per GRPO step on a 2-core CPU.
    "tiny": dict(
        vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=True,
    ),
    # SmolLM2-135M(-Instruct)'s shape (HuggingFaceTB/SmolLM2-135M config.json).
    "smollm2-135m": dict(
        vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
        num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192, rope_theta=100000.0,
        tie_word_embeddings=True, rms_norm_eps=1e-5,
    ),
}  # fmt: skip


def build_word_tokenizer(vocab_size: int) -> PreTrainedTokenizerFast:
    """A whitespace word-level tokenizer of exactly ``vocab_size`` tokens, with pad and eos."""
    words = list(SPECIAL_TOKENS) + list(BASE_WORDS)
    words += [f"w{i}" for i in range(vocab_size - len(words))]
    if len(words) != vocab_size:
        raise ValueError(f"vocab_size must be at least {len(SPECIAL_TOKENS) + len(BASE_WORDS)}, got {vocab_size}")
    backend = Tokenizer(WordLevel({word: index for index, word in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>"
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_random_model(architecture: str = "tiny", seed: int = 0) -> tuple[LlamaForCausalLM, PreTrainedTokenizerFast]:
    """A float32 Llama of the named architecture with weights drawn from ``seed``, and its tokenizer."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {sorted(ARCHITECTURES)}, got {architecture!r}")
    tokenizer = build_word_tokenizer(int(ARCHITECTURES[architecture]["vocab_size"]))
    return seeded_llama(ARCHITECTURES[architecture], tokenizer, seed), tokenizer


def seeded_llama(fields: dict[str, Any], tokenizer: PreTrainedTokenizerFast, seed: int) -> LlamaForCausalLM:
    """A float32 Llama with config ``fields``, weights drawn from ``seed``, and the tokenizer's pad/eos ids.

    The end-of-sequence token doubles as beginning-of-sequence (these tokenizers have no BOS).
    """
    config = LlamaConfig(
        **fields,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def save_random_model(path: str | Path, architecture: str = "tiny", seed: int = 0) -> Path:
    """Writes ``build_random_model(architecture, seed)`` to ``path`` (safetensors) and returns it."""
    model, tokenizer = build_random_model(architecture, seed)
    path = Path(path)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
