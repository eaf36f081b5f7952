"""GPU check of EGSW on verl: GRPO vs GRPO+EGSW (step, trajectory) through verl's own trainer, on one GPU.

What it measures
    ``python -m verl.trainer.main_ppo`` (the v1 sync trainer, FSDP, vLLM rollout) trains a random-initialised model
    of Qwen2.5-Math-1.5B's architecture (``gpu_check.QWEN25_MATH_1_5B``, built here, nothing downloaded) on
    random-word prompts with a cheap reward that varies inside every group, once per method: ``egsw.mode`` none
    (GRPO), step and trajectory, with ``egsw.integrations.verl`` loaded in every process. Responses are forced to
    ``--response-length`` tokens (``rollout.ignore_eos``) so every method does the same work.

    From verl's own metrics (the file logger's JSON lines), per method, medians over the steps after
    ``--warmup``: ``timing_s/step``, ``timing_s/adv`` (where EGSW runs), ``perf/max_memory_allocated_gb``; and the
    EGSW/GRPO ratios (targets as in gpu_check.py: step time <= 1.02, memory <= 1.03). It also checks that the
    EGSW runs logged ``egsw/*`` metrics, so the plugin was really loaded in verl's trainer process.

    Default load: 16 prompts x 8 responses of 512 tokens per step, 1 warm-up + 3 measured steps per method.

How to run (from the repository root, on a machine with a GPU, verl's GPU stack and this package)
    pip install 'verl[vllm]>=0.9,<0.10' && pip install -e '.[verl]'
    bash benchmarks/verl_gpu_check.sh                 # the check, JSON in benchmarks/results/verl_gpu_check.json
    python benchmarks/verl_gpu_check.py --dry-run     # the plan; composes each run's config with verl's, no GPU
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
from gpu_check import QWEN25_MATH_1_5B, TARGETS  # noqa: E402 - the same architecture and targets as the TRL check

DEFAULT_OUTPUT = REPO_ROOT / "benchmarks" / "results" / "verl_gpu_check.json"
METHODS = {"grpo": "none", "step": "step", "trajectory": "trajectory"}
PLUGIN = "egsw.integrations.verl"
METRICS = ("timing_s/step", "timing_s/adv", "perf/max_memory_allocated_gb")

REWARD = '''import zlib


def compute_score(data_source, solution_str, ground_truth, extra_info=None):
    """Deterministic, cheap, and different inside every group: a hash of the response's text."""
    return (zlib.crc32(solution_str.encode()) % 1000) / 1000.0
'''


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated, from grpo,step,trajectory")
    parser.add_argument("--prompts", type=int, default=16, help="prompts per step (default: %(default)s)")
    parser.add_argument("--group-size", type=int, default=8, help="responses per prompt (default: %(default)s)")
    parser.add_argument("--prompt-length", type=int, default=128, help="prompt words (default: %(default)s)")
    parser.add_argument("--response-length", type=int, default=512, help="response tokens (default: 512)")
    parser.add_argument("--steps", type=int, default=3, help="measured steps per method (default: 3)")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured first steps per method (default: 1)")
    parser.add_argument("--timeout-s", type=float, default=420.0, help="per method run (default: %(default)s)")
    parser.add_argument("--work-dir", type=Path, default=None, help="model, data, logs (default: a temp dir)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON summary (default: %(default)s)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and compose each config; no GPU")
    args = parser.parse_args(argv)
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not args.methods or args.methods[0] != "grpo" or any(m not in METHODS for m in args.methods):
        parser.error(f"--methods must start with grpo and name only {', '.join(METHODS)}; got {args.methods}")
    return args


def overrides(args: argparse.Namespace, method: str, work: Path) -> list[str]:
    """verl's Hydra overrides of one run: one GPU, the model and data in ``work``, EGSW's mode."""
    batch = args.prompts * args.group_size
    return [
        "algorithm.adv_estimator=grpo",
        f"data.train_files={work / 'train.parquet'}",
        f"data.val_files={work / 'train.parquet'}",
        f"data.train_batch_size={args.prompts}",
        f"data.max_prompt_length={args.prompt_length + 16}",
        f"data.max_response_length={args.response_length}",
        f"actor_rollout_ref.model.path={work / 'model'}",
        "actor_rollout_ref.model.enable_gradient_checkpointing=true",
        "actor_rollout_ref.actor.optim.lr=1e-6",
        f"actor_rollout_ref.actor.ppo_mini_batch_size={args.prompts}",
        f"actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu={min(16, batch)}",
        "actor_rollout_ref.actor.use_kl_loss=false",
        "actor_rollout_ref.rollout.name=vllm",
        f"actor_rollout_ref.rollout.n={args.group_size}",
        "actor_rollout_ref.rollout.tensor_model_parallel_size=1",
        "actor_rollout_ref.rollout.gpu_memory_utilization=0.4",
        "actor_rollout_ref.rollout.ignore_eos=true",
        f"actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu={min(16, batch)}",
        f"reward.custom_reward_function.path={work / 'reward.py'}",
        "trainer.n_gpus_per_node=1",
        "trainer.nnodes=1",
        f"trainer.total_training_steps={args.warmup + args.steps}",
        "trainer.logger=[console,file]",
        "trainer.val_before_train=false",
        "trainer.test_freq=-1",
        "trainer.save_freq=-1",
        "trainer.project_name=egsw-verl-gpu-check",
        f"trainer.experiment_name={method}",
        f"trainer.default_local_dir={work / 'checkpoints' / method}",
        f"+egsw.mode={METHODS[method]}",
        f"+ray_kwargs.ray_init.runtime_env.env_vars.VERL_USE_EXTERNAL_MODULES={PLUGIN}",
        f"+ray_kwargs.ray_init.runtime_env.env_vars.VERL_FILE_LOGGER_PATH={work / f'{method}.jsonl'}",
    ]


def build_model_and_data(args: argparse.Namespace, work: Path) -> None:
    """The random-initialised model with a word tokenizer, random-word prompts (parquet), and the reward file."""
    import pandas as pd
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    from egsw.models.tiny_random import build_word_tokenizer

    tokenizer = build_word_tokenizer(QWEN25_MATH_1_5B["vocab_size"])
    config = Qwen2Config(
        **QWEN25_MATH_1_5B, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id, torch_dtype="bfloat16",
    )  # fmt: skip
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(config, torch_dtype=torch.bfloat16)
    model.save_pretrained(work / "model")
    tokenizer.save_pretrained(work / "model")
    del model
    generator = torch.Generator().manual_seed(0)
    rows = []
    for index in range(args.prompts * (args.warmup + args.steps + 1)):
        words = torch.randint(100, 5000, (args.prompt_length,), generator=generator).tolist()
        rows.append(
            {
                "data_source": "egsw-gpu-check",
                "prompt": [{"role": "user", "content": " ".join(f"w{w}" for w in words)}],
                "reward_model": {"style": "rule", "ground_truth": ""},
                "extra_info": {"index": index},
            }
        )
    pd.DataFrame(rows).to_parquet(work / "train.parquet")
    (work / "reward.py").write_text(REWARD)


def compose(args: argparse.Namespace, method: str, work: Path) -> Any:  # noqa: ANN401 - a DictConfig
    """The run's config composed with verl's own (every key must exist), and verl's checks on it."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    with initialize_config_module(config_module="verl.trainer.config", version_base=None):
        config = hydra_compose(config_name="ppo_trainer", overrides=overrides(args, method, work))
    validate_config(config=config, use_reference_policy=need_reference_policy(config), use_critic=need_critic(config))
    return config


def run_method(args: argparse.Namespace, method: str, work: Path) -> dict[str, Any]:
    """One verl run in a fresh process; its logged metrics per step."""
    log = work / f"{method}.jsonl"
    env = {**os.environ, "VERL_USE_EXTERNAL_MODULES": PLUGIN, "VERL_FILE_LOGGER_PATH": str(log)}
    command = [sys.executable, "-m", "verl.trainer.main_ppo", *overrides(args, method, work)]
    started = time.monotonic()
    with open(work / f"{method}.out", "w") as out:
        result = subprocess.run(command, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=args.timeout_s)
    if result.returncode != 0:
        tail = (work / f"{method}.out").read_text()[-4000:]
        raise RuntimeError(f"verl run {method} exited {result.returncode}:\n{tail}")
    steps = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return {"wall_s": time.monotonic() - started, "steps": [s["data"] for s in steps if "data" in s]}


def summarise(args: argparse.Namespace, runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Medians over the measured steps, the EGSW/GRPO ratios, and whether the EGSW runs logged egsw/* metrics."""
    summary: dict[str, Any] = {"methods": {}, "ratios": {}, "targets": TARGETS}
    for method, run in runs.items():
        measured = run["steps"][args.warmup :]
        medians = {key: statistics.median(s[key] for s in measured if key in s) for key in METRICS}
        egsw_logged = all(any(k.startswith("egsw/") for k in s) for s in measured)
        summary["methods"][method] = {**medians, "egsw_metrics_logged": egsw_logged, "wall_s": run["wall_s"]}
    base = summary["methods"]["grpo"]
    for method in runs:
        if method != "grpo":
            row = summary["methods"][method]
            summary["ratios"][method] = {
                "time": row["timing_s/step"] / base["timing_s/step"],
                "memory": row["perf/max_memory_allocated_gb"] / base["perf/max_memory_allocated_gb"],
            }
    return summary


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="egsw-verl-gpu-check-"))
    work.mkdir(parents=True, exist_ok=True)
    for method in args.methods:
        compose(args, method, work)
        print(f"{method}: python -m verl.trainer.main_ppo {' '.join(overrides(args, method, work))}", flush=True)
    if args.dry_run:
        return 0
    build_model_and_data(args, work)
    runs = {method: run_method(args, method, work) for method in args.methods}
    summary = summarise(args, runs)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    missing = [m for m in args.methods if m != "grpo" and not summary["methods"][m]["egsw_metrics_logged"]]
    if missing:
        print(f"verl_gpu_check: no egsw/* metrics from {missing}: the plugin was not loaded", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
