"""``egsw train --dry-run``: the resolved options and what the run would do, with nothing loaded or written.

It checks the options for the processes the recipe is laid out for (``--num_processes``), as on its
GPUs, without loading a model or a data set, writing a file or initialising a device.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from egsw.errors import InputError
from egsw.run.checks import batch_layout, check_options, settle_auto_resume
from egsw.run.options import ParsedArguments
from egsw.run.run_folder import check_output_dir, lock_holder, resolved_options
from egsw.run.task_data import MATH_SYSTEM_PROMPT, MATH_TASK, MATH_TRAIN_PROBLEMS
from egsw.tasks.catalog import PRESETS, preset_files


def dry_run_report(parsed: ParsedArguments) -> str:
    """The resolved options as YAML, then what the run would do; InputError on a problem."""
    model_args, script_args, training_args = parsed.model, parsed.script, parsed.training
    notes = check_options(parsed, for_dry_run=True)
    output_dir = Path(training_args.output_dir)
    resume_auto = script_args.resume == "auto"
    decision = settle_auto_resume(script_args, output_dir)
    try:
        resume_point = (
            None if decision == "finished" else check_output_dir(output_dir, script_args.overwrite, script_args.resume)
        )
    except ValueError as error:
        raise InputError(str(error)) from error
    holder = lock_holder(output_dir)
    if holder is not None:
        notes.append(f"{output_dir} is in use by a live run ({holder}): egsw train would be refused now")
    data_dir = script_args.data_dir
    if (
        script_args.task == MATH_TASK
        and data_dir is not None
        and not preset_files(PRESETS[MATH_TASK], data_dir, "train")
    ):
        raise InputError(
            f"{MATH_TASK}: no local copy in {data_dir}; put {MATH_TASK}/data/train-*.parquet there "
            f"(hf download --repo-type dataset {PRESETS[MATH_TASK].hub_id} --local-dir {data_dir}/{MATH_TASK})"
        )

    layout = batch_layout(training_args, parsed.num_processes)
    lora = (
        f"LoRA r={model_args.lora_r} alpha={model_args.lora_alpha} dropout={model_args.lora_dropout} on "
        f"{model_args.lora_target_modules or 'the default modules of the architecture'}"
        if model_args.use_peft
        else "full fine-tuning"
    )
    if script_args.task == MATH_TASK:
        source = script_args.data_dir or f"the Hugging Face Hub ({PRESETS[MATH_TASK].hub_id})"
        prompt = MATH_SYSTEM_PROMPT if script_args.system_prompt is None else script_args.system_prompt
        task = f"{MATH_TASK}: MATH's training split from {source}; system prompt {prompt[:60]!r}..."
    else:
        levels = ",".join(map(str, script_args.task_levels))
        task = f"procedural: kinds {','.join(script_args.task_kinds)}, levels {levels}"
    if training_args.egsw_mode == "none":
        method = "GRPO (egsw_mode none)"
    else:
        method = (
            f"GRPO+EGSW {training_args.egsw_mode}-wise: alpha {training_args.egsw_alpha}, temperature P "
            f"{training_args.egsw_temperature}, rescale {'on' if training_args.egsw_rescale else 'off'}"
        )
    if training_args.policy_loss_variant == "clip_cov":
        method += (
            f"; Clip-Cov: gradient detached on {training_args.clip_cov_ratio:g} of the tokens with covariance in "
            f"({training_args.clip_cov_lb:g}, {training_args.clip_cov_ub:g})"
        )
    elif training_args.policy_loss_variant == "kl_cov":
        method += (
            f"; KL-Cov: {training_args.kl_cov_coef:g} x |log-ratio| on the {training_args.kl_cov_ratio:g} of the "
            "tokens with the largest covariance"
        )
        generate_every = training_args.steps_per_generation * training_args.num_iterations
        if training_args.gradient_accumulation_steps % generate_every == 0 and not (
            training_args.use_vllm and training_args.vllm_importance_sampling_correction
        ):  # when TRL takes the old log-probs to be the current ones
            method += " (on-policy here, so the penalty is 0: num_iterations > 1 makes it act)"
    if not training_args.use_vllm:
        generation = "transformers generate"
    elif training_args.vllm_mode == "colocate":
        generation = (
            f"vLLM colocate (tensor parallel {training_args.vllm_tensor_parallel_size}, "
            f"{training_args.vllm_gpu_memory_utilization:.0%} of each GPU's memory)"
        )
    else:
        where = training_args.vllm_server_base_url or (
            f"{training_args.vllm_server_host}:{training_args.vllm_server_port}"
        )
        generation = f"vLLM server at {where} (started beforehand on GPUs of its own: `trl vllm-serve`)"
    generation += f"; up to {training_args.max_completion_length} new tokens at temperature {training_args.temperature}"
    if training_args.max_steps > 0:
        steps = f"max_steps {training_args.max_steps} ({training_args.max_steps * layout.prompts_per_step} prompts)"
    else:
        steps = f"{training_args.num_train_epochs:g} epoch(s) of the training set"
        if script_args.task == MATH_TASK:
            per_epoch = MATH_TRAIN_PROBLEMS // layout.prompts_per_step
            steps += f" (MATH: {MATH_TRAIN_PROBLEMS:,} problems, {per_epoch} optimizer steps per epoch)"
    precision = (
        f"weights {model_args.dtype}, {'bf16 autocast' if training_args.bf16 else 'no bf16'}, gradient checkpointing "
        f"{'on' if training_args.gradient_checkpointing else 'off'}"
    )
    if decision == "finished":
        output = f"{output_dir}: the run has finished (model/ exists); --resume auto does nothing"
    elif resume_point is not None:
        output = f"{output_dir}: resume from {resume_point.checkpoint.name} (step {resume_point.step})"
    else:
        output = f"{output_dir} ({'replaced' if script_args.overwrite else 'new'})"
    if resume_auto:
        output += " [--resume auto]"
    rows = [
        ("model", f"{model_args.model_name_or_path} ({lora})"),
        ("task", task),
        ("method", method),
        ("processes", f"{parsed.num_processes} ({parsed.processes_source})"),
        (
            "batch",
            f"{layout.describe()} = {layout.completions_per_step} completions per optimizer step = "
            f"{layout.prompts_per_step} prompts x group size {layout.group_size}; generation batch "
            f"{layout.generation_batch} (group size divides both)",
        ),
        ("generation", generation),
        ("steps", steps),
        ("precision", precision),
        ("output", output),
        *(("note", note) for note in notes),
    ]
    options = resolved_options(script_args, training_args, model_args)
    lines = ["# resolved options (the run's config.yaml)", yaml.safe_dump(options, sort_keys=True).rstrip(), ""]
    lines.append("egsw train --dry-run: nothing loaded, nothing written")
    lines += [f"  {name:<12}{value}" for name, value in rows]
    return "\n".join(lines)
