"""Tasks: procedural problems for training and held-out evaluation, and named evaluation sets."""

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

__all__ = [
    "LEVELS",
    "PRESETS",
    "PROBLEM_KINDS",
    "PROCEDURAL",
    "SPLITS",
    "CatalogError",
    "ColumnMapping",
    "EvalSet",
    "Example",
    "Messages",
    "Preset",
    "Problem",
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
]
