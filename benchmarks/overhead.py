"""Overhead of EGSW over plain GRPO: wall time per optimizer step and peak memory. A benchmark, not a test.

What it measures
    TRL's ``GRPOTrainer`` and ``egsw.EGSWTrainer`` (``egsw_mode="step"``, default alpha and temperature;
    ``--modes`` adds ``trajectory``) train the same random-initialised model with SmolLM2-135M's exact
    shape (``egsw.models.tiny_random.save_random_model``, vocab 49152; ``--arch tiny`` for a quick smoke run) under
    the same config, seed, prompts ("What is 12 + 7 ?") and a cheap reward with variance (a hash and the
    length of the completion text), so that EGSW computes non-trivial weights. Completions are forced to
    ``--max-completion-length`` tokens (``min_new_tokens``), so both trainers do the same work.

    Default batch: 8 completions per optimizer step (2 prompts x 4 generations), 48 completion tokens,
    3 optimizer steps per run. Each run is a fresh subprocess (this script with ``--worker``), and the
    methods are alternated (GRPO, EGSW, GRPO, EGSW, ...) for ``--repeats`` rounds so that drift of the
    machine hits both alike.

    * Step time: the whole optimizer step, generation and scoring included: the time between successive
      ``on_step_end`` callbacks (the first step from its ``on_step_begin``). The first step of each run
      is warm-up and not counted. The reported figure is the median over all measured steps of all
      repeats of a method; the time ratio is EGSW's median over GRPO's.
    * Peak memory: on CUDA ``torch.cuda.max_memory_allocated()`` of the run, on CPU the peak RSS of the
      worker process (``ru_maxrss``). The reported figure is the median over repeats.
    * Also per step: the worker's CPU seconds (user, system) and minor page faults. On a shared or
      virtual machine they separate a slow host (wall time up, CPU time not) from work the step did.

    Targets: time ratio <= 1.02, peak memory ratio <= 1.03. The script prints a table and writes a
    JSON summary (``--output``, default ``benchmarks/results/overhead.json``). It exits 0 whether or
    not the targets are met (it is a measurement, not a test); 1 only if a run fails.

How to run (from the repository root)
    .venv/bin/python benchmarks/overhead.py                    # defaults: 4 (quiet) to 15 (busy host) min on 2 CPUs
    .venv/bin/python benchmarks/overhead.py --arch tiny --steps 2 --repeats 1   # smoke run, ~1 minute
    .venv/bin/python benchmarks/overhead.py --modes step trajectory --profile

``--profile`` adds counters to every run (model forward calls with and without grad, time in
generation, in TRL's generate-and-score, in EGSW's weighting and in its entropy hook). They perturb
the timings slightly, so leave them off for the headline numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = Path("benchmarks") / "results" / "overhead.json"
TARGET_TIME_RATIO = 1.02
TARGET_MEMORY_RATIO = 1.03
RESULT_MARKER = "EGSW_BENCH_RESULT "
EGSW_MODES = ("step", "trajectory")


# ---- the worker: one training run in its own process -----------------------------------------------


def make_prompts(count: int, seed: int) -> list[str]:
    """``count`` arithmetic prompts in the words the testbed tokenizer knows ("What is 12 + 7 ?")."""
    rng = random.Random(seed)
    return [f"What is {rng.randrange(50)} + {rng.randrange(50)} ?" for _ in range(count)]


def hash_length_reward(completions: list[Any], **kwargs: Any) -> list[float]:
    """Cheap and deterministic, with variance inside every group: a hash of the text plus its length."""
    texts = [c if isinstance(c, str) else json.dumps(c, sort_keys=True) for c in completions]
    return [(zlib.crc32(text.encode()) % 1000) / 1000.0 + 0.001 * len(text) for text in texts]


class _Timer:
    """Accumulates wall time and call counts of wrapped callables (``--profile`` only)."""

    def __init__(self, synchronize: Callable[[], None]) -> None:
        self.synchronize = synchronize
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    def wrap(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            self.synchronize()
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.synchronize()
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
                self.calls[name] = self.calls.get(name, 0) + 1

        return timed


def run_worker(args: argparse.Namespace) -> dict[str, Any]:
    """Builds the trainer of ``args.method``, trains ``args.steps`` steps, returns the measurements."""
    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    import egsw.trainer as egsw_trainer
    from egsw import EGSWConfig, EGSWTrainer

    cuda = torch.cuda.is_available()
    synchronize: Callable[[], None] = torch.cuda.synchronize if cuda else (lambda: None)

    class StepTimer(TrainerCallback):
        """Wall time of each whole optimizer step (generation included), and TRL's logged metrics."""

        def __init__(self) -> None:
            self.last: float | None = None
            self.last_usage: tuple[float, float, int] = (0.0, 0.0, 0)
            self.step_times: list[float] = []
            # Per step, of this process: CPU seconds in user and kernel mode, and minor page faults.
            # They tell a slow machine (wall time up, CPU time not) from work the step really did.
            self.step_user: list[float] = []
            self.step_sys: list[float] = []
            self.step_minor_faults: list[int] = []
            self.logs: list[dict[str, float]] = []

        def on_step_begin(self, *unused: Any, **kwargs: Any) -> None:
            if self.last is None:
                synchronize()
                self.last, self.last_usage = time.perf_counter(), _usage()

        def on_step_end(self, *unused: Any, **kwargs: Any) -> None:
            synchronize()
            now, usage = time.perf_counter(), _usage()
            assert self.last is not None
            self.step_times.append(now - self.last)
            self.step_user.append(usage[0] - self.last_usage[0])
            self.step_sys.append(usage[1] - self.last_usage[1])
            self.step_minor_faults.append(usage[2] - self.last_usage[2])
            self.last, self.last_usage = now, usage

        def on_log(self, *unused: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
            if logs:
                self.logs.append({k: float(v) for k, v in logs.items() if isinstance(v, int | float)})

    common: dict[str, Any] = dict(
        output_dir=args.run_dir,
        per_device_train_batch_size=args.completions,
        gradient_accumulation_steps=1,
        num_generations=args.group_size,
        max_completion_length=args.max_completion_length,
        generation_kwargs={"min_new_tokens": args.max_completion_length},
        max_steps=args.steps,
        learning_rate=1e-6,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        seed=args.seed,
        data_seed=args.seed,
        use_cpu=not cuda,
        bf16=cuda,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    if args.method == "grpo":
        config: GRPOConfig = GRPOConfig(**common)
        trainer_class: type[GRPOTrainer] = GRPOTrainer
    else:
        config = EGSWConfig(**common, egsw_mode=args.method)
        trainer_class = EGSWTrainer

    prompts_needed = args.steps * args.completions // args.group_size
    dataset = Dataset.from_dict({"prompt": make_prompts(max(64, prompts_needed), args.seed)})
    timer = StepTimer()
    torch.manual_seed(args.seed)
    trainer = trainer_class(
        model=args.model_path,
        reward_funcs=hash_length_reward,
        args=config,
        train_dataset=dataset,
        callbacks=[timer],
    )

    profile = _Timer(synchronize)
    forward_calls = {"grad": 0, "no_grad": 0}
    if args.profile:

        def count_forward(module: torch.nn.Module, inputs: Any) -> None:
            forward_calls["grad" if torch.is_grad_enabled() else "no_grad"] += 1

        causal_lm = trainer.accelerator.unwrap_model(trainer.model)
        causal_lm.register_forward_pre_hook(count_forward)
        for name in ("_generate_and_score_completions", "_generate_single_turn", "_compute_loss"):
            setattr(trainer, name, profile.wrap(name, getattr(trainer, name)))
        if isinstance(trainer, EGSWTrainer):
            trainer._egsw_weigh = profile.wrap("_egsw_weigh", trainer._egsw_weigh)  # type: ignore[method-assign]
            recorder = egsw_trainer._GenerationEntropyRecorder
            recorder.__call__ = profile.wrap("entropy_hook", recorder.__call__)  # type: ignore[method-assign]

    if cuda:
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    synchronize()

    result: dict[str, Any] = {
        "method": args.method,
        "device": "cuda" if cuda else "cpu",
        "step_times_s": timer.step_times,
        "trl_step_time_s": [log["step_time"] for log in timer.logs if "step_time" in log],
        "step_user_s": timer.step_user,
        "step_sys_s": timer.step_sys,
        "step_minor_faults": timer.step_minor_faults,
        "peak_rss_bytes": _peak_rss_bytes(),
        "cuda_max_memory_allocated_bytes": torch.cuda.max_memory_allocated() if cuda else None,
        "torch_threads": torch.get_num_threads(),
        "completion_lengths": [
            log["completions/mean_length"] for log in timer.logs if "completions/mean_length" in log
        ],
        "reward_std": [log["reward_std"] for log in timer.logs if "reward_std" in log],
    }
    last = getattr(trainer, "egsw_last", None)
    if last is not None:
        active = last.mask.bool()
        result["egsw"] = {
            "entropy_source": last.entropy_source,
            "weights_shape": list(last.weights.shape),
            "weight_min_active": float(last.weights[active].min()),
            "weight_max": float(last.weights.max()),
            "entropy_mean_active": float(last.entropies[active].mean()),
            "logged": {
                key: [log[key] for log in timer.logs if key in log]
                for key in ("egsw/weight_max", "egsw/ess", "egsw/weight_entropy_corr")
            },
        }
    if args.profile:
        result["profile"] = {"seconds": profile.seconds, "calls": profile.calls, "forward_calls": forward_calls}
    return result


def _usage() -> tuple[float, float, int]:
    """(user CPU seconds, system CPU seconds, minor page faults) of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime, usage.ru_minflt


def _peak_rss_bytes() -> int:
    """Peak resident set size of this process (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024


# ---- the parent: alternate the runs, summarise ------------------------------------------------------


def launch(args: argparse.Namespace, method: str, model_path: Path, run_dir: Path) -> dict[str, Any]:
    """Runs one worker process and returns its JSON result (exits the benchmark if it fails)."""
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        "--method", method,
        "--model-path", str(model_path),
        "--run-dir", str(run_dir),
        "--completions", str(args.completions),
        "--group-size", str(args.group_size),
        "--max-completion-length", str(args.max_completion_length),
        "--steps", str(args.steps),
        "--seed", str(args.seed),
    ]  # fmt: skip
    if args.profile:
        command.append("--profile")
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "PYTHONHASHSEED": str(args.seed)}
    started = time.perf_counter()
    process = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO_ROOT, check=False)
    lines = [line for line in process.stdout.splitlines() if line.startswith(RESULT_MARKER)]
    if process.returncode != 0 or not lines:
        sys.stderr.write(process.stdout[-4000:] + process.stderr[-8000:])
        raise SystemExit(f"worker for {method} failed (exit code {process.returncode})")
    result: dict[str, Any] = json.loads(lines[-1][len(RESULT_MARKER) :])
    result["process_wall_s"] = time.perf_counter() - started
    return result


def label(method: str) -> str:
    return "GRPO" if method == "grpo" else f"EGSW-{method}"


def summarise(args: argparse.Namespace, runs: list[dict[str, Any]], methods: list[str]) -> dict[str, Any]:
    device = runs[0]["device"]
    memory_key = "cuda_max_memory_allocated_bytes" if device == "cuda" else "peak_rss_bytes"
    per_method: dict[str, dict[str, Any]] = {}
    for method in methods:
        mine = [run for run in runs if run["method"] == method]
        steps = [t for run in mine for t in run["step_times_s"][1:]]  # first step of each run: warm-up
        peaks = [run[memory_key] for run in mine]
        per_method[method] = {
            "measured_step_times_s": steps,
            "median_step_time_s": statistics.median(steps),
            "min_step_time_s": min(steps),
            "max_step_time_s": max(steps),
            "warmup_step_times_s": [run["step_times_s"][0] for run in mine],
            "median_step_user_s": statistics.median(t for run in mine for t in run["step_user_s"][1:]),
            "median_step_sys_s": statistics.median(t for run in mine for t in run["step_sys_s"][1:]),
            "median_step_minor_faults": statistics.median(n for run in mine for n in run["step_minor_faults"][1:]),
            "peak_memory_bytes": peaks,
            "median_peak_memory_bytes": statistics.median(peaks),
        }
    base = per_method["grpo"]
    comparisons: dict[str, dict[str, Any]] = {}
    for method in methods[1:]:
        mine = per_method[method]
        time_ratio = mine["median_step_time_s"] / base["median_step_time_s"]
        memory_ratio = mine["median_peak_memory_bytes"] / base["median_peak_memory_bytes"]
        comparisons[method] = {
            "time_ratio": time_ratio,
            "time_target": TARGET_TIME_RATIO,
            "time_ok": time_ratio <= TARGET_TIME_RATIO,
            "peak_memory_ratio": memory_ratio,
            "memory_target": TARGET_MEMORY_RATIO,
            "memory_ok": memory_ratio <= TARGET_MEMORY_RATIO,
        }
    return {"device": device, "memory_metric": memory_key, "methods": per_method, "comparisons": comparisons}


def print_table(summary: dict[str, Any], runs: list[dict[str, Any]], methods: list[str]) -> None:
    metric = "peak RSS" if summary["memory_metric"] == "peak_rss_bytes" else "cuda max allocated"
    mib = 1024.0**2
    print()
    print(
        f"{'method':<18}{'median step s':>14}{'min':>9}{'max':>9}{'steps':>7}{metric + ' MiB':>24}"
        f"{'| cpu user s':>13}{'sys s':>8}{'minor faults':>14}"
    )
    for method in methods:
        row = summary["methods"][method]
        print(
            f"{label(method):<18}{row['median_step_time_s']:>14.3f}{row['min_step_time_s']:>9.3f}"
            f"{row['max_step_time_s']:>9.3f}{len(row['measured_step_times_s']):>7}"
            f"{row['median_peak_memory_bytes'] / mib:>24.1f}"
            f"{'| ' + format(row['median_step_user_s'], '.3f'):>13}{row['median_step_sys_s']:>8.3f}"
            f"{row['median_step_minor_faults']:>14.0f}"
        )
    print("(cpu user/sys s and minor faults: medians per measured step, of the worker process)")
    print()
    for method, comparison in summary["comparisons"].items():
        name = label(method)
        verdict = "ok" if comparison["time_ok"] else "ABOVE TARGET"
        print(
            f"time ratio ({name}/GRPO, median of step times): {comparison['time_ratio']:.4f}"
            f"   target <= {TARGET_TIME_RATIO:.2f}   {verdict}"
        )
        verdict = "ok" if comparison["memory_ok"] else "ABOVE TARGET"
        print(
            f"peak memory ratio ({name}/GRPO, median of runs): {comparison['peak_memory_ratio']:.4f}"
            f"   target <= {TARGET_MEMORY_RATIO:.2f}   {verdict}"
        )
    print("(medians over all measured steps of all repeats; the first step of each run is warm-up, not counted)")
    print()
    print("per run (in the order run):")
    for index, run in enumerate(runs):
        steps = " ".join(f"{t:.3f}" for t in run["step_times_s"])
        peak = run[summary["memory_metric"]] / mib
        extra = ""
        if "egsw" in run:
            egsw = run["egsw"]
            extra = f"  entropy_source={egsw['entropy_source']} weight_max={egsw['weight_max']:.3f}"
        print(f"  {index:>2} {label(run['method']):<16} steps s: {steps}  peak {peak:.1f} MiB{extra}")
        sys_s = " ".join(f"{t:.2f}" for t in run["step_sys_s"])
        faults = " ".join(str(n) for n in run["step_minor_faults"])
        print(f"     sys s: {sys_s}  minor faults: {faults}")
        if "profile" in run:
            profile = run["profile"]
            seconds = " ".join(f"{k}={v:.3f}s/{profile['calls'][k]}" for k, v in profile["seconds"].items())
            print(f"     forward calls {profile['forward_calls']}  {seconds}")


def run_parent(args: argparse.Namespace) -> int:
    from egsw.models.tiny_random import save_random_model

    if args.completions % args.group_size:
        raise SystemExit("--completions must be a multiple of --group-size")
    methods = ["grpo", *args.modes]
    output = args.output if args.output.is_absolute() else REPO_ROOT / args.output
    with tempfile.TemporaryDirectory(prefix="egsw-overhead-") as scratch:
        model_path = save_random_model(Path(scratch) / "model", architecture=args.arch, seed=args.seed)
        runs: list[dict[str, Any]] = []
        for repeat in range(args.repeats):
            for method in methods:
                run_dir = Path(scratch) / f"run-{repeat}-{method}"
                print(f"[repeat {repeat + 1}/{args.repeats}] {label(method)} ...", end=" ", flush=True)
                result = launch(args, method, model_path, run_dir)
                result["repeat"] = repeat
                runs.append(result)
                steps = ", ".join(f"{t:.2f}" for t in result["step_times_s"])
                print(f"steps [{steps}] s, process {result['process_wall_s']:.1f} s", flush=True)

    summary = summarise(args, runs, methods)
    print_table(summary, runs, methods)

    import torch
    import transformers
    import trl

    report = {
        "benchmark": "EGSW overhead over GRPO (benchmarks/overhead.py)",
        "config": {
            "arch": args.arch,
            "completions_per_step": args.completions,
            "group_size": args.group_size,
            "prompts_per_step": args.completions // args.group_size,
            "max_completion_length": args.max_completion_length,
            "steps_per_run": args.steps,
            "warmup_steps_excluded_per_run": 1,
            "repeats": args.repeats,
            "methods": methods,
            "seed": args.seed,
            "profile": args.profile,
        },
        "environment": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "trl": trl.__version__,
            "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        },
        "summary": summary,
        "runs": runs,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {output}")
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--completions", type=int, default=8, help="completions per optimizer step (default 8)")
    parser.add_argument("--group-size", type=int, default=4, help="num_generations per prompt (default 4)")
    parser.add_argument("--max-completion-length", type=int, default=48, help="completion tokens (default 48)")
    parser.add_argument("--steps", type=int, default=3, help="optimizer steps per run, first is warm-up (default 3)")
    parser.add_argument("--repeats", type=int, default=3, help="alternated rounds of runs (default 3)")
    parser.add_argument("--arch", default="smollm2-135m", help="tiny_random architecture (default smollm2-135m)")
    parser.add_argument(
        "--modes", nargs="+", default=["step"], choices=EGSW_MODES, help="EGSW modes to compare with GRPO"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help=f"JSON summary (default {DEFAULT_OUTPUT})")
    parser.add_argument("--profile", action="store_true", help="count forward calls and time EGSW's parts")
    # Internal: one training run, started by the parent.
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--method", choices=("grpo", *EGSW_MODES), help=argparse.SUPPRESS)
    parser.add_argument("--model-path", help=argparse.SUPPRESS)
    parser.add_argument("--run-dir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.steps < 2:
        parser.error("--steps must be at least 2 (the first step of each run is warm-up)")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        result = run_worker(args)
        print(RESULT_MARKER + json.dumps(result), flush=True)
        return 0
    return run_parent(args)


if __name__ == "__main__":
    sys.exit(main())
