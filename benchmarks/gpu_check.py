"""GPU check: GRPO vs GRPO+EGSW on one GPU, bf16, a random-initialised model of Qwen2.5-Math-1.5B's architecture.

What it measures
    TRL's ``GRPOTrainer`` and ``egsw.EGSWTrainer`` (``egsw_mode`` step and trajectory, default alpha and
    temperature) train a model built in memory from Qwen2.5-Math-1.5B's configuration (``QWEN25_MATH_1_5B``,
    random weights drawn on the GPU, nothing downloaded) in bf16 weights with bf16 autocast and gradient
    checkpointing, on random-word prompts, with a cheap reward that varies inside every group. Completions are
    forced to ``--max-completion-length`` tokens (``min_new_tokens``), so every method does the same work.

    Per optimizer step (generation, scoring, weighting, forward and backward, optimizer): wall time, tokens
    per second (prompt and completion tokens through the policy, TRL's ``num_tokens``), and the run's peak GPU
    memory (``torch.cuda.max_memory_allocated``, from the first measured step). Each method runs in a fresh
    process; the first ``--warmup`` steps of each are not counted. Reported: medians per method and the
    EGSW/GRPO ratios of step time, tokens per second and peak memory (targets: time <= 1.02, memory <= 1.03).

    Default load: 8 prompts x 8 completions = 64 completions of 512 tokens per step, micro-batches of 16,
    1 warm-up + 3 measured steps per method: about 4-5 minutes on one H200 (``--budget-s`` stops
    starting new runs past 420 s).

How to run (from the repository root, with a CUDA build of torch and this package installed)
    bash benchmarks/gpu_check.sh                               # the check, JSON in benchmarks/results/
    python benchmarks/gpu_check.py --dry-run                   # the plan and the model's size; builds nothing
    python benchmarks/gpu_check.py --device cpu --tiny --steps 1 --warmup 0 --max-completion-length 4
                                                               # a smoke run of the whole path on a CPU
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = REPO_ROOT / "benchmarks" / "results" / "gpu_check.json"
RESULT_MARKER = "EGSW_GPU_CHECK "
METHODS = ("grpo", "step", "trajectory")
TARGETS = {"time": 1.02, "memory": 1.03}

# Qwen/Qwen2.5-Math-1.5B's config.json (Qwen2ForCausalLM).
QWEN25_MATH_1_5B: dict[str, Any] = dict(
    vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
    num_key_value_heads=2, max_position_embeddings=4096, rope_theta=10000.0, rms_norm_eps=1e-6,
    tie_word_embeddings=True, hidden_act="silu", use_sliding_window=False, sliding_window=4096, max_window_layers=21,
)  # fmt: skip
# The same architecture, small enough for a CPU smoke run.
TINY: dict[str, Any] = QWEN25_MATH_1_5B | dict(
    vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=2, max_window_layers=2,
)  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda", help="default: %(default)s")
    parser.add_argument("--tiny", action="store_true", help="a two-layer model of the same architecture (CPU smoke)")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated, from grpo,step,trajectory")
    parser.add_argument("--prompts", type=int, default=8, help="prompts per step (default: %(default)s)")
    parser.add_argument("--group-size", type=int, default=8, help="completions per prompt (default: %(default)s)")
    parser.add_argument("--micro-batch", type=int, default=16, help="completions per forward/backward (default: 16)")
    parser.add_argument("--prompt-length", type=int, default=128, help="prompt tokens (default: %(default)s)")
    parser.add_argument("--max-completion-length", type=int, default=512, help="completion tokens (default: 512)")
    parser.add_argument("--steps", type=int, default=3, help="measured optimizer steps per method (default: 3)")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured first steps per method (default: 1)")
    parser.add_argument("--budget-s", type=float, default=420.0, help="start no new run past this (default: 420)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON summary (default: %(default)s)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and the model's size, build nothing")
    parser.add_argument("--worker", choices=METHODS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in args.methods if m not in METHODS]
    if unknown or not args.methods or args.methods[0] != "grpo":
        parser.error(f"--methods must start with grpo and name only {', '.join(METHODS)}; got {args.methods}")
    completions = args.prompts * args.group_size
    if args.group_size < 2 or completions % args.micro_batch:
        parser.error(f"{completions} completions per step must split into micro-batches of {args.micro_batch}")
    if min(args.steps, args.prompt_length, args.max_completion_length, args.prompts) < 1 or args.warmup < 0:
        parser.error("--steps, --prompt-length, --max-completion-length and --prompts must be >= 1, --warmup >= 0")
    return args


def model_config(tiny: bool) -> Any:  # noqa: ANN401 - a transformers Qwen2Config
    """Qwen2.5-Math-1.5B's configuration (or its two-layer miniature)."""
    from transformers import Qwen2Config

    return Qwen2Config(**(TINY if tiny else QWEN25_MATH_1_5B), pad_token_id=0, eos_token_id=1, bos_token_id=1)


def parameter_count(tiny: bool) -> int:
    """Parameters of the model, counted on the meta device (no memory, no GPU)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(model_config(tiny))
    return sum(p.numel() for p in model.parameters())


def trainer_fields(args: argparse.Namespace, output_dir: str) -> dict[str, Any]:
    """The GRPOConfig fields every method shares."""
    completions = args.prompts * args.group_size
    return dict(
        output_dir=output_dir,
        per_device_train_batch_size=args.micro_batch,
        gradient_accumulation_steps=completions // args.micro_batch,
        num_generations=args.group_size,
        max_completion_length=args.max_completion_length,
        generation_kwargs={"min_new_tokens": args.max_completion_length},
        temperature=1.0,
        max_steps=args.warmup + args.steps,
        learning_rate=1e-6,
        beta=0.0,
        bf16=True,
        gradient_checkpointing=True,
        gradient_checkpointing_kwargs={"use_reentrant": False},
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        seed=args.seed,
        use_cpu=args.device == "cpu",
        disable_tqdm=True,
    )


def variety_reward(completions: list[Any], **_: Any) -> list[float]:
    """Deterministic, cheap, and different inside every group: a hash of the completion's text."""
    return [(zlib.crc32(str(c).encode()) % 1000) / 1000.0 for c in completions]


def run_worker(args: argparse.Namespace) -> dict[str, Any]:
    """One method in this process: build the model on the device, train, measure."""
    import random

    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from egsw import EGSWConfig, EGSWTrainer
    from egsw.models.tiny_random import build_word_tokenizer

    cuda = args.device == "cuda"
    if cuda and not torch.cuda.is_available():
        raise SystemExit(f"no CUDA device visible to torch {torch.__version__}; for a smoke run: --device cpu --tiny")
    synchronize = torch.cuda.synchronize if cuda else (lambda: None)
    config = model_config(args.tiny)
    tokenizer = build_word_tokenizer(config.vocab_size)
    config.pad_token_id, config.eos_token_id = tokenizer.pad_token_id, tokenizer.eos_token_id
    torch.manual_seed(args.seed)
    with torch.device(args.device):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id

    rng = random.Random(args.seed)
    words = [f"w{i}" for i in range(config.vocab_size - 200)]
    prompts = [" ".join(rng.choices(words, k=args.prompt_length)) for _ in range(args.prompts * (args.steps + 4))]
    measured_from = args.warmup

    class Meter(TrainerCallback):
        def __init__(self) -> None:
            self.started = 0.0
            self.step_times: list[float] = []
            self.logs: list[dict[str, float]] = []

        def on_step_begin(self, _args: Any, state: Any, *unused: Any, **kwargs: Any) -> None:  # noqa: ANN401
            synchronize()
            if cuda and state.global_step == measured_from:
                torch.cuda.reset_peak_memory_stats()
            self.started = time.perf_counter()

        def on_step_end(self, *unused: Any, **kwargs: Any) -> None:
            synchronize()
            self.step_times.append(time.perf_counter() - self.started)

        def on_log(self, *unused: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
            if logs and "num_tokens" in logs:
                self.logs.append({k: float(v) for k, v in logs.items() if isinstance(v, int | float)})

    meter = Meter()
    with tempfile.TemporaryDirectory(prefix="egsw-gpu-check-") as output_dir:
        fields = trainer_fields(args, output_dir)
        if args.worker == "grpo":
            trainer: Any = GRPOTrainer(
                model=model, reward_funcs=variety_reward, args=GRPOConfig(**fields),
                train_dataset=Dataset.from_dict({"prompt": prompts}), processing_class=tokenizer, callbacks=[meter],
            )  # fmt: skip
        else:
            trainer = EGSWTrainer(
                model=model, reward_funcs=variety_reward, args=EGSWConfig(**fields, egsw_mode=args.worker),
                train_dataset=Dataset.from_dict({"prompt": prompts}), processing_class=tokenizer, callbacks=[meter],
            )  # fmt: skip
        trainer.train()
    synchronize()

    tokens = [log["num_tokens"] for log in meter.logs]
    per_step_tokens = [b - a for a, b in zip([0.0, *tokens], tokens, strict=False)]
    measured = slice(measured_from, None)
    result: dict[str, Any] = {
        "method": args.worker,
        "step_times_s": meter.step_times,
        "tokens_per_step": per_step_tokens,
        "measured_step_times_s": meter.step_times[measured],
        "tokens_per_s": [n / t for n, t in zip(per_step_tokens[measured], meter.step_times[measured], strict=False)],
        "completion_length": [log.get("completions/mean_length") for log in meter.logs],
        "peak_memory_bytes": torch.cuda.max_memory_allocated() if cuda else None,
        "peak_reserved_bytes": torch.cuda.max_memory_reserved() if cuda else None,
    }
    last = getattr(trainer, "egsw_last", None)
    if last is not None:
        active = last.mask.bool()
        result["egsw"] = {
            "entropy_source": last.entropy_source,
            "weights_finite": bool(torch.isfinite(last.weights).all()),
            "weight_max": float(last.weights.max()),
            "entropy_mean": float(last.entropies[active].float().mean()),
            "ess": [log.get("egsw/ess") for log in meter.logs],
        }
    return result


def launch(args: argparse.Namespace, method: str) -> dict[str, Any]:
    """Runs one method in a fresh process (so that peak memory and caches are its own)."""
    command = [
        sys.executable, str(Path(__file__).resolve()), "--worker", method, "--device", args.device,
        "--prompts", str(args.prompts), "--group-size", str(args.group_size), "--micro-batch", str(args.micro_batch),
        "--prompt-length", str(args.prompt_length), "--max-completion-length", str(args.max_completion_length),
        "--steps", str(args.steps), "--warmup", str(args.warmup), "--seed", str(args.seed),
    ]  # fmt: skip
    if args.tiny:
        command.append("--tiny")
    env = os.environ | {"TOKENIZERS_PARALLELISM": "false", "PYTHONHASHSEED": str(args.seed)}
    started = time.perf_counter()
    process = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO_ROOT, check=False)
    lines = [line for line in process.stdout.splitlines() if line.startswith(RESULT_MARKER)]
    if process.returncode != 0 or not lines:
        sys.stderr.write(process.stdout[-3000:] + process.stderr[-6000:])
        raise SystemExit(f"gpu_check: the {method} run failed (exit status {process.returncode})")
    result: dict[str, Any] = json.loads(lines[-1][len(RESULT_MARKER) :])
    result["process_wall_s"] = time.perf_counter() - started
    return result


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians per method and the EGSW/GRPO ratios."""
    methods: dict[str, dict[str, Any]] = {}
    for run in runs:
        methods[run["method"]] = {
            "median_step_time_s": statistics.median(run["measured_step_times_s"]),
            "median_tokens_per_s": statistics.median(run["tokens_per_s"]),
            "peak_memory_bytes": run["peak_memory_bytes"],
            "process_wall_s": run["process_wall_s"],
        }
    base = methods["grpo"]
    ratios = {}
    for method, figures in methods.items():
        if method == "grpo":
            continue
        memory = (
            figures["peak_memory_bytes"] / base["peak_memory_bytes"] if base["peak_memory_bytes"] else None
        )  # fmt: skip
        ratios[method] = {
            "step_time": figures["median_step_time_s"] / base["median_step_time_s"],
            "tokens_per_s": figures["median_tokens_per_s"] / base["median_tokens_per_s"],
            "peak_memory": memory,
        }
    return {"methods": methods, "ratios_vs_grpo": ratios, "targets": TARGETS}


def environment() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "host": platform.node(),
    }
    for package in ("transformers", "trl", "accelerate"):
        try:
            info[package] = __import__(package).__version__
        except ImportError:
            info[package] = None
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info |= {"gpu": props.name, "gpu_memory_gib": round(props.total_memory / 2**30, 1), "cuda": torch.version.cuda}
    return info


def plan(args: argparse.Namespace) -> str:
    completions = args.prompts * args.group_size
    return (
        f"model: Qwen2.5-Math-1.5B architecture{' (tiny)' if args.tiny else ''}, random weights, "
        f"{parameter_count(args.tiny) / 1e6:,.1f} M parameters, bf16 weights + autocast, gradient checkpointing\n"
        f"per step: {args.prompts} prompts x {args.group_size} = {completions} completions, {args.prompt_length} "
        f"prompt + {args.max_completion_length} completion tokens, micro-batches of {args.micro_batch}\n"
        f"methods: {', '.join(args.methods)} on {args.device}, each {args.warmup} warm-up + {args.steps} measured "
        f"step(s) in a fresh process; results to {args.output}"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        print(RESULT_MARKER + json.dumps(run_worker(args)), flush=True)
        return 0
    print(plan(args), flush=True)
    if args.dry_run:
        return 0
    started, runs = time.perf_counter(), []
    for method in args.methods:
        if runs and time.perf_counter() - started > args.budget_s:
            print(f"gpu_check: {method} skipped, past the {args.budget_s:.0f} s budget", file=sys.stderr)
            continue
        runs.append(launch(args, method))
        run = runs[-1]
        peak = "n/a" if run["peak_memory_bytes"] is None else f"{run['peak_memory_bytes'] / 2**30:.2f} GiB"
        print(
            f"  {method:<11} step {statistics.median(run['measured_step_times_s']):7.2f} s   "
            f"{statistics.median(run['tokens_per_s']):9.0f} tokens/s   peak {peak}   "
            f"({run['process_wall_s']:.0f} s in all)",
            flush=True,
        )
    summary = summarise(runs)
    for method, ratio in summary["ratios_vs_grpo"].items():
        memory = "n/a" if ratio["peak_memory"] is None else f"{ratio['peak_memory']:.3f}"
        print(
            f"  EGSW-{method}/GRPO: step time {ratio['step_time']:.3f} (target <= {TARGETS['time']}), "
            f"tokens/s {ratio['tokens_per_s']:.3f}, peak memory {memory} (target <= {TARGETS['memory']})"
        )
    record = {"environment": environment(), "settings": vars(args) | {"output": str(args.output)}, **summary}
    record["runs"] = runs
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(record, indent=2, default=str) + "\n")
    print(f"gpu_check: {time.perf_counter() - started:.0f} s; results in {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
