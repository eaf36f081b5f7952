"""The problems of one training run: procedural (the default) or MATH-lighteval (the paper's setting).

Training problems are drawn from a seed stream of their own, so that they never coincide with the
held-out problems (the procedural splits are disjoint by construction: egsw.tasks.procedural).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from egsw.tasks.examples import Example
from egsw.tasks.procedural import procedural_examples

if TYPE_CHECKING:
    from egsw.config import EGSWConfig
    from egsw.run.recipes import TrainScriptArguments

# Training problems drawn from this seed offset, so that seed 0 of training and of the held-out
# draw are different streams (the splits are disjoint anyway: see egsw.tasks.procedural).
TRAIN_PROBLEM_SEED_OFFSET = 1_000
# The system message of --task math-lighteval (open-r1's "simple RL" style: reasoning in <think>,
# then the answer; here boxed, which is what the accuracy and format rewards read).
MATH_SYSTEM_PROMPT = (
    "You are a helpful AI Assistant that provides well-reasoned and detailed responses. You first think about the "
    "reasoning process as an internal monologue and then provide the user with the answer. Respond in the following "
    "format: <think>\n...\n</think>\nthen the final answer, written as \\boxed{ANSWER}."
)
MATH_TASK = "math-lighteval"
# Problems in MATH-lighteval's training split (DigitalLearningGmbH/MATH-lighteval).
MATH_TRAIN_PROBLEMS = 7_500


def prompts_per_step(training_args: EGSWConfig, num_processes: int | None = None) -> int:
    """Prompts (groups) in one optimizer step."""
    processes = num_processes or max(training_args.world_size, 1)
    completions = training_args.per_device_train_batch_size * training_args.gradient_accumulation_steps * processes
    return completions // training_args.num_generations


def task_examples(script_args: TrainScriptArguments, training_args: EGSWConfig) -> tuple[list[Example], list[Example]]:
    """Training problems (enough for every step) and the held-out problems, never overlapping.

    ``math-lighteval``: all of MATH's training split; held out, the first ``heldout_size`` problems of
    its test split, read only when an evaluation before or after training is asked for. Raises
    ValueError (a ``CatalogError``) naming the file or the fix when the data cannot be read.
    """
    if script_args.task == MATH_TASK:
        from egsw.tasks.catalog import load_preset

        system_prompt = MATH_SYSTEM_PROMPT if script_args.system_prompt is None else script_args.system_prompt
        load = dict(data_dir=script_args.data_dir, system_prompt=system_prompt or None)
        train = load_preset(MATH_TASK, split="train", **load).examples
        heldout: list[Example] = []
        if script_args.eval_before or script_args.eval_after:
            heldout = load_preset(MATH_TASK, split="test", limit=script_args.heldout_size, **load).examples
        return train, heldout
    needed = max(training_args.max_steps, 1) * prompts_per_step(training_args) * max(training_args.num_iterations, 1)
    needed += 64
    kinds, levels = script_args.task_kinds, script_args.task_levels
    train = procedural_examples(needed, "train", TRAIN_PROBLEM_SEED_OFFSET + training_args.seed, kinds, levels)
    heldout = procedural_examples(script_args.heldout_size, "heldout", script_args.heldout_seed, kinds, levels)
    return train, heldout
