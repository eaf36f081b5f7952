"""Tasks: procedural problems, named and local evaluation sets, answer checking and rewards, evaluation.

``rewards`` holds TRL reward functions (``accuracy_reward``, ``format_reward``,
``think_format_reward``); ``evaluation`` generates and scores (imports torch: not re-exported here).
"""

from egsw.tasks.catalog import (
    PRESETS,
    PROCEDURAL,
    CatalogError,
    ColumnMapping,
    EvalSet,
    Preset,
    load_eval_set,
    load_file,
    load_preset,
    load_procedural,
    read_rows,
    set_names,
)
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
from egsw.tasks.rewards import REWARD_FUNCTIONS, accuracy_reward, format_reward, think_format_reward

__all__ = [
    "LEVELS",
    "PRESETS",
    "PROBLEM_KINDS",
    "PROCEDURAL",
    "REWARD_FUNCTIONS",
    "SPLITS",
    "CatalogError",
    "ColumnMapping",
    "EvalSet",
    "Example",
    "Messages",
    "Preset",
    "Problem",
    "accuracy_reward",
    "format_reward",
    "generate_problems",
    "load_eval_set",
    "load_file",
    "load_preset",
    "load_procedural",
    "problem_prompt",
    "procedural_examples",
    "read_rows",
    "set_names",
    "split_of",
    "think_format_reward",
]
