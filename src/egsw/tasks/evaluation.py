"""Generate answers to a set of examples and score them: accuracy, pass@k, completion length.

Generation goes through ``transformers.generate`` in batches (prompts sorted by length to waste
little on padding), or through vLLM (``generate_completions_vllm``) when it is installed. Scoring
is ``egsw.tasks.rewards.score_completions``, the same code that gives the training reward.
``write_results`` writes what ``egsw eval`` keeps: ``results.json`` and ``samples.jsonl``.
"""

from __future__ import annotations

import importlib.util
import json
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from egsw.stats import pass_at_k, wilson_interval
from egsw.tasks.examples import Example
from egsw.tasks.rewards import score_completions


@dataclass(frozen=True)
class Completion:
    """One generated answer: its text and its length in tokens (up to, not counting, EOS)."""

    text: str
    num_tokens: int


@dataclass
class SampleRecord:
    """One scored completion, as written to ``samples.jsonl``."""

    id: str
    sample: int
    prompt: str
    completion: str
    answer: str
    extracted: str | None
    correct: bool | None
    num_tokens: int
    kind: str = "math"


@dataclass
class EvalResult:
    """Summary of one evaluation set.

    ``accuracy`` is pass@1 averaged over samples and problems; its interval is Wilson's 95% over
    problems (exact for greedy decoding, conservative for several samples). ``pass_at_k`` maps k
    to the unbiased estimate. Unscorable completions (verifier timeout) count as wrong and are
    reported in ``unscorable_share``; ``unparsed_share`` is the share with no extractable answer.
    """

    name: str
    num_problems: int
    num_samples: int
    temperature: float
    accuracy: float
    accuracy_low: float
    accuracy_high: float
    pass_at_k: dict[int, float]
    mean_length: float
    median_length: float
    unparsed_share: float
    unscorable_share: float
    per_problem_correct: list[float] = field(repr=False, default_factory=list)
    samples: list[SampleRecord] = field(repr=False, default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Everything but the per-sample records (what ``results.json`` and ``eval.json`` hold)."""
        data = asdict(self)
        data.pop("samples")
        data["pass_at_k"] = {str(k): v for k, v in self.pass_at_k.items()}
        return data


def precision_context(model: Any, bf16: bool) -> Any:  # noqa: ANN401 - a torch autocast context
    """bf16 autocast on the model's device when ``bf16`` (weights keep their dtype), else a no-op.

    ``egsw train`` evaluates under the training precision and ``egsw eval`` defaults to the same, so
    that both report the same accuracy for the same model.
    """
    device_type = next(model.parameters()).device.type
    return torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16)


def render_prompts(tokenizer: Any, examples: Sequence[Example]) -> list[str]:  # noqa: ANN401
    """Each example's chat messages through the tokenizer's chat template, ready to generate from.

    A tokenizer without a chat template (a base model, the random testbed) gets the messages as
    plain text, ``role: content`` one after another, ending with ``assistant:``.
    """
    if getattr(tokenizer, "chat_template", None) is None:
        return ["\n\n".join([*(f"{m['role']}: {m['content']}" for m in e.prompt), "assistant:"]) for e in examples]
    return [tokenizer.apply_chat_template(e.prompt, tokenize=False, add_generation_prompt=True) for e in examples]


@torch.no_grad()
def generate_completions(
    model: Any,  # noqa: ANN401 - a transformers causal LM
    tokenizer: Any,  # noqa: ANN401
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    temperature: float = 0.0,
    num_samples: int = 1,
    batch_size: int = 32,
    seed: int = 0,
    progress: str | None = None,
) -> list[list[Completion]]:
    """``num_samples`` completions per prompt: greedy when ``temperature`` is 0, else sampled.

    Returns one list per prompt, in the order given. ``progress`` is a progress-bar label (None: no bar).
    """
    if temperature == 0 and num_samples > 1:
        raise ValueError("num_samples > 1 needs a sampling temperature > 0 (greedy decoding gives one answer)")
    model.eval()
    tokenizer.padding_side = "left"
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    jobs = [(i, s) for i in order for s in range(num_samples)]
    results: list[list[Completion]] = [[] for _ in prompts]
    generator_seed = torch.Generator().manual_seed(seed)
    stop_ids = {tokenizer.eos_token_id, tokenizer.pad_token_id} - {None}
    bar = tqdm(total=len(jobs), desc=progress, unit="answer", disable=progress is None, dynamic_ncols=True)
    for start in range(0, len(jobs), batch_size):
        batch = jobs[start : start + batch_size]
        encoded = tokenizer([prompts[i] for i, _ in batch], return_tensors="pt", padding=True, add_special_tokens=False)
        encoded = {key: value.to(model.device) for key, value in encoded.items()}
        sampling = {"do_sample": False}
        if temperature > 0:
            torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator_seed)))
            sampling = {"do_sample": True, "temperature": temperature, "top_p": 1.0, "top_k": None}
        output = model.generate(
            **encoded, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id, **sampling
        )
        new_tokens = output[:, encoded["input_ids"].shape[1] :].tolist()
        for (prompt_index, _), tokens in zip(batch, new_tokens, strict=True):
            length = next((position for position, token in enumerate(tokens) if token in stop_ids), len(tokens))
            text = tokenizer.decode(tokens[:length], skip_special_tokens=True)
            results[prompt_index].append(Completion(text, length))
        bar.update(len(batch))
    bar.close()
    return results


def evaluate_examples(
    model: Any,  # noqa: ANN401 - a transformers causal LM
    tokenizer: Any,  # noqa: ANN401
    examples: Sequence[Example],
    *,
    name: str = "eval",
    max_new_tokens: int = 256,
    temperature: float = 0.0,
    num_samples: int = 1,
    k_values: Sequence[int] = (1,),
    batch_size: int = 32,
    seed: int = 0,
    progress: bool = True,
) -> EvalResult:
    """Generate for every example and score: see ``EvalResult`` for what is measured."""
    check_eval_options(name, examples, num_samples, k_values)
    prompts = render_prompts(tokenizer, examples)
    completions = generate_completions(
        model, tokenizer, prompts, max_new_tokens=max_new_tokens, temperature=temperature,
        num_samples=num_samples, batch_size=batch_size, seed=seed, progress=f"{name}" if progress else None,
    )  # fmt: skip
    return score_generated(examples, prompts, completions, name=name, temperature=temperature, k_values=k_values)


def check_eval_options(name: str, examples: Sequence[Example], num_samples: int, k_values: Sequence[int]) -> None:
    """Refuse an empty set and pass@k values outside ``1..num_samples``."""
    if not examples:
        raise ValueError(f"evaluation set {name!r} is empty")
    bad_k = [k for k in k_values if not 1 <= k <= num_samples]
    if bad_k:
        raise ValueError(f"pass@k needs 1 <= k <= num_samples ({num_samples}); got k={bad_k}")


def score_generated(
    examples: Sequence[Example],
    prompts: Sequence[str],
    completions: Sequence[Sequence[Completion]],
    *,
    name: str = "eval",
    temperature: float = 0.0,
    k_values: Sequence[int] = (1,),
) -> EvalResult:
    """Score completions (``completions[i]``: the samples for ``examples[i]``, all the same count)."""
    num_samples = len(completions[0]) if completions else 0
    if len(completions) != len(examples) or any(len(group) != num_samples for group in completions):
        raise ValueError(f"expected {len(examples)} groups of equal size, one per example")
    check_eval_options(name, examples, num_samples, k_values)
    flat = [
        (e, p, s, c) for e, p, group in zip(examples, prompts, completions, strict=True) for s, c in enumerate(group)
    ]
    scores = score_completions([c.text for *_, c in flat], [e.answer for e, *_ in flat], [e.kind for e, *_ in flat])
    samples = [
        SampleRecord(e.id, s, p, c.text, e.answer, score.extracted, score.correct, c.num_tokens, e.kind)
        for (e, p, s, c), score in zip(flat, scores, strict=True)
    ]
    per_problem = [samples[i * num_samples : (i + 1) * num_samples] for i in range(len(examples))]
    correct_counts = [sum(bool(r.correct) for r in group) for group in per_problem]
    per_problem_correct = [count / num_samples for count in correct_counts]
    accuracy = sum(per_problem_correct) / len(examples)
    low, high = wilson_interval(accuracy * len(examples), len(examples))
    lengths = [r.num_tokens for r in samples]
    return EvalResult(
        name=name,
        num_problems=len(examples),
        num_samples=num_samples,
        temperature=temperature,
        accuracy=accuracy,
        accuracy_low=low,
        accuracy_high=high,
        pass_at_k={k: sum(pass_at_k(num_samples, c, k) for c in correct_counts) / len(examples) for k in k_values},
        mean_length=sum(lengths) / len(lengths),
        median_length=float(statistics.median(lengths)),
        unparsed_share=sum(r.extracted is None for r in samples) / len(samples),
        unscorable_share=sum(r.correct is None for r in samples) / len(samples),
        per_problem_correct=per_problem_correct,
        samples=samples,
    )


# ---------------------------------------------------------------------------------------------
# vLLM generation (optional: ``pip install 'egsw[vllm]'``)

INSTALL_VLLM = "pip install 'egsw[vllm]'"


def vllm_available() -> bool:
    """Whether the ``vllm`` package is importable (checked without importing it)."""
    return importlib.util.find_spec("vllm") is not None


def load_vllm(model_path: str, *, seed: int = 0, dtype: str = "auto", **engine_kwargs: Any) -> Any:  # noqa: ANN401
    """A ``vllm.LLM`` engine on a local folder or hub id; extra keywords go to ``vllm.LLM``."""
    if not vllm_available():
        raise ImportError(
            f"the vLLM backend needs the vllm package: run `{INSTALL_VLLM}` (or use the transformers backend)"
        )
    from vllm import LLM

    return LLM(model=model_path, seed=seed, dtype=dtype, **engine_kwargs)


def generate_completions_vllm(
    llm: Any,  # noqa: ANN401 - a vllm.LLM
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    temperature: float = 0.0,
    num_samples: int = 1,
    seed: int = 0,
    progress: bool = True,
) -> list[list[Completion]]:
    """Like ``generate_completions``, through vLLM: one list of ``num_samples`` completions per prompt.

    Lengths count the generated tokens up to, not counting, the end-of-sequence token, as the
    transformers backend does.
    """
    if temperature == 0 and num_samples > 1:
        raise ValueError("num_samples > 1 needs a sampling temperature > 0 (greedy decoding gives one answer)")
    from vllm import SamplingParams

    params = SamplingParams(n=num_samples, temperature=temperature, top_p=1.0, max_tokens=max_new_tokens, seed=seed)
    tokenizer = llm.get_tokenizer()
    # Token ids, not text: the rendered chat template already holds BOS, as in the transformers backend.
    requests = [{"prompt_token_ids": tokenizer(p, add_special_tokens=False)["input_ids"]} for p in prompts]
    results = []
    for request in llm.generate(requests, params, use_tqdm=progress):
        group = []
        for output in request.outputs:
            tokens = list(output.token_ids)
            # Stopped by EOS or a stop token (not a stop string): that last special token is not counted.
            on_token = output.finish_reason == "stop" and not isinstance(output.stop_reason, str)
            special_end = bool(tokens) and tokenizer.decode(tokens[-1:], skip_special_tokens=True) == ""
            group.append(Completion(output.text, len(tokens) - 1 if on_token and special_end else len(tokens)))
        results.append(group)
    return results


# ---------------------------------------------------------------------------------------------
# Writing results

RESULTS_FILE = "results.json"
SAMPLES_FILE = "samples.jsonl"


def write_results(result: EvalResult, directory: str | Path, meta: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """Write ``results.json`` (``meta`` + ``result.summary()``) and ``samples.jsonl`` (one line per sample)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    results_path, samples_path = directory / RESULTS_FILE, directory / SAMPLES_FILE
    results_path.write_text(json.dumps({**(meta or {}), **result.summary()}, indent=2) + "\n")
    with samples_path.open("w", encoding="utf-8") as handle:
        for record in result.samples:
            handle.write(json.dumps(asdict(record), ensure_ascii=False) + "\n")
    return results_path, samples_path
