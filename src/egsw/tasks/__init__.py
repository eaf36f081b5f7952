"""Tasks: procedural problems for training and held-out evaluation, and named evaluation sets."""

from egsw.tasks.examples import Example, Messages
from egsw.tasks.procedural import (
    LEVELS,
    PROBLEM_KINDS,
    SPLITS,
    Problem,
    generate_problems,
    problem_prompt,
    procedural_examples,
    split_of,
)

__all__ = [
    "LEVELS",
    "PROBLEM_KINDS",
    "SPLITS",
    "Example",
    "Messages",
    "Problem",
    "generate_problems",
    "problem_prompt",
    "procedural_examples",
    "split_of",
]
