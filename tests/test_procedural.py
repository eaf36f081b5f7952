"""Procedural problems: deterministic from a seed, correct answers, disjoint train and held-out splits."""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from egsw.tasks.procedural import (
    DEFAULT_HELDOUT_SEED,
    DEFAULT_HELDOUT_SIZE,
    DEFAULT_KINDS,
    DEFAULT_LEVELS,
    PROBLEM_KINDS,
    generate_problems,
    problem_prompt,
    procedural_examples,
    split_of,
)

ARITHMETIC = re.compile(r"^What is (\d+) ([-+*]) (\d+)(?: ([-+]) (\d+))?\?$")


def direct_answer(question: str) -> int:
    """The answer computed from the question text itself, independent of the generator."""
    match = ARITHMETIC.match(question)
    if match:
        a, op, b, op2, c = match.groups()
        value = {"+": int(a) + int(b), "-": int(a) - int(b), "*": int(a) * int(b)}[op]
        return value + (int(c) if op2 == "+" else -int(c)) if op2 else value
    numbers = [int(n) for n in re.findall(r"\d+", question)]
    return numbers[0] + numbers[1] - (numbers[2] if "gives away" in question else 0)


@pytest.mark.parametrize("kind", sorted(PROBLEM_KINDS))
@pytest.mark.parametrize("level", [1, 2, 3])
def test_answers_are_right(kind: str, level: int) -> None:
    for problem in generate_problems(5, "train", seed=3, kinds=[kind], levels=[level]):
        assert int(problem.answer) == direct_answer(problem.question), problem
        assert problem.kind == kind and problem.level == level


def test_same_seed_same_problems_and_other_seed_others() -> None:
    first = generate_problems(50, "train", seed=11)
    assert first == generate_problems(50, "train", seed=11)
    assert first != generate_problems(50, "train", seed=12)
    assert len({p.question for p in first}) == 50


@settings(max_examples=25, deadline=None)
@given(
    train_seed=st.integers(0, 10_000),
    heldout_seed=st.integers(0, 10_000),
    kinds=st.lists(st.sampled_from(sorted(PROBLEM_KINDS)), min_size=1, max_size=5, unique=True),
    levels=st.lists(st.sampled_from([1, 2, 3]), min_size=1, max_size=3, unique=True),
)
def test_splits_never_share_a_problem(train_seed: int, heldout_seed: int, kinds: list[str], levels: list[int]) -> None:
    train = {p.question for p in itertools.islice(_iter(train_seed, "train", kinds, levels), 300)}
    heldout = {p.question for p in itertools.islice(_iter(heldout_seed, "heldout", kinds, levels), 300)}
    assert train and heldout
    assert not train & heldout
    assert all(split_of(q) == "train" for q in train) and all(split_of(q) == "heldout" for q in heldout)


def _iter(seed: int, split: str, kinds: list[str], levels: list[int]):  # noqa: ANN202
    from egsw.tasks.procedural import iter_problems

    return iter_problems(split, seed, kinds, levels)


def test_exhausted_space_is_refused_with_the_count() -> None:
    with pytest.raises(ValueError, match=r"only \d+ distinct heldout problems exist for kinds \['add'\]"):
        generate_problems(500, "heldout", seed=0, kinds=["add"], levels=[1])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kinds": ["division"]}, "unknown problem kind"),
        ({"levels": [7]}, "unknown level"),
        ({"split": "test"}, "unknown split"),
    ],
)
def test_bad_options_are_refused(kwargs: dict, message: str) -> None:
    options = {"n": 3, "split": "train", "seed": 0} | kwargs
    with pytest.raises(ValueError, match=message):
        generate_problems(**options)


def test_levels_bound_the_operands() -> None:
    for level, bound in [(1, 9), (2, 99), (3, 999)]:
        for problem in generate_problems(40, "train", seed=1, kinds=["add"], levels=[level]):
            assert max(int(n) for n in re.findall(r"\d+", problem.question)) <= bound


def test_default_heldout_set_exists_and_prompts_ask_for_a_box() -> None:
    examples = procedural_examples(DEFAULT_HELDOUT_SIZE, "heldout", DEFAULT_HELDOUT_SEED, DEFAULT_KINDS, DEFAULT_LEVELS)
    assert len(examples) == DEFAULT_HELDOUT_SIZE
    assert len({e.id for e in examples}) == DEFAULT_HELDOUT_SIZE
    last = examples[0].prompt[-1]
    assert last["role"] == "user" and "\\boxed{}" in last["content"]
    assert problem_prompt("What is 1 + 1?", worked_example=False) == [
        {"role": "user", "content": "What is 1 + 1? Put the final answer in \\boxed{}."}
    ]
