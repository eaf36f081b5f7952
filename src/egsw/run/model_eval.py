"""Evaluate one model on one or more sets (what ``egsw eval`` does once its options are checked).

The model loads once (transformers, or vLLM with ``backend="vllm"``); each set is generated and
scored (``egsw.tasks.evaluation``) and written to ``OUTPUT/<set>/results.json`` and
``samples.jsonl``; ``OUTPUT/summary.json`` holds every set's summary row.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from egsw.errors import InputError
from egsw.models import load_model_and_tokenizer, resolve_model
from egsw.tasks import catalog

SUMMARY_FILE = "summary.json"


@dataclass
class EvalOptions:
    """The checked options of one ``egsw eval`` run."""

    model: str
    sets: list[catalog.EvalSet]
    backend: str
    num_samples: int
    temperature: float
    k_values: list[int]
    max_new_tokens: int | None
    batch_size: int
    seed: int
    dtype: str | None
    bf16: bool
    device: str
    output: Path
    progress: bool


def _device(choice: str) -> str:
    import torch

    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if choice.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"--device {choice}: no CUDA device here; use --device cpu")
    return choice


def evaluate_model(options: EvalOptions, report: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Load ``options.model``, evaluate every set, write the files; returns one summary row per set."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from egsw.tasks.evaluation import (
        evaluate_examples,
        generate_completions_vllm,
        load_vllm,
        precision_context,
        render_prompts,
        score_generated,
        write_results,
    )

    started = time.monotonic()
    resolved = resolve_model(options.model)
    if options.backend == "vllm":
        dtype = options.dtype or "auto"
        llm = load_vllm(resolved.path, seed=options.seed, dtype=dtype)
        tokenizer, model, device = llm.get_tokenizer(), None, "vllm"
    else:
        device, dtype = _device(options.device), options.dtype or "float32"
        model, tokenizer = load_model_and_tokenizer(options.model, dtype=dtype)
        model.to(device)
    report(f"egsw eval: {options.model} ({resolved.path}) on {device}, loaded in {time.monotonic() - started:.1f}s")

    rows = []
    for eval_set in options.sets:
        max_new_tokens = options.max_new_tokens or eval_set.max_new_tokens
        set_started = time.monotonic()
        if options.backend == "vllm":
            prompts = render_prompts(tokenizer, eval_set.examples)
            completions = generate_completions_vllm(
                llm, prompts, max_new_tokens=max_new_tokens, temperature=options.temperature,
                num_samples=options.num_samples, seed=options.seed, progress=options.progress,
            )  # fmt: skip
            result = score_generated(
                eval_set.examples, prompts, completions, name=eval_set.name, temperature=options.temperature,
                k_values=options.k_values,
            )  # fmt: skip
        else:
            with precision_context(model, bf16=options.bf16):
                result = evaluate_examples(
                    model, tokenizer, eval_set.examples, name=eval_set.name, max_new_tokens=max_new_tokens,
                    temperature=options.temperature, num_samples=options.num_samples, k_values=options.k_values,
                    batch_size=options.batch_size, seed=options.seed, progress=options.progress,
                )  # fmt: skip
        wall_s = time.monotonic() - set_started
        meta = {
            "model": options.model,
            "model_path": resolved.path,
            "set": eval_set.name,
            "source": eval_set.source,
            "set_options": eval_set.meta,
            "skipped_rows": eval_set.skipped,
            "backend": options.backend,
            "device": device,
            "dtype": dtype,
            "bf16_autocast": options.bf16 and options.backend != "vllm",
            "max_new_tokens": max_new_tokens,
            "batch_size": options.batch_size,
            "seed": options.seed,
            "wall_time_s": round(wall_s, 2),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        results_path, _ = write_results(result, options.output / eval_set.name, meta)
        summary = {**meta, **result.summary()}
        summary.pop("per_problem_correct")
        rows.append(summary)
        report(
            f"{eval_set.name}: accuracy {100 * result.accuracy:.1f}% [{100 * result.accuracy_low:.1f}%, "
            f"{100 * result.accuracy_high:.1f}%] in {wall_s:.0f}s -> {results_path}"
        )
        if eval_set.skipped:
            report(f"{eval_set.name}: skipped {eval_set.skipped} rows without a question or answer")
    (options.output / SUMMARY_FILE).write_text(json.dumps(rows, indent=2) + "\n")
    return rows
