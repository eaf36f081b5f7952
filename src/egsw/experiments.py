"""One training run end to end: data, evaluation before and after, training, outputs on disk.

``run_training`` is what ``egsw train`` does once its options are parsed and validated. The
output folder it fills::

    config.yaml          every resolved option of the run, loadable again with --config
    metrics.jsonl        one line per logged step (reward, completion length, entropy, egsw/*)
    tensorboard/         the same metrics for TensorBoard
    checkpoint-<step>/   the last checkpoint(s) (also written on Ctrl-C); complete once it holds .egsw-complete
    model/               the final model (safetensors) and tokenizer; with LoRA the merged model
    adapter/             with LoRA (--use_peft): the adapter alone
    eval.json            held-out accuracy before and after, with 95% intervals, and lengths
    plots/               reward.png, completion_length.png

Tasks: ``procedural`` (the default; held-out problems from the same generator, never shared with
training) and ``math-lighteval`` (MATH's training split, the paper's setting; the held-out problems
are the first ``heldout_size`` of its test split, which overlaps MATH-500: evaluate with
``egsw eval --sets math500,aime24,gpqa-diamond`` instead, as the GPU recipes do).

Resume (``--resume``): a checkpoint is complete when ``.egsw-complete`` is in it. The marker is
written after every process has finished writing its part of the checkpoint (a barrier), and
before any older checkpoint is deleted, so a process killed at any moment leaves at least one
complete checkpoint behind, and a half-written one is never taken for the last good one.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from egsw.callbacks import METRICS_FILE, MetricsFileCallback, RewardProgressCallback
from egsw.checkpoints import (
    CHECKPOINT_PREFIX,
    CheckpointCompletionCallback,
    RandomStateSnapshotCallback,
    checkpoint_step,
    finish_checkpoint,
    is_complete_checkpoint,
    last_complete_checkpoint,
    list_checkpoints,
)
from egsw.config import EGSWConfig
from egsw.evaluate import EvalResult, evaluate_examples, precision_context
from egsw.models import TRAIN_OUTPUT_MODEL, resolve_model
from egsw.recipes import TrainScriptArguments
from egsw.report import plot_training_curves
from egsw.rewards import REWARD_FUNCTIONS
from egsw.stats import paired_difference
from egsw.tasks.examples import Example
from egsw.tasks.procedural import procedural_examples

CONFIG_FILE = "config.yaml"
EVAL_FILE = "eval.json"
# The before-training evaluation with its per-problem results, so that a resumed run can report the
# paired before/after difference without evaluating again.
EVAL_BEFORE_FILE = ".eval-before.json"
ADAPTER_DIR = "adapter"
# Entries whose presence means a folder already holds a run.
RUN_MARKERS = (
    CONFIG_FILE, METRICS_FILE, EVAL_FILE, EVAL_BEFORE_FILE, TRAIN_OUTPUT_MODEL, ADAPTER_DIR, "tensorboard", "plots",
)  # fmt: skip
# Options that say what one invocation does, not what the run is: left out of config.yaml.
PER_INVOCATION_OPTIONS = ("resume", "dry_run", "overwrite")
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


@dataclass
class TrainOutcome:
    """What a finished (or interrupted) run produced."""

    output_dir: Path
    interrupted: bool
    seconds: float
    before: EvalResult | None
    after: EvalResult | None


@dataclass(frozen=True)
class ResumePoint:
    """Where ``--resume`` continues: the last complete checkpoint and the incomplete ones after it."""

    checkpoint: Path
    step: int
    incomplete: tuple[Path, ...]


# ---------------------------------------------------------------------------------------------
# The output folder


def existing_run_entries(output_dir: Path) -> list[str]:
    """The run files already in ``output_dir`` (empty when it is new or holds none)."""
    if not output_dir.is_dir():
        return []
    found = [name for name in RUN_MARKERS if (output_dir / name).exists()]
    found += sorted(path.name for path in output_dir.glob(f"{CHECKPOINT_PREFIX}*"))
    return found


def check_output_dir(output_dir: Path, overwrite: bool, resume: bool = False) -> ResumePoint | None:
    """Read-only checks of ``output_dir``: what ``prepare_output_dir`` would refuse, raised as ValueError.

    With ``resume`` the folder must hold a run with a complete checkpoint and no final model; the
    point to continue from is returned.
    """
    if resume:
        if overwrite:
            raise ValueError("--resume continues the run in --output_dir and --overwrite replaces it; pass one")
        return find_resume_point(output_dir)
    entries = existing_run_entries(output_dir)
    if entries and not overwrite:
        raise ValueError(
            f"output folder {output_dir} already holds a run ({', '.join(entries[:3])}); "
            f"pass --resume to continue it, --overwrite to replace it, or choose another --output_dir"
        )
    probe_dir = output_dir
    while not probe_dir.exists() and probe_dir != probe_dir.parent:
        probe_dir = probe_dir.parent
    if not probe_dir.is_dir() or not os.access(probe_dir, os.W_OK | os.X_OK):
        raise ValueError(f"output folder {output_dir} is not writable; choose another --output_dir")
    return None


def prepare_output_dir(output_dir: Path, overwrite: bool, resume: bool = False) -> ResumePoint | None:
    """Create ``output_dir`` (checking it is writable), refusing to mix with an earlier run.

    Raises ValueError with the fix when the folder holds a run and neither ``overwrite`` nor
    ``resume`` is set, or when it cannot be written; with ``overwrite`` only the run's own entries
    are removed. With ``resume`` nothing is removed here and the point to continue from is returned.
    """
    if resume:
        return check_output_dir(output_dir, overwrite, resume=True)
    entries = existing_run_entries(output_dir)
    if entries and not overwrite:
        check_output_dir(output_dir, overwrite)  # raises with the message
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
    return None


def resolved_options(
    script_args: TrainScriptArguments,
    training_args: EGSWConfig,
    model_args: Any | None = None,  # noqa: ANN401
) -> dict[str, Any]:
    """Every option of a run as plain values that ``--config`` accepts again.

    Left out: private fields, per-invocation flags (``PER_INVOCATION_OPTIONS``), redacted tokens,
    and ``generation_batch_size`` when GRPOConfig derived it from ``steps_per_generation`` (giving
    both is refused).
    """
    values: dict[str, Any] = {}
    if model_args is not None:
        values.update(dataclasses.asdict(model_args))
    values.update(dataclasses.asdict(script_args))
    values.update({k: v for k, v in training_args.to_dict().items() if not k.startswith("_")})
    for key in [*PER_INVOCATION_OPTIONS, *(k for k in values if k.endswith("_token"))]:
        values.pop(key, None)
    if values.get("steps_per_generation") is not None:
        values.pop("generation_batch_size", None)
    return values


def write_resolved_config(
    path: Path,
    script_args: TrainScriptArguments,
    training_args: EGSWConfig,
    model_args: Any | None = None,  # noqa: ANN401 - egsw.commands.train.ModelArguments
) -> None:
    """Every option of the run in one YAML file, loadable again with ``--config``."""
    path.write_text(yaml.safe_dump(resolved_options(script_args, training_args, model_args), sort_keys=True))


# ---------------------------------------------------------------------------------------------
# Tasks


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


def _load_eval_result(path: Path) -> EvalResult | None:
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    data["pass_at_k"] = {int(k): v for k, v in data.get("pass_at_k", {}).items()}
    fields = {f.name for f in dataclasses.fields(EvalResult)}
    return EvalResult(**{k: v for k, v in data.items() if k in fields})


# ---------------------------------------------------------------------------------------------
# Checkpoints and resume


def find_resume_point(output_dir: Path) -> ResumePoint:
    """The checkpoint ``--resume`` continues from; ValueError with the fix when there is none."""
    if not (output_dir / CONFIG_FILE).is_file():
        raise ValueError(
            f"--resume: {output_dir} holds no run ({CONFIG_FILE} is missing); pass the --output_dir of an earlier run"
        )
    if (output_dir / TRAIN_OUTPUT_MODEL).exists():
        raise ValueError(
            f"--resume: the run in {output_dir} has finished ({TRAIN_OUTPUT_MODEL}/ exists); nothing to continue"
        )
    checkpoints = list_checkpoints(output_dir)
    last = last_complete_checkpoint(output_dir)
    if last is None:
        seen = ", ".join(f"{path.name} (incomplete)" for _, path, _ in checkpoints) or "no checkpoint"
        raise ValueError(f"--resume: {output_dir} has no complete checkpoint ({seen}); start again with --overwrite")
    step = checkpoint_step(last)
    assert step is not None
    incomplete = tuple(path for s, path, ok in checkpoints if not ok and s > step)
    return ResumePoint(last, step, incomplete)


def truncate_metrics(path: Path, last_step: int) -> int:
    """Keep the lines of ``metrics.jsonl`` logged up to ``last_step``; returns how many were dropped.

    The lines after the checkpoint were logged by the run that stopped; the resumed run logs those
    steps again. A last line cut off mid-write is dropped too.
    """
    if not path.is_file():
        return 0
    kept, dropped = [], 0
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            dropped += 1
            continue
        if isinstance(record, dict) and record.get("step", 0) <= last_step:
            kept.append(line)
        else:
            dropped += 1
    temporary = path.with_suffix(".tmp")
    temporary.write_text("".join(line + "\n" for line in kept))
    temporary.replace(path)
    return dropped


# ---------------------------------------------------------------------------------------------
# The run


def load_policy(model_name: str, model_args: Any | None, training_args: EGSWConfig) -> tuple[Any, Any]:  # noqa: ANN401
    """The model to train and its tokenizer (left padding, a pad token), as ``model_args`` asks."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    resolved = resolve_model(model_name)
    revision = getattr(model_args, "model_revision", "main") if resolved.is_local is False else None
    tokenizer = AutoTokenizer.from_pretrained(
        resolved.path, padding_side="left", trust_remote_code=training_args.trust_remote_code,
        **({"revision": revision} if revision else {}),
    )  # fmt: skip
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    kwargs: dict[str, Any] = {"dtype": getattr(model_args, "dtype", None) or "float32"}
    if revision:
        kwargs["revision"] = revision
    if getattr(model_args, "attn_implementation", None):
        kwargs["attn_implementation"] = model_args.attn_implementation
    if training_args.trust_remote_code:
        kwargs["trust_remote_code"] = True
    model = AutoModelForCausalLM.from_pretrained(resolved.path, **kwargs)
    return model, tokenizer


def peft_config_of(model_args: Any | None) -> Any | None:  # noqa: ANN401
    """TRL's LoRA config from ``--use_peft`` and the ``--lora_*`` options, None without ``--use_peft``."""
    if model_args is None or not getattr(model_args, "use_peft", False):
        return None
    from trl import get_peft_config

    return get_peft_config(model_args)


def run_training(
    script_args: TrainScriptArguments,
    training_args: EGSWConfig,
    model_name: str,
    model_args: Any | None = None,  # noqa: ANN401 - egsw.commands.train.ModelArguments
    examples: tuple[list[Example], list[Example]] | None = None,
    resume_point: ResumePoint | None = None,
) -> TrainOutcome:
    """Train ``model_name`` as configured and fill the output folder (see the module docstring).

    ``examples`` are ``task_examples``' (loaded here when None). With ``resume_point`` the run
    continues from that checkpoint: ``metrics.jsonl`` is cut back to its step and appended to, the
    evaluation before training is not repeated, and incomplete checkpoints after it are removed.
    """
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    from egsw.trainer import EGSWTrainer

    started = time.monotonic()
    output_dir = Path(training_args.output_dir)
    metrics_path = output_dir / METRICS_FILE
    main_process = training_args.process_index == 0
    if main_process and resume_point is None:
        write_resolved_config(output_dir / CONFIG_FILE, script_args, training_args, model_args)
    if main_process and resume_point is not None:
        dropped = truncate_metrics(metrics_path, resume_point.step)
        for path in resume_point.incomplete:
            shutil.rmtree(path, ignore_errors=True)
        removed = len(resume_point.incomplete)
        print(
            f"egsw train: resuming from {resume_point.checkpoint} (step {resume_point.step}); "
            f"{dropped} metrics line(s) and {removed} incomplete checkpoint(s) after it removed",
            file=sys.stderr, flush=True,
        )  # fmt: skip
    os.environ.setdefault("TENSORBOARD_LOGGING_DIR", str(output_dir / "tensorboard"))

    model, tokenizer = load_policy(model_name, model_args, training_args)
    train_examples, heldout = examples if examples is not None else task_examples(script_args, training_args)

    def evaluate(label: str, policy: Any) -> EvalResult:  # noqa: ANN401
        # Generation runs at the training precision: bf16 autocast when training uses it.
        with precision_context(policy, bf16=training_args.bf16):
            return evaluate_examples(
                policy, tokenizer, heldout, name=f"held-out ({label})", max_new_tokens=script_args.eval_max_new_tokens,
                batch_size=script_args.eval_batch_size, progress=True,
            )  # fmt: skip

    if resume_point is not None:
        before = _load_eval_result(output_dir / EVAL_BEFORE_FILE) if script_args.eval_before else None
    else:
        before = evaluate("before", model) if script_args.eval_before else None
        if main_process and before is not None:
            _write_json(output_dir / EVAL_BEFORE_FILE, before.summary())
        if main_process:
            _write_json(output_dir / EVAL_FILE, eval_record(before, None, interrupted=False))

    from datasets import Dataset

    # The Trainer's own rotation would delete the previous checkpoint before the new one is marked
    # complete; CheckpointCompletionCallback rotates after marking instead.
    keep = training_args.save_total_limit
    if not training_args.load_best_model_at_end:
        training_args.save_total_limit = None
    trainer = EGSWTrainer(
        model=model,
        args=training_args,
        reward_funcs=[REWARD_FUNCTIONS[name] for name in script_args.reward_funcs],
        train_dataset=Dataset.from_list([example.to_row() for example in train_examples]),
        processing_class=tokenizer,
        peft_config=peft_config_of(model_args),
    )
    for callback in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(callback)
    progress = RewardProgressCallback()
    snapshot = RandomStateSnapshotCallback()
    trainer.add_callback(MetricsFileCallback(metrics_path, append=resume_point is not None))
    trainer.add_callback(progress)
    trainer.add_callback(CheckpointCompletionCallback(keep))
    trainer.add_callback(snapshot)

    interrupted = False
    try:
        trainer.train(resume_from_checkpoint=str(resume_point.checkpoint) if resume_point else None)
    except KeyboardInterrupt:
        interrupted = True
        progress.close()
        # The last finished step's weights, optimiser and random state, like a scheduled checkpoint
        # (unless that step's checkpoint is already complete).
        done = Path(training_args.output_dir) / f"{CHECKPOINT_PREFIX}{trainer.state.global_step}"
        if not is_complete_checkpoint(done):
            snapshot.restore(trainer.state)
            trainer._save_checkpoint(trainer.model, trial=None)
            finish_checkpoint(trainer.args, trainer.state, keep)
    after = None
    if not interrupted:
        final = save_final_model(trainer, tokenizer, output_dir, peft=peft_config_of(model_args) is not None)
        if script_args.eval_after and final is not None:
            after = evaluate("after", final)
    if main_process:
        _write_json(output_dir / EVAL_FILE, eval_record(before, after, interrupted))
        plot_training_curves(metrics_path, output_dir / "plots")
    return TrainOutcome(output_dir, interrupted, time.monotonic() - started, before, after)


def save_final_model(trainer: Any, tokenizer: Any, output_dir: Path, peft: bool) -> Any | None:  # noqa: ANN401
    """Write ``model/`` (and with LoRA ``adapter/``); return the model to evaluate, None if not on this process.

    With LoRA the adapter is merged into the base weights for ``model/``, so that ``egsw eval`` and
    vLLM load it like any model. Under DeepSpeed ZeRO-3 or FSDP the parameters are sharded and the
    merge is left to the user (the adapter is saved; see the README's "Scale" section).
    """
    if not peft:
        trainer.save_model(str(output_dir / TRAIN_OUTPUT_MODEL))
        return trainer.model
    trainer.save_model(str(output_dir / ADAPTER_DIR))
    sharded = trainer.is_deepspeed_enabled or trainer.is_fsdp_enabled
    if sharded or not trainer.accelerator.is_main_process:
        return None
    merged = trainer.accelerator.unwrap_model(trainer.model).merge_and_unload()
    merged.save_pretrained(str(output_dir / TRAIN_OUTPUT_MODEL))
    tokenizer.save_pretrained(str(output_dir / TRAIN_OUTPUT_MODEL))
    return merged


def _write_json(path: Path, data: dict[str, Any]) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(data, indent=2) + "\n")
    temporary.replace(path)
