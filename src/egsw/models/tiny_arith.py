"""``tiny-arith``: a small Llama pre-trained here, offline, on the procedural arithmetic task.

A fast testbed for many seeds of RL comparisons (GRPO vs EGSW) on a CPU. ``save_tiny_arith``
builds it in about two minutes of CPU time (``egsw.models.build_tiny_arith`` does so once into the
cache); afterwards it loads like any Hugging Face folder (``AutoModelForCausalLM`` /
``AutoTokenizer.from_pretrained``), so TRL's ``GRPOTrainer``, ``egsw train`` and ``egsw eval`` use
it unchanged.

- Model: a four-layer Llama, hidden size 128 (``ARCHITECTURE``, 0.87M parameters), tied
  embeddings, float32 weights. A TRL GRPO step of 16 completions takes about 0.4 s on one CPU
  thread (fp32; bf16 autocast is slower at this size, and so are two threads on a shared CPU).
- Tokenizer: one token per character (printable ASCII and newline) plus ``<pad>``, ``<eos>``,
  ``<unk>``; decoding concatenates the characters, so ``decode(encode(text)) == text``.
- Chat template: the model was pre-trained on single questions, so the template renders only the
  last user message's content, then ``"\nA: "`` as the generation prompt. The system message and
  the worked example that ``egsw.tasks.procedural.problem_prompt`` puts first are not rendered,
  and neither is the fixed instruction every procedural question ends with
  (``procedural.INSTRUCTION``, "Put the final answer in \boxed{}."): it carries nothing this model
  needs, and leaving it out makes every sequence about 30% shorter (prompts of 20-100 characters,
  ``"What is 7 + 5 - 4?\nA: "``).
- Pre-training: next-token cross-entropy on the completion only (the prompt is masked), on
  problems of the procedural *train* split (``PRETRAIN_SEED``). The target completion is a short
  worked solution (``worked_solution``: ``"7 + 5 = 12. 12 - 4 = 8. \boxed{8}"``) then ``<eos>``.
  Prompts are rendered exactly as training and evaluation render them: the chat template applied
  to ``problem_prompt(question)`` with ``add_generation_prompt=True`` (``render_prompt``).
- Early stop: greedy accuracy on validation problems of the train split (``VALIDATION_SEED``,
  never in the pre-training pool, generated under bf16 autocast as ``egsw eval`` does) is checked
  every ``eval_every`` steps; training stops once it reaches ``target`` or at ``max_steps``. No
  wall-clock rule and one CPU thread: a build is reproducible. Stopping early leaves room to
  learn: about half of the groups of 4 answers sampled at temperature 0.7-1.0 hold right and wrong
  ones. Its errors are mostly arithmetic facts (``4 + 4 = 9``), each its own, so GRPO improves it
  slowly: measured, +7 points held out after 300 steps of 32 completions at lr 3e-5; within 100
  steps no learning rate from 3e-5 to 3e-4 gave a clear gain (above 1e-4 accuracy fell).

The held-out split is never seen: problems come from ``iter_problems("train", ...)``, which only
yields train problems (see ``egsw.tasks.procedural.split_of``).
"""

from __future__ import annotations

import itertools
import math
import random
import re
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, pre_tokenizers
from tokenizers.models import WordLevel
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from egsw.models.tiny_random import seeded_llama
from egsw.tasks.procedural import (
    DEFAULT_KINDS,
    DEFAULT_LEVELS,
    INSTRUCTION,
    Problem,
    iter_problems,
    problem_prompt,
)

SPECIAL_TOKENS = ("<pad>", "<eos>", "<unk>")
# Printable ASCII (space to tilde) and newline: every character of a procedural prompt and answer.
CHARACTERS = tuple(chr(code) for code in range(32, 127)) + ("\n",)
GENERATION_PROMPT = "\nA: "


def _jinja_string(text: str) -> str:
    """``text`` as a single-quoted Jinja string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


# The last user message without the fixed instruction, then the generation prompt (module docstring).
CHAT_TEMPLATE = (
    "{%- set ns = namespace(question='') -%}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'user' -%}{%- set ns.question = message['content'] -%}{%- endif -%}"
    "{%- endfor -%}"
    f"{{{{- ns.question | replace({_jinja_string(' ' + INSTRUCTION)}, '') -}}}}"
    f"{{%- if add_generation_prompt -%}}{{{{- {_jinja_string(GENERATION_PROMPT)} -}}}}{{%- endif -%}}"
)

ARCHITECTURE: dict[str, int | float | bool] = dict(
    hidden_size=128, intermediate_size=384, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=4,
    max_position_embeddings=320, tie_word_embeddings=True, rope_theta=10000.0, rms_norm_eps=1e-5,
)  # fmt: skip

PRETRAIN_SEED = 424242
VALIDATION_SEED = 424243
# Problems per kind in the pre-training pool (a kind with fewer distinct train problems gives all it has).
POOL_PER_KIND = 4000
# One thread: the same result on any machine (a matmul's sums may split by thread count), and for
# matrices this small it is as fast as two on a CPU shared with other jobs.
BUILD_THREADS = 1


@dataclass(frozen=True)
class PretrainSettings:
    """How ``pretrain`` trains: data, optimisation (AdamW, warmup then cosine) and the early-stop rule.

    The defaults are what ``tiny-arith`` is built with: validation accuracy passes ``target`` (0.30)
    after 400 steps of 32 problems (0.32; held out, 32.5% under ``egsw eval``), about 140 s on one
    thread of a busy 2-core CPU. The learning rate follows its cosine over ``max_steps`` whether or
    not training stops early.
    """

    kinds: tuple[str, ...] = DEFAULT_KINDS
    levels: tuple[int, ...] = DEFAULT_LEVELS
    batch_size: int = 32
    learning_rate: float = 3e-3
    warmup_steps: int = 20
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.01
    max_steps: int = 600
    eval_every: int = 50
    validation_size: int = 200
    target: float = 0.30
    seed: int = 0
    bf16: bool = True

    def __post_init__(self) -> None:
        for name in ("batch_size", "max_steps", "eval_every", "validation_size", "warmup_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


# ---------------------------------------------------------------------------------------------
# Tokenizer


def build_tokenizer() -> PreTrainedTokenizerFast:
    """The character-level tokenizer with ``<pad>``, ``<eos>``, ``<unk>`` and the chat template."""
    vocabulary = {token: index for index, token in enumerate(SPECIAL_TOKENS + CHARACTERS)}
    backend = Tokenizer(WordLevel(vocabulary, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    backend.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        eos_token="<eos>",
        unk_token="<unk>",
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def render_prompt(tokenizer: PreTrainedTokenizerFast, question: str) -> str:
    """The prompt text for ``question``, exactly as ``egsw train`` / ``egsw eval`` render it."""
    return tokenizer.apply_chat_template(problem_prompt(question), tokenize=False, add_generation_prompt=True)


# ---------------------------------------------------------------------------------------------
# Worked solutions

# "What is 7 + 5 - 4?": the first operand, then (operator, operand) pairs.
_ARITHMETIC = re.compile(r"What is (\d+)((?: [-+*] \d+)+)\?")
_ARITHMETIC_STEP = re.compile(r" ([-+*]) (\d+)")
# "Tom has 3 apples, gets 4 more, then gives away 2. ...": the first amount, then the changes.
_WORD_START = re.compile(r" has (\d+) ")
_WORD_STEP = re.compile(r"(gets|gives away) (\d+)")
_WORD_OPERATORS = {"gets": "+", "gives away": "-"}
_APPLY = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}


def solution_steps(problem: Problem) -> tuple[int, list[tuple[str, int]]]:
    """The first operand of ``problem`` and its (operator, operand) steps, read from the question."""
    question = problem.question
    if problem.kind == "word":
        start = _WORD_START.search(question)
        steps = [(_WORD_OPERATORS[verb], int(n)) for verb, n in _WORD_STEP.findall(question)]
    else:
        start = _ARITHMETIC.fullmatch(question)
        steps = [(op, int(n)) for op, n in _ARITHMETIC_STEP.findall(start.group(2))] if start else []
    if start is None or not steps:
        raise ValueError(f"cannot read the steps of {question!r}")
    return int(start.group(1)), steps


def worked_solution(problem: Problem) -> str:
    """A short worked solution ending in the boxed answer, one ``a op b = c.`` per step.

    ``What is 7 + 5 - 4?`` gives ``"7 + 5 = 12. 12 - 4 = 8. \\boxed{8}"``; a word problem gives the
    same steps (``has a ..., gets b more, then gives away c``).
    """
    value, steps = solution_steps(problem)
    lines = []
    for operator, operand in steps:
        result = _APPLY[operator](value, operand)
        lines.append(f"{value} {operator} {operand} = {result}.")
        value = result
    return " ".join([*lines, f"\\boxed{{{value}}}"])


# ---------------------------------------------------------------------------------------------
# Data


def problem_pool(
    kinds: Sequence[str], levels: Sequence[int], seed: int, per_kind: int, exclude: set[str] | None = None
) -> dict[str, list[Problem]]:
    """Distinct train-split problems for each kind (up to ``per_kind``), minus questions in ``exclude``."""
    exclude = exclude or set()
    pool = {}
    for kind in kinds:
        problems = iter_problems("train", seed, (kind,), levels)
        pool[kind] = [p for p in itertools.islice(problems, per_kind + len(exclude)) if p.question not in exclude]
        pool[kind] = pool[kind][:per_kind]
    return pool


def validation_problems(settings: PretrainSettings) -> list[Problem]:
    """The early-stop validation set: train-split problems from ``VALIDATION_SEED``, kinds in turn."""
    problems = iter_problems("train", VALIDATION_SEED, settings.kinds, settings.levels)
    return list(itertools.islice(problems, settings.validation_size))


def batches(pool: dict[str, list[Problem]], batch_size: int, seed: int) -> Iterator[list[Problem]]:
    """Endless batches, each of one kind (similar lengths pad little), kinds in turn, pools reshuffled per epoch."""
    rng = random.Random(seed)
    orders = {kind: [] for kind in pool}
    for kind in itertools.cycle(sorted(pool)):
        batch = []
        while len(batch) < batch_size:
            if not orders[kind]:
                orders[kind] = list(pool[kind])
                rng.shuffle(orders[kind])
            batch.append(orders[kind].pop())
        yield batch


def encode_batch(tokenizer: PreTrainedTokenizerFast, problems: Sequence[Problem]) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels``, each ``[batch, length]``.

    ``labels`` holds the completion's tokens (``worked_solution`` then ``<eos>``); prompt and
    padding positions are -100, so the loss is on the completion only.
    """
    rows, label_rows = [], []
    for problem in problems:
        prompt = tokenizer.encode(render_prompt(tokenizer, problem.question), add_special_tokens=False)
        completion = tokenizer.encode(worked_solution(problem), add_special_tokens=False)
        completion.append(tokenizer.eos_token_id)
        rows.append(prompt + completion)
        label_rows.append([-100] * len(prompt) + completion)
    length = max(len(row) for row in rows)
    pad = tokenizer.pad_token_id
    return {
        "input_ids": torch.tensor([row + [pad] * (length - len(row)) for row in rows]),
        "attention_mask": torch.tensor([[1] * len(row) + [0] * (length - len(row)) for row in rows]),
        "labels": torch.tensor([row + [-100] * (length - len(row)) for row in label_rows]),
    }


# ---------------------------------------------------------------------------------------------
# Model, validation, pre-training


def build_model(tokenizer: PreTrainedTokenizerFast, seed: int = 0) -> LlamaForCausalLM:
    """A float32 Llama of ``ARCHITECTURE`` with weights drawn from ``seed``."""
    model = seeded_llama({**ARCHITECTURE, "vocab_size": len(tokenizer)}, tokenizer, seed)
    model.generation_config.bos_token_id = tokenizer.eos_token_id
    return model


def greedy_completions(
    model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, problems: Sequence[Problem], bf16: bool = True
) -> list[str]:
    """The greedy completion of each problem, generated and decoded as ``egsw eval`` does."""
    from egsw.tasks.evaluation import generate_completions, precision_context
    from egsw.tasks.procedural import DEFAULT_EVAL_BATCH_SIZE, DEFAULT_MAX_NEW_TOKENS

    prompts = [render_prompt(tokenizer, problem.question) for problem in problems]
    with precision_context(model, bf16=bf16):
        completions = generate_completions(
            model, tokenizer, prompts, max_new_tokens=DEFAULT_MAX_NEW_TOKENS, batch_size=DEFAULT_EVAL_BATCH_SIZE
        )
    return [group[0].text for group in completions]


def is_correct(completion: str, problem: Problem) -> bool:
    """Whether the last ``\\boxed{}`` of ``completion`` holds exactly the answer."""
    from egsw.tasks.rewards import last_boxed

    return last_boxed(completion) == problem.answer


def lr_factor(step: int, settings: PretrainSettings) -> float:
    """Learning-rate multiplier after ``step`` updates: linear warmup, then cosine down to ``min_lr_ratio``."""
    if step < settings.warmup_steps:
        return (step + 1) / settings.warmup_steps
    progress = min(1.0, (step - settings.warmup_steps) / max(1, settings.max_steps - settings.warmup_steps))
    return settings.min_lr_ratio + (1 - settings.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


@dataclass(frozen=True)
class Check:
    """One validation check: greedy ``accuracy`` after ``step`` updates, whose last loss was ``loss``."""

    step: int
    loss: float
    accuracy: float

    def line(self, seconds: float) -> str:
        """The progress line printed for this check."""
        return (
            f"tiny-arith: step {self.step}, loss {self.loss:.3f}, validation accuracy {self.accuracy:.2f}, "
            f"{seconds:.0f} s"
        )


@dataclass(frozen=True)
class PretrainOutcome:
    """What ``pretrain`` did: its validation checks (the last is the saved model's) and seconds."""

    checks: tuple[Check, ...]
    seconds: float

    @property
    def final(self) -> Check:
        """The last check: the model as saved."""
        return self.checks[-1]

    def summary(self) -> str:
        """One line: steps, last loss, validation accuracy, seconds."""
        final = self.final
        return (
            f"tiny-arith: {final.step} steps, loss {final.loss:.3f}, validation accuracy {final.accuracy:.2f}, "
            f"{self.seconds:.0f} s"
        )


def train_step(
    model: LlamaForCausalLM,
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    batch: dict[str, torch.Tensor],
    bf16: bool,
) -> float:
    """One AdamW update on ``encode_batch``'s tensors (``[batch, length]`` each); returns the loss."""
    model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = model(**batch).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    schedule.step()
    optimizer.zero_grad(set_to_none=True)
    return float(loss.detach())


def pretrain(
    model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, settings: PretrainSettings, log: bool = True
) -> PretrainOutcome:
    """Train ``model`` in place until validation accuracy reaches ``settings.target`` or ``max_steps``.

    Accuracy is checked every ``eval_every`` steps and at ``max_steps``; ``log`` prints a line per
    check to stderr.
    """
    started = time.monotonic()
    validation = validation_problems(settings)
    exclude = {problem.question for problem in validation}
    pool = problem_pool(settings.kinds, settings.levels, PRETRAIN_SEED, POOL_PER_KIND, exclude)
    stream = batches(pool, settings.batch_size, settings.seed)
    torch.manual_seed(settings.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, settings))
    checks: list[Check] = []
    for step in range(1, settings.max_steps + 1):
        loss = train_step(model, optimizer, schedule, encode_batch(tokenizer, next(stream)), settings.bf16)
        if step % settings.eval_every and step < settings.max_steps:
            continue
        completions = greedy_completions(model, tokenizer, validation, bf16=settings.bf16)
        checks.append(Check(step, loss, sum(map(is_correct, completions, validation)) / len(validation)))
        if log:
            print(checks[-1].line(time.monotonic() - started), file=sys.stderr, flush=True)
        if checks[-1].accuracy >= settings.target:
            break
    model.eval()
    return PretrainOutcome(tuple(checks), time.monotonic() - started)


def save_tiny_arith(folder: str | Path, settings: PretrainSettings | None = None, log: bool = True) -> PretrainOutcome:
    """Build the tokenizer and model, pre-train (``pretrain``), and save both into ``folder``.

    Runs on one CPU thread (``BUILD_THREADS``; the caller's setting is restored). ``log`` prints a
    line per validation check and the summary to stderr. Writes no completeness marker: that is
    the caller's (``egsw.models.build_tiny_arith``).
    """
    settings = settings or PretrainSettings()
    threads = torch.get_num_threads()
    torch.set_num_threads(BUILD_THREADS)
    try:
        tokenizer = build_tokenizer()
        model = build_model(tokenizer, seed=settings.seed)
        outcome = pretrain(model, tokenizer, settings, log=log)
    finally:
        torch.set_num_threads(threads)
    folder = Path(folder)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    if log:
        print(outcome.summary(), file=sys.stderr, flush=True)
    return outcome


def describe(settings: PretrainSettings, outcome: PretrainOutcome) -> str:
    """What a built folder's marker records: the outcome, then the settings and architecture."""
    return f"{outcome.summary()}\nsettings: {asdict(settings)}\narchitecture: {ARCHITECTURE}\n"
