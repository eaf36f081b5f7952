"""One training run end to end: data, evaluation before and after, training, outputs on disk.

``run_training`` is what ``egsw train`` does once its options are parsed and validated. The
output folder it fills::

    config.yaml          every resolved option of the run
    metrics.jsonl        one line per logged step (reward, completion length, entropy, egsw/*)
    tensorboard/         the same metrics for TensorBoard
    checkpoint-<step>/   the last checkpoint (also written on Ctrl-C)
    model/               the final model (safetensors) and tokenizer
    eval.json            held-out accuracy before and after, with 95% intervals, and lengths
    plots/               reward.png, completion_length.png
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from egsw.callbacks import METRICS_FILE, MetricsFileCallback, RewardProgressCallback
from egsw.config import EGSWConfig
from egsw.evaluate import EvalResult, evaluate_examples, precision_context
from egsw.models import TRAIN_OUTPUT_MODEL, resolve_model
from egsw.recipes import TrainScriptArguments
from egsw.report import plot_training_curves
from egsw.rewards import REWARD_FUNCTIONS
from egsw.stats import paired_difference
from egsw.tasks.examples import Example
from egsw.tasks.procedural import procedural_examples

# Entries whose presence means a folder already holds a run.
RUN_MARKERS = ("config.yaml", METRICS_FILE, "eval.json", TRAIN_OUTPUT_MODEL, "tensorboard", "plots")
EVAL_FILE = "eval.json"
# Training problems drawn from this seed offset, so that seed 0 of training and of the held-out
# draw are different streams (the splits are disjoint anyway: see egsw.tasks.procedural).
TRAIN_PROBLEM_SEED_OFFSET = 1_000


@dataclass
class TrainOutcome:
    """What a finished (or interrupted) run produced."""

    output_dir: Path
    interrupted: bool
    seconds: float
    before: EvalResult | None
    after: EvalResult | None


def existing_run_entries(output_dir: Path) -> list[str]:
    """The run files already in ``output_dir`` (empty when it is new or holds none)."""
    if not output_dir.is_dir():
        return []
    found = [name for name in RUN_MARKERS if (output_dir / name).exists()]
    found += sorted(path.name for path in output_dir.glob("checkpoint-*"))
    return found


def prepare_output_dir(output_dir: Path, overwrite: bool) -> None:
    """Create ``output_dir`` (checking it is writable), refusing to mix with an earlier run.

    Raises ValueError with the fix when the folder holds a run and ``overwrite`` is False, or when
    it cannot be written; with ``overwrite`` only the run's own entries are removed.
    """
    entries = existing_run_entries(output_dir)
    if entries and not overwrite:
        raise ValueError(
            f"output folder {output_dir} already holds a run ({', '.join(entries[:3])}); "
            f"pass --overwrite to replace it or choose another --output_dir"
        )
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        probe = output_dir / ".egsw-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise ValueError(
            f"output folder {output_dir} is not writable ({error.strerror or error}); choose another --output_dir"
        ) from error
    for name in entries:
        path = output_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()


def write_resolved_config(path: Path, script_args: TrainScriptArguments, training_args: EGSWConfig) -> None:
    """Every option of the run in one YAML file, loadable again with ``--config``."""
    values = dataclasses.asdict(script_args)
    values.update({k: v for k, v in training_args.to_dict().items() if not k.startswith("_")})
    path.write_text(yaml.safe_dump(values, sort_keys=True))


def task_examples(script_args: TrainScriptArguments, training_args: EGSWConfig) -> tuple[list[Example], list[Example]]:
    """Training problems (enough for every step) and the held-out problems, never overlapping."""
    prompts_per_step = (
        training_args.per_device_train_batch_size
        * training_args.gradient_accumulation_steps
        * max(training_args.world_size, 1)
        // training_args.num_generations
    )
    needed = max(training_args.max_steps, 1) * prompts_per_step * max(training_args.num_iterations, 1) + 64
    kinds, levels = script_args.task_kinds, script_args.task_levels
    train = procedural_examples(needed, "train", TRAIN_PROBLEM_SEED_OFFSET + training_args.seed, kinds, levels)
    heldout = procedural_examples(script_args.heldout_size, "heldout", script_args.heldout_seed, kinds, levels)
    return train, heldout


def eval_record(before: EvalResult | None, after: EvalResult | None, interrupted: bool) -> dict[str, Any]:
    """The content of ``eval.json``: both evaluations and, when both exist, their paired difference."""
    record: dict[str, Any] = {
        "interrupted": interrupted,
        "before": before.summary() if before else None,
        "after": after.summary() if after else None,
    }
    for result in (record["before"], record["after"]):
        if result:
            result.pop("per_problem_correct", None)
    if before and after:
        record["difference"] = paired_difference(before.per_problem_correct, after.per_problem_correct)
    return record


def run_training(script_args: TrainScriptArguments, training_args: EGSWConfig, model_name: str) -> TrainOutcome:
    """Train ``model_name`` as configured and fill the output folder (see the module docstring)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    from egsw.trainer import EGSWTrainer

    started = time.monotonic()
    output_dir = Path(training_args.output_dir)
    write_resolved_config(output_dir / "config.yaml", script_args, training_args)
    os.environ.setdefault("TENSORBOARD_LOGGING_DIR", str(output_dir / "tensorboard"))

    resolved = resolve_model(model_name)
    tokenizer = AutoTokenizer.from_pretrained(resolved.path, padding_side="left")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(resolved.path, dtype="float32")
    train_examples, heldout = task_examples(script_args, training_args)

    def evaluate(label: str) -> EvalResult:
        # Generation runs at the training precision: bf16 autocast when training uses it.
        with precision_context(model, bf16=training_args.bf16):
            return evaluate_examples(
                model, tokenizer, heldout, name=f"held-out ({label})", max_new_tokens=script_args.eval_max_new_tokens,
                batch_size=script_args.eval_batch_size, progress=True,
            )  # fmt: skip

    before = evaluate("before") if script_args.eval_before else None
    _write_json(output_dir / EVAL_FILE, eval_record(before, None, interrupted=False))

    from datasets import Dataset

    trainer = EGSWTrainer(
        model=model,
        args=training_args,
        reward_funcs=[REWARD_FUNCTIONS[name] for name in script_args.reward_funcs],
        train_dataset=Dataset.from_list([example.to_row() for example in train_examples]),
        processing_class=tokenizer,
    )
    for callback in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(callback)
    progress = RewardProgressCallback()
    trainer.add_callback(MetricsFileCallback(output_dir / METRICS_FILE))
    trainer.add_callback(progress)

    interrupted = False
    try:
        trainer.train()
    except KeyboardInterrupt:
        interrupted = True
        progress.close()
        # The last finished step's weights, optimiser and random state, like a scheduled checkpoint.
        trainer._save_checkpoint(trainer.model, trial=None)
    after = None
    if not interrupted:
        trainer.save_model(str(output_dir / TRAIN_OUTPUT_MODEL))
        if script_args.eval_after:
            after = evaluate("after")
    _write_json(output_dir / EVAL_FILE, eval_record(before, after, interrupted))
    plot_training_curves(output_dir / METRICS_FILE, output_dir / "plots")
    return TrainOutcome(output_dir, interrupted, time.monotonic() - started, before, after)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(data, indent=2) + "\n")
    temporary.replace(path)
