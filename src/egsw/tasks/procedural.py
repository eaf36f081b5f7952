"""Procedurally generated reasoning problems with verifiable integer answers.

Problems come from a seed and a list of kinds and levels. Which split a problem belongs to is a
function of its text alone (a hash), so the train and held-out splits can never share a problem,
whatever seeds, sizes or levels are asked for.

Kinds (``PROBLEM_KINDS``):
- ``add``, ``sub``, ``mul``: two operands, ``What is a + b?``;
- ``chain``: several steps, ``What is a + b - c?``;
- ``word``: a short word problem with one or two steps.

Levels set the operands' size: 1 = one digit, 2 = up to two digits, 3 = up to three digits.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass

from egsw.tasks.examples import Example, Messages

SPLITS = ("train", "heldout")
LEVELS = (1, 2, 3)
# One problem text in HELDOUT_SHARE ends up held out.
HELDOUT_SHARE = 5
_MAX_OPERAND = {1: 9, 2: 99, 3: 999}
# The default task, shared by `egsw train` (training and before/after evaluation) and `egsw eval`
# (the "procedural" set), so both measure the same held-out problems.
DEFAULT_KINDS: tuple[str, ...] = ("chain", "word")
DEFAULT_LEVELS: tuple[int, ...] = (1,)
DEFAULT_HELDOUT_SEED = 0
DEFAULT_HELDOUT_SIZE = 200
DEFAULT_MAX_NEW_TOKENS = 48
# Batch composition can flip a rare greedy token, so train and eval batch alike by default.
DEFAULT_EVAL_BATCH_SIZE = 50
_NAMES = ("Tom", "Ana", "Lena", "Omar", "Mia", "Ravi", "Sara", "Ben", "Yuki", "Leo")
_ITEMS = ("apples", "marbles", "stickers", "books", "coins", "pencils", "cards", "shells")


@dataclass(frozen=True)
class Problem:
    """One problem: ``question`` in plain text, ``answer`` as the canonical integer string."""

    id: str
    question: str
    answer: str
    kind: str
    level: int

    def to_dict(self) -> dict[str, str | int]:
        return asdict(self)


def split_of(question: str) -> str:
    """The split a question text belongs to; fixed by the text, so splits never overlap."""
    digest = int.from_bytes(hashlib.sha256(question.encode()).digest()[:8], "big")
    return "heldout" if digest % HELDOUT_SHARE == 0 else "train"


def _operand(rng: random.Random, level: int, low: int = 1) -> int:
    return rng.randint(low, _MAX_OPERAND[level])


def _add(rng: random.Random, level: int) -> tuple[str, int]:
    a, b = _operand(rng, level), _operand(rng, level)
    return f"What is {a} + {b}?", a + b


def _sub(rng: random.Random, level: int) -> tuple[str, int]:
    a, b = sorted((_operand(rng, level), _operand(rng, level)), reverse=True)
    return f"What is {a} - {b}?", a - b


def _mul(rng: random.Random, level: int) -> tuple[str, int]:
    # One factor stays a single digit until level 3 so products remain mental arithmetic.
    a, b = _operand(rng, level, low=2), rng.randint(2, 9 if level < 3 else 19)
    return f"What is {a} * {b}?", a * b


def _chain(rng: random.Random, level: int) -> tuple[str, int]:
    a, b = _operand(rng, level), _operand(rng, level)
    c = rng.randint(1, a + b)
    return f"What is {a} + {b} - {c}?", a + b - c


def _word(rng: random.Random, level: int) -> tuple[str, int]:
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    a, b = _operand(rng, level), _operand(rng, level)
    if rng.random() < 0.5:
        return f"{name} has {a} {item} and gets {b} more. How many {item} does {name} have now?", a + b
    c = rng.randint(1, a + b)
    return (
        f"{name} has {a} {item}, gets {b} more, then gives away {c}. How many {item} does {name} have now?",
        a + b - c,
    )


PROBLEM_KINDS: dict[str, Callable[[random.Random, int], tuple[str, int]]] = {
    "add": _add,
    "sub": _sub,
    "mul": _mul,
    "chain": _chain,
    "word": _word,
}


def check_task_options(kinds: Sequence[str], levels: Sequence[int], split: str) -> None:
    """Refuse unknown kinds, levels or splits with a one-line error naming the choices."""
    unknown = [kind for kind in kinds if kind not in PROBLEM_KINDS]
    if unknown or not kinds:
        raise ValueError(f"unknown problem kind(s) {unknown or kinds}; choose from {', '.join(PROBLEM_KINDS)}")
    bad_levels = [level for level in levels if level not in LEVELS]
    if bad_levels or not levels:
        raise ValueError(f"unknown level(s) {bad_levels or list(levels)}; choose from {', '.join(map(str, LEVELS))}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")


def iter_problems(
    split: str, seed: int, kinds: Sequence[str] = tuple(PROBLEM_KINDS), levels: Sequence[int] = (1, 2)
) -> Iterator[Problem]:
    """Distinct problems of ``split``, drawn from ``seed``; kinds and levels cycle in turn."""
    check_task_options(kinds, levels, split)
    rng = random.Random(f"egsw-procedural-{seed}")
    seen: set[str] = set()
    misses = 0
    index = 0
    while misses < 10_000:
        kind, level = kinds[index % len(kinds)], levels[(index // len(kinds)) % len(levels)]
        index += 1
        question, answer = PROBLEM_KINDS[kind](rng, level)
        if question in seen or split_of(question) != split:
            misses += 1
            continue
        misses = 0
        seen.add(question)
        digest = hashlib.sha256(question.encode()).hexdigest()[:12]
        yield Problem(id=f"{kind}-L{level}-{digest}", question=question, answer=str(answer), kind=kind, level=level)


def generate_problems(
    n: int, split: str, seed: int = 0, kinds: Sequence[str] = tuple(PROBLEM_KINDS), levels: Sequence[int] = (1, 2)
) -> list[Problem]:
    """``n`` distinct problems of ``split``; raises when the kinds and levels hold fewer."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    problems = []
    for problem in iter_problems(split, seed, kinds, levels):
        if len(problems) == n:
            break
        problems.append(problem)
    if len(problems) < n:
        raise ValueError(
            f"only {len(problems)} distinct {split} problems exist for kinds {list(kinds)} at levels {list(levels)}; "
            f"ask for fewer or add kinds/levels"
        )
    return problems


# A worked example in the conversation shows the expected form: steps, then the boxed answer.
# It is a two-step problem on purpose: with a one-step example the small instruct model drops the
# third operand of "a + b - c" (3% right, greedy); with this one it computes both steps (53%).
WORKED_EXAMPLE: Messages = [
    {"role": "user", "content": "What is 12 + 7 - 5? Put the final answer in \\boxed{}."},
    {"role": "assistant", "content": "12 + 7 = 19. 19 - 5 = 14. The answer is \\boxed{14}."},
]
INSTRUCTION = "Put the final answer in \\boxed{}."


def problem_prompt(question: str, worked_example: bool = True) -> Messages:
    """The chat messages that pose ``question``: optionally one worked example, then the question."""
    prefix = list(WORKED_EXAMPLE) if worked_example else []
    return prefix + [{"role": "user", "content": f"{question} {INSTRUCTION}"}]


def procedural_examples(
    n: int,
    split: str,
    seed: int = 0,
    kinds: Sequence[str] = tuple(PROBLEM_KINDS),
    levels: Sequence[int] = (1, 2),
    worked_example: bool = True,
) -> list[Example]:
    """``n`` procedural problems of ``split`` as chat examples (see ``generate_problems``)."""
    return [
        Example(
            id=problem.id,
            prompt=problem_prompt(problem.question, worked_example),
            answer=problem.answer,
            kind="math",
            meta={"question": problem.question, "problem_kind": problem.kind, "level": problem.level},
        )
        for problem in generate_problems(n, split, seed, kinds, levels)
    ]
