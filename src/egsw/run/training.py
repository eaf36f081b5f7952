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

from egsw.config import EGSWConfig
from egsw.models import TRAIN_OUTPUT_MODEL, model_load_errors, resolve_model
from egsw.run.callbacks import METRICS_FILE, MetricsFileCallback, RewardProgressCallback
from egsw.run.checkpoints import (
    CHECKPOINT_PREFIX,
    CheckpointCompletionCallback,
    RandomStateSnapshotCallback,
    finish_checkpoint,
    is_complete_checkpoint,
)
from egsw.run.plots import plot_training_curves
from egsw.run.recipes import TrainScriptArguments
from egsw.run.run_folder import (
    ADAPTER_DIR,
    CONFIG_FILE,
    EVAL_BEFORE_FILE,
    EVAL_FILE,
    PARTIAL_MODEL_DIR,
    ResumePoint,
    truncate_metrics,
    write_resolved_config,
)
from egsw.run.task_data import task_examples
from egsw.run.termination import StopOnSignalCallback, StopRequest
from egsw.stats import paired_difference
from egsw.tasks.evaluation import EvalResult, evaluate_examples, precision_context
from egsw.tasks.examples import Example
from egsw.tasks.rewards import REWARD_FUNCTIONS


@dataclass
class TrainOutcome:
    """What a finished (or interrupted) run produced."""

    output_dir: Path
    interrupted: bool
    seconds: float
    before: EvalResult | None
    after: EvalResult | None
    terminated: bool = False  # stopped by SIGTERM after finishing a step (interrupted too)


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
# The run


def load_policy(model_name: str, model_args: Any | None, training_args: EGSWConfig) -> tuple[Any, Any]:  # noqa: ANN401
    """The model to train and its tokenizer (left padding, a pad token), as ``model_args`` asks.

    ``ModelLoadError`` (one line, exit 2) when transformers cannot read it.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    resolved = resolve_model(model_name)
    revision = getattr(model_args, "model_revision", "main") if resolved.is_local is False else None
    with model_load_errors(resolved):
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
    with model_load_errors(resolved):
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
    stop_request: StopRequest | None = None,
) -> TrainOutcome:
    """Train ``model_name`` as configured and fill the output folder (see the module docstring).

    ``examples`` are ``task_examples``' (loaded here when None). With ``resume_point`` the run
    continues from that checkpoint: ``metrics.jsonl`` is cut back to its step and appended to, the
    evaluation before training is not repeated, and incomplete checkpoints after it are removed.
    With ``stop_request`` (installed on SIGTERM by ``egsw train``) the run stops cleanly after the step
    in flight, with a complete checkpoint (``egsw.run.termination``).
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
    stop_on_signal = StopOnSignalCallback(stop_request or StopRequest(), trainer.accelerator)
    trainer.add_callback(stop_on_signal)

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
    terminated = stop_on_signal.stopped
    interrupted = interrupted or terminated
    after = None
    if not interrupted:
        final = save_final_model(trainer, tokenizer, output_dir, peft=peft_config_of(model_args) is not None)
        if script_args.eval_after and final is not None:
            after = evaluate("after", final)
    if main_process:
        _write_json(output_dir / EVAL_FILE, eval_record(before, after, interrupted))
        plot_training_curves(metrics_path, output_dir / "plots")
    return TrainOutcome(output_dir, interrupted, time.monotonic() - started, before, after, terminated)


def save_final_model(trainer: Any, tokenizer: Any, output_dir: Path, peft: bool) -> Any | None:  # noqa: ANN401
    """Write ``model/`` (and with LoRA ``adapter/``); return the model to evaluate, None if not on this process.

    ``model/`` marks a finished run, so it appears only complete: it is written as ``.model-partial/``
    and renamed (a full disk or a kill mid-write leaves a run that ``--resume`` continues). With LoRA
    the adapter is merged into the base weights for ``model/``, so that ``egsw eval`` and vLLM load it
    like any model. Under DeepSpeed ZeRO-3 or FSDP the parameters are sharded and the merge is left to
    the user (the adapter is saved; see docs/gpu.md).
    """
    staging = output_dir / PARTIAL_MODEL_DIR
    main_process = trainer.accelerator.is_main_process
    if main_process and staging.exists():
        shutil.rmtree(staging)
    trainer.accelerator.wait_for_everyone()
    if not peft:
        trainer.save_model(str(staging))
        evaluated = trainer.model
    else:
        trainer.save_model(str(output_dir / ADAPTER_DIR))
        sharded = trainer.is_deepspeed_enabled or trainer.is_fsdp_enabled
        if sharded or not main_process:
            return None
        evaluated = trainer.accelerator.unwrap_model(trainer.model).merge_and_unload()
        evaluated.save_pretrained(str(staging))
        tokenizer.save_pretrained(str(staging))
    if main_process:
        staging.rename(output_dir / TRAIN_OUTPUT_MODEL)
    trainer.accelerator.wait_for_everyone()
    return evaluated


def _write_json(path: Path, data: dict[str, Any]) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(data, indent=2) + "\n")
    temporary.replace(path)
