"""What ``egsw train`` trains when given no arguments, and the run options beside ``EGSWConfig``.

``DEFAULT_RECIPE`` is the CPU default: the bundled SmolLM2-135M-Instruct on the procedural
arithmetic task with GRPO+EGSW. ``configs/smollm2-cpu.yaml`` holds the same values as a file
(a test keeps the two equal); any value can be overridden from a YAML file (``--config``) or the
command line, as in TRL's scripts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from egsw.models import BUNDLED_SMOLLM2, TINY_ARITH
from egsw.tasks.procedural import (
    DEFAULT_EVAL_BATCH_SIZE,
    DEFAULT_HELDOUT_SEED,
    DEFAULT_HELDOUT_SIZE,
    DEFAULT_KINDS,
    DEFAULT_LEVELS,
    DEFAULT_MAX_NEW_TOKENS,
)

# procedural: generated arithmetic (the CPU default); math-lighteval: MATH's 7,500 training problems
# (DigitalLearningGmbH/MATH-lighteval, the paper's setting), from the Hub or from --data_dir.
TASKS = ("procedural", "math-lighteval")


# The list options of TrainScriptArguments: (name, type of an item, an example).
LIST_OPTIONS = (
    ("task_kinds", str, "[chain, word]"),
    ("task_levels", int, "[1, 2]"),
    ("reward_funcs", str, "[accuracy, format]"),
)


@dataclass
class TrainScriptArguments:
    """Options of ``egsw train`` that are not training hyper-parameters (those are ``EGSWConfig``'s)."""

    task: str = field(default="procedural", metadata={"help": "Training task.", "choices": list(TASKS)})
    task_kinds: list[str] = field(
        default_factory=lambda: list(DEFAULT_KINDS),
        metadata={"help": "Procedural problem kinds (add, sub, mul, chain, word)."},
    )
    task_levels: list[int] = field(
        default_factory=lambda: list(DEFAULT_LEVELS),
        metadata={"help": "Procedural difficulty levels: 1 one-digit, 2 two-digit, 3 three-digit operands."},
    )
    heldout_size: int = field(
        default=DEFAULT_HELDOUT_SIZE, metadata={"help": "Held-out problems evaluated before and after training."}
    )
    heldout_seed: int = field(default=DEFAULT_HELDOUT_SEED, metadata={"help": "Seed of the held-out problems."})
    eval_max_new_tokens: int = field(
        default=DEFAULT_MAX_NEW_TOKENS, metadata={"help": "Tokens generated per held-out answer (greedy)."}
    )
    eval_batch_size: int = field(
        default=DEFAULT_EVAL_BATCH_SIZE, metadata={"help": "Prompts generated at once when evaluating."}
    )
    eval_before: bool = field(default=True, metadata={"help": "Evaluate the held-out problems before training."})
    eval_after: bool = field(default=True, metadata={"help": "Evaluate the held-out problems after training."})
    reward_funcs: list[str] = field(
        default_factory=lambda: ["accuracy", "format"],
        metadata={"help": "Reward functions by name (accuracy, format, think_format); weights in --reward_weights."},
    )
    overwrite: bool = field(
        default=False, metadata={"help": "Replace a run already in --output_dir (by default it is refused)."}
    )
    data_dir: str | None = field(
        default=None,
        metadata={
            "help": "--task math-lighteval: a folder with an offline copy of the data set (DATA_DIR/math-lighteval/"
            "data/train-*.parquet, laid out as for `egsw eval --data-dir`); default: the Hugging Face Hub."
        },
    )
    system_prompt: str | None = field(
        default=None,
        metadata={
            "help": "--task math-lighteval: the system message before every problem (default: "
            "egsw.run.training.MATH_SYSTEM_PROMPT, reasoning inside <think></think>, the answer in \\boxed{})."
        },
    )
    num_processes: int | None = field(
        default=None,
        metadata={
            "help": "The number of training processes the recipe's batch is laid out for (accelerate's "
            "--num_processes x machines). --dry-run checks the batch for this many; a real run launched with another "
            "number says so. Default: the number launched (WORLD_SIZE), 1 without a launcher."
        },
    )
    dry_run: bool = field(
        default=False,
        metadata={
            "help": "Print the resolved options, the number of processes and the effective batch, check them, and "
            "stop: no model or data set is loaded, no folder written, no GPU touched."
        },
    )
    resume: str = field(
        default="false",
        metadata={
            "help": "Continue the run in --output_dir from its last complete checkpoint (weights, optimiser, random "
            "state, metrics.jsonl); without --config its config.yaml gives the options. 'auto': continue when the "
            "folder holds a resumable run, start a new one when it holds none (one command line for the first start "
            "and every requeue).",
            "nargs": "?",
            "const": "true",
        },
    )

    def __post_init__(self) -> None:
        self.resume = resume_mode(self.resume)
        # A config file's values reach here as YAML wrote them, not through the command line's types.
        for name, item_type, example in LIST_OPTIONS:
            value = getattr(self, name)
            if isinstance(value, item_type) and not isinstance(value, bool):
                setattr(self, name, [value])  # one value written without brackets
            elif not isinstance(value, list) or not all(
                isinstance(item, item_type) and not isinstance(item, bool) for item in value
            ):
                raise ValueError(f"{name} must be a list such as {example}, got {value!r}")
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}, got {self.task!r}")
        for name in ("heldout_size", "eval_max_new_tokens", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.reward_funcs:
            raise ValueError("reward_funcs must name at least one reward function (accuracy, format)")
        if self.num_processes is not None and self.num_processes < 1:
            raise ValueError(f"num_processes must be >= 1, got {self.num_processes}")
        if self.task == "procedural" and (self.data_dir is not None or self.system_prompt is not None):
            raise ValueError("data_dir and system_prompt apply to --task math-lighteval; remove them for procedural")


# The default CPU recipe. The values come from the tuning runs recorded in the README
# ("Default run"): they are what made held-out accuracy rise within 15 minutes on 2 cores.
DEFAULT_RECIPE: dict[str, Any] = {
    "model_name_or_path": BUNDLED_SMOLLM2,
    # Task: the procedural problems `egsw eval --sets procedural` also uses.
    "task_kinds": list(DEFAULT_KINDS),
    "task_levels": list(DEFAULT_LEVELS),
    # EGSW
    "egsw_mode": "step",
    "egsw_alpha": 0.1,
    "egsw_temperature": 1.0,
    # Rollouts: 4 prompts a step, 4 completions each.
    "per_device_train_batch_size": 16,
    "num_generations": 4,
    "max_completion_length": 40,
    # Sampling at 0.5, not 1.0: at 1.0 this 135M model's arithmetic falls apart and few
    # completions in a group are right; at 0.5 a group often holds right and wrong answers.
    "temperature": 0.5,
    # Optimisation (2e-5 made the format reward collapse for a few steps before recovering)
    "learning_rate": 1.0e-5,
    "lr_scheduler_type": "constant",
    "warmup_steps": 0,
    "max_steps": 25,
    "beta": 0.0,
    "reward_weights": [1.0, 0.1],
    # bf16 autocast (weights stay fp32): 1.7x faster than fp32 on this AVX-512-BF16 CPU. No
    # gradient checkpointing: it re-runs the forward pass, and memory is not short here.
    "bf16": True,
    "gradient_checkpointing": False,
    "use_cpu": True,
    "seed": 0,
    # Logging and checkpoints
    "logging_steps": 1,
    "save_strategy": "steps",
    "save_steps": 10,
    "save_total_limit": 1,
    "report_to": ["tensorboard"],
}


# The testbed recipe: `tiny-arith` (egsw.models.tiny_arith) is a 0.87M-parameter model pre-trained here.
# Probes (README, "Comparison"): lr >= 1e-4 made plain GRPO *lower* its held-out accuracy (31% ->
# 21.5% at 1e-4, 19% at 3e-4); 3e-5 with 8 prompts a step was safe (31% -> 38% in 300 steps, p~0.1).
# 80 steps keep 35 runs (7 methods x 5 seeds) within the hour on 2 cores; bf16 autocast is slower
# than fp32 for a model this small.
TINY_ARITH_RECIPE: dict[str, Any] = {
    **DEFAULT_RECIPE,
    "model_name_or_path": TINY_ARITH,
    "per_device_train_batch_size": 32,
    "temperature": 1.0,
    "learning_rate": 3.0e-5,
    "max_steps": 80,
    "bf16": False,
    "save_steps": 40,
}
# Recipes chosen by the model's name when no --config is given; every other model takes DEFAULT_RECIPE.
MODEL_RECIPES: dict[str, dict[str, Any]] = {BUNDLED_SMOLLM2: DEFAULT_RECIPE, TINY_ARITH: TINY_ARITH_RECIPE}
# The recipe files in configs/ (a test keeps each equal to its recipe).
RECIPE_FILES: dict[str, str] = {BUNDLED_SMOLLM2: "configs/smollm2-cpu.yaml", TINY_ARITH: "configs/tiny-arith-cpu.yaml"}


def recipe_for_model(model: str | None) -> dict[str, Any]:
    """The defaults of ``egsw train --model_name_or_path MODEL``: its recipe, else DEFAULT_RECIPE with that model."""
    if model in MODEL_RECIPES:
        return dict(MODEL_RECIPES[model])
    return {**DEFAULT_RECIPE, **({"model_name_or_path": model} if model else {})}


def recipe_yaml(model: str = BUNDLED_SMOLLM2) -> str:
    """The recipe of a built-in ``model`` as the YAML file in ``RECIPE_FILES`` holds it."""
    import yaml

    path = RECIPE_FILES[model]
    header = (
        f"# The CPU recipe of `egsw train --model_name_or_path {model}` (egsw.run.recipes; a test keeps them equal).\n"
        f"# Regenerate with: python -m egsw.run.recipes {model} > {path}\n"
        f"# Use: egsw train --config {path} [--any_option value ...]\n"
    )
    return header + yaml.safe_dump(MODEL_RECIPES[model], sort_keys=False)


if __name__ == "__main__":
    import sys

    print(recipe_yaml(*sys.argv[1:2]), end="")


def resume_mode(value: object) -> bool | str:
    """``--resume`` as True, False or "auto" (booleans spelled as HfArgumentParser reads them); ValueError otherwise."""
    from transformers.hf_argparser import string_to_bool

    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    try:
        return bool(string_to_bool(value))
    except Exception:  # noqa: BLE001 - argparse's ArgumentTypeError, or a non-string
        raise ValueError(f"--resume takes true, false or auto; got {value!r}") from None
