"""Step time and peak memory of TRL's GRPOTrainer against EGSWTrainer without and with share_prompt_forward.

What it measures
    Three trainers, side by side on the same recipe, seed and prompts, each in a fresh process (this script with
    ``--worker``), the methods alternated for ``--repeats`` rounds so that drift of a shared machine hits all alike:

    * ``trl``:    TRL's own ``GRPOTrainer`` (given the same config; it ignores the egsw_* fields);
    * ``plain``:  ``EGSWTrainer`` with ``share_prompt_forward=False``;
    * ``shared``: ``EGSWTrainer`` with ``share_prompt_forward=True`` (the default).

    The two EGSWTrainer runs train with ``--egsw-mode`` (default ``none``: GRPO, like TRL's run, so the ratios are
    the shared-prompt forward's alone; ``step`` adds EGSW's own cost, which ``benchmarks/overhead.py`` measures).

    Cases (``--cases``):

    * ``default``:    the default recipe (``egsw train``: bundled SmolLM2-135M-Instruct, 4 prompts x 4 completions of
      at most 40 tokens, procedural arithmetic, the accuracy and format rewards);
    * ``tiny-arith``: the tiny-arith recipe (8 prompts x 4, needs ``make testbed``; skipped if it is not built);
    * ``long``:       a random-initialised model of SmolLM2-135M's shape, prompts of 64 words, completions forced to
      512 tokens (``min_new_tokens``), 4 completions per prompt (``--long-prompts`` prompts a step).

    Step time: the whole optimizer step, generation included (between successive ``on_step_end`` callbacks); the
    first step of each run is warm-up and not counted. Reported: the median over all measured steps of a method,
    their min and max, and the ratio of TRL's median to the method's (> 1: faster than TRL). Peak memory: the
    worker's peak RSS on CPU (``ru_maxrss``), ``torch.cuda.max_memory_allocated`` on CUDA; the median over repeats
    and its ratio to TRL's (< 1: less than TRL). Also per step, medians: time in generation, in the log-prob
    forward passes (``_get_per_token_logps_and_entropies``: training, old policy, reference), in backward and in
    the optimizer step: the profile of a step.

    Targets (issue 17): ``default`` >= 2.0x faster than TRL, ``long`` never slower (>= 0.97x), peak memory <= 1.0x
    of TRL's in all cases. The script prints a table and writes JSON (``--output``); it exits 0 whether or not the
    targets are met, 1 if a run fails.

    bf16: the default recipe trains under bf16 autocast, which is fast only where the CPU has native bf16
    (AVX512-BF16/AMX) or on a GPU. ``--bf16 auto`` (default) keeps the recipe's value there and uses fp32 elsewhere
    (emulated bf16 matmuls are an order of magnitude slower and would measure the emulation); the table says which.

How to run (from the repository root)
    .venv/bin/python benchmarks/shared_prompt.py                        # all cases, 4 steps per run, 1 repeat
    .venv/bin/python benchmarks/shared_prompt.py --cases tiny-arith --steps 5 --repeats 2
    .venv/bin/python benchmarks/shared_prompt.py --cases long --long-prompts 1 --steps 3
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
DEFAULT_OUTPUT = Path("benchmarks") / "results" / "shared_prompt.json"
RESULT_MARKER = "EGSW_SHARED_PROMPT_RESULT "
METHODS = ("trl", "plain", "shared")
CASES = ("default", "tiny-arith", "long")
TARGET_SPEEDUP = {"default": 2.0, "long": 0.97}
TARGET_MEMORY_RATIO = 1.0
LONG_PROMPT_WORDS = 64
LONG_COMPLETION_TOKENS = 512
PHASES = ("generation", "logp_forward", "backward", "optimizer")


# ---- the worker: one training run in its own process ------------------------------------------------------------


def hash_length_reward(completions: list[Any], **kwargs: Any) -> list[float]:
    """Cheap and deterministic, with variance inside every group (the long case's random model has no task)."""
    texts = [c if isinstance(c, str) else json.dumps(c, sort_keys=True) for c in completions]
    return [(zlib.crc32(text.encode()) % 1000) / 1000.0 + 0.001 * len(text) for text in texts]


def native_bf16() -> bool:
    """Whether bf16 matmuls run natively here: a CUDA GPU, or a CPU with AVX512-BF16 or AMX (Linux flags)."""
    import torch

    if torch.cuda.is_available():
        return True
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def case_options(args: argparse.Namespace) -> tuple[str, list[str]]:
    """The model and the ``egsw train`` options of a case (the recipe of the model, then these overrides)."""
    common = ["--max_steps", str(args.steps), "--save_strategy", "no", "--report_to", "none", "--logging_steps", "1"]
    common += ["--eval_before", "false", "--eval_after", "false", "--disable_tqdm", "true"]
    if args.case == "default":
        return "smollm2-135m-instruct", common
    if args.case == "tiny-arith":
        return "tiny-arith", common
    long = ["--max_completion_length", str(LONG_COMPLETION_TOKENS)]
    long += ["--per_device_train_batch_size", str(4 * args.long_prompts), "--num_generations", "4"]
    long += ["--temperature", "1.0", "--learning_rate", "1e-6"]
    return args.model_path, common + long


def run_worker(args: argparse.Namespace) -> dict[str, Any]:
    """Builds the trainer of ``args.method`` for ``args.case``, trains ``args.steps`` steps, returns measurements."""
    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOTrainer

    from egsw import EGSWTrainer
    from egsw.run.options import parse
    from egsw.run.task_data import task_examples
    from egsw.run.training import load_policy
    from egsw.tasks.rewards import REWARD_FUNCTIONS

    torch.set_flush_denormal(True)
    cuda = torch.cuda.is_available()
    synchronize: Callable[[], None] = torch.cuda.synchronize if cuda else (lambda: None)
    model_name, options = case_options(args)
    options += ["--model_name_or_path", model_name, "--output_dir", args.run_dir, "--overwrite", "true"]
    options += ["--share_prompt_forward", str(args.method == "shared").lower(), "--egsw_mode", args.egsw_mode]
    options += [] if args.bf16 == "recipe" else ["--bf16", args.bf16]
    if cuda:
        options += ["--use_cpu", "false"]
    parsed = parse(options)
    training = parsed.training
    model, tokenizer = load_policy(model_name, parsed.model, training)
    if args.case == "long":
        training.generation_kwargs = {"min_new_tokens": LONG_COMPLETION_TOKENS}
        training.reward_weights = None  # one reward function here, not the recipe's two
        rng = random.Random(training.seed)
        vocab = [f"w{i}" for i in range(1000, 40000)]
        prompts = [" ".join(rng.choice(vocab) for _ in range(LONG_PROMPT_WORDS)) for _ in range(64)]
        dataset, rewards = Dataset.from_dict({"prompt": prompts}), [hash_length_reward]
    else:
        train_examples, _ = task_examples(parsed.script, training)
        dataset = Dataset.from_list([example.to_row() for example in train_examples])
        rewards = [REWARD_FUNCTIONS[name] for name in parsed.script.reward_funcs]

    phases = {name: 0.0 for name in PHASES}
    step_phases: list[dict[str, float]] = []

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.last: float | None = None
            self.step_times: list[float] = []
            self.optimizer_started = 0.0

        def on_step_begin(self, *unused: Any, **kwargs: Any) -> None:
            if self.last is None:
                synchronize()
                self.last = time.perf_counter()

        def on_pre_optimizer_step(self, *unused: Any, **kwargs: Any) -> None:
            synchronize()
            self.optimizer_started = time.perf_counter()

        def on_optimizer_step(self, *unused: Any, **kwargs: Any) -> None:
            synchronize()
            phases["optimizer"] += time.perf_counter() - self.optimizer_started

        def on_step_end(self, *unused: Any, **kwargs: Any) -> None:
            synchronize()
            now = time.perf_counter()
            assert self.last is not None
            self.step_times.append(now - self.last)
            self.last = now
            step_phases.append(dict(phases))
            phases.update({name: 0.0 for name in PHASES})

    trainer_class = GRPOTrainer if args.method == "trl" else EGSWTrainer
    timer = StepTimer()
    torch.manual_seed(training.seed)
    trainer = trainer_class(
        model=model, reward_funcs=rewards, args=training, train_dataset=dataset, processing_class=tokenizer,
        callbacks=[timer],
    )  # fmt: skip

    def timed(phase: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*inner: Any, **kwargs: Any) -> Any:
            synchronize()
            started = time.perf_counter()
            try:
                return function(*inner, **kwargs)
            finally:
                synchronize()
                phases[phase] += time.perf_counter() - started

        return wrapper

    trainer._generate_single_turn = timed("generation", trainer._generate_single_turn)  # type: ignore[method-assign]
    trainer._get_per_token_logps_and_entropies = timed(  # type: ignore[method-assign]
        "logp_forward", trainer._get_per_token_logps_and_entropies
    )
    trainer.accelerator.backward = timed("backward", trainer.accelerator.backward)  # type: ignore[method-assign]

    if cuda:
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    synchronize()
    logs = [entry for entry in trainer.state.log_history if "completions/mean_length" in entry]
    return {
        "case": args.case,
        "method": args.method,
        "device": "cuda" if cuda else "cpu",
        "bf16": bool(training.bf16),
        "step_times_s": timer.step_times,
        "step_phases_s": step_phases,
        "peak_rss_bytes": _peak_rss_bytes(),
        "cuda_max_memory_allocated_bytes": torch.cuda.max_memory_allocated() if cuda else None,
        "torch_threads": torch.get_num_threads(),
        "completion_mean_length": [entry["completions/mean_length"] for entry in logs],
        "fallbacks": sorted(getattr(trainer, "_egsw_shared_prompt_fallbacks", ())),
    }


def _peak_rss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024


# ---- the parent: alternate the runs, summarise ------------------------------------------------------------------


def launch(args: argparse.Namespace, case: str, method: str, model_path: Path, run_dir: Path) -> dict[str, Any]:
    command = [
        sys.executable, str(Path(__file__).resolve()), "--worker", "--case", case, "--method", method,
        "--model-path", str(model_path), "--run-dir", str(run_dir), "--steps", str(args.steps),
        "--bf16", args.bf16, "--long-prompts", str(args.long_prompts), "--egsw-mode", args.egsw_mode,
    ]  # fmt: skip
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "PYTHONHASHSEED": "0"}
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    started = time.perf_counter()
    process = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO_ROOT, check=False)
    lines = [line for line in process.stdout.splitlines() if line.startswith(RESULT_MARKER)]
    if process.returncode != 0 or not lines:
        sys.stderr.write(process.stdout[-4000:] + process.stderr[-8000:])
        raise SystemExit(f"worker for {case}/{method} failed (exit code {process.returncode})")
    result: dict[str, Any] = json.loads(lines[-1][len(RESULT_MARKER) :])
    result["process_wall_s"] = time.perf_counter() - started
    return result


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per case and method: step-time median/min/max, phase medians, peak memory; ratios to TRL."""
    summary: dict[str, Any] = {}
    for case in dict.fromkeys(run["case"] for run in runs):
        mine = [run for run in runs if run["case"] == case]
        memory_key = "cuda_max_memory_allocated_bytes" if mine[0]["device"] == "cuda" else "peak_rss_bytes"
        methods: dict[str, Any] = {}
        for method in METHODS:
            of_method = [run for run in mine if run["method"] == method]
            steps = [t for run in of_method for t in run["step_times_s"][1:]]
            phases = [p for run in of_method for p in run["step_phases_s"][1:]]
            methods[method] = {
                "measured_step_times_s": steps,
                "median_step_time_s": statistics.median(steps),
                "min_step_time_s": min(steps),
                "max_step_time_s": max(steps),
                "median_phase_s": {name: statistics.median(p[name] for p in phases) for name in PHASES},
                "median_peak_memory_bytes": statistics.median(run[memory_key] for run in of_method),
                "fallbacks": sorted({f for run in of_method for f in run["fallbacks"]}),
            }
        base = methods["trl"]
        for row in methods.values():
            row["speedup_vs_trl"] = base["median_step_time_s"] / row["median_step_time_s"]
            row["memory_ratio_vs_trl"] = row["median_peak_memory_bytes"] / base["median_peak_memory_bytes"]
        summary[case] = {"memory_metric": memory_key, "bf16": mine[0]["bf16"], "methods": methods}
    return summary


def print_table(summary: dict[str, Any]) -> None:
    mib = 1024.0**2
    header = f"{'case':<12}{'method':<8}{'median s':>10}{'min':>8}{'max':>8}{'n':>4}{'x TRL':>8}{'peak MiB':>10}"
    header += f"{'x TRL':>7}  | {'gen s':>7}{'logp fwd':>9}{'bwd':>7}{'optim':>7}"
    print()
    print(header)
    for case, data in summary.items():
        for method, row in data["methods"].items():
            phase = row["median_phase_s"]
            print(
                f"{case:<12}{method:<8}{row['median_step_time_s']:>10.2f}{row['min_step_time_s']:>8.2f}"
                f"{row['max_step_time_s']:>8.2f}{len(row['measured_step_times_s']):>4}{row['speedup_vs_trl']:>8.2f}"
                f"{row['median_peak_memory_bytes'] / mib:>10.0f}{row['memory_ratio_vs_trl']:>7.3f}  | "
                f"{phase['generation']:>7.2f}{phase['logp_forward']:>9.2f}{phase['backward']:>7.2f}"
                f"{phase['optimizer']:>7.2f}"
            )
    print(
        "(x TRL: TRL's median step time over the method's, > 1 is faster; peak memory over TRL's, < 1 is less."
        "\n phases: medians per measured step; the first step of each run is warm-up, not counted.)"
    )
    for case, data in summary.items():
        shared = data["methods"]["shared"]
        precision = "bf16 autocast" if data["bf16"] else "fp32"
        line = f"{case}: {precision}; shared {shared['speedup_vs_trl']:.2f}x TRL"
        if case in TARGET_SPEEDUP:
            ok = shared["speedup_vs_trl"] >= TARGET_SPEEDUP[case]
            line += f" (target >= {TARGET_SPEEDUP[case]:.2f}x: {'ok' if ok else 'BELOW TARGET'})"
        memory = shared["memory_ratio_vs_trl"]
        line += f"; peak memory {memory:.3f}x TRL (target <= {TARGET_MEMORY_RATIO:.1f}x: "
        line += f"{'ok' if memory <= TARGET_MEMORY_RATIO else 'ABOVE TARGET'})"
        if shared["fallbacks"]:
            line += f"; FELL BACK: {shared['fallbacks']}"
        print(line)


def tiny_arith_built() -> bool:
    from egsw.models import resolve_model

    try:
        return Path(resolve_model("tiny-arith").path).is_dir()
    except Exception:  # noqa: BLE001 - not built (or not resolvable): the case is skipped
        return False


def run_parent(args: argparse.Namespace) -> int:
    from egsw.models.tiny_random import save_random_model

    cases = list(args.cases)
    if "tiny-arith" in cases and not tiny_arith_built():
        print("tiny-arith is not built (`make testbed`): skipping that case")
        cases.remove("tiny-arith")
    output = args.output if args.output.is_absolute() else REPO_ROOT / args.output
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="egsw-shared-prompt-") as scratch:
        model_path = Path(scratch) / "smollm2-shape"
        if "long" in cases:
            save_random_model(model_path, architecture="smollm2-135m", seed=0)
        for case in cases:
            for repeat in range(args.repeats):
                for method in METHODS:
                    print(f"[{case} {repeat + 1}/{args.repeats}] {method} ...", end=" ", flush=True)
                    result = launch(args, case, method, model_path, Path(scratch) / f"{case}-{repeat}-{method}")
                    result["repeat"] = repeat
                    runs.append(result)
                    steps = ", ".join(f"{t:.2f}" for t in result["step_times_s"])
                    print(f"steps [{steps}] s, process {result['process_wall_s']:.0f} s", flush=True)
    summary = summarise(runs)
    print_table(summary)
    record = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "egsw_mode": args.egsw_mode,
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count()},
        "load_average_at_end": os.getloadavg(),
        "summary": summary,
        "runs": runs,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(record, indent=2) + "\n")
    print(f"\nwritten: {output.relative_to(REPO_ROOT) if output.is_relative_to(REPO_ROOT) else output}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument("--steps", type=int, default=4, help="optimizer steps per run; the first is warm-up")
    parser.add_argument("--repeats", type=int, default=1, help="rounds of (trl, plain, shared) per case")
    parser.add_argument("--bf16", choices=("auto", "recipe", "true", "false"), default="auto")
    parser.add_argument("--long-prompts", type=int, default=4, help="prompts per step in the long case (x4 each)")
    parser.add_argument(
        "--egsw-mode", choices=("none", "step", "trajectory"), default="none",
        help="egsw_mode of the two EGSWTrainer runs (TRL's GRPOTrainer is GRPO whatever it is): none compares GRPO "
        "with GRPO, so the ratio is the shared-prompt forward's alone; step adds EGSW's own cost (see overhead.py)",
    )  # fmt: skip
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch threads per worker (OMP_NUM_THREADS); 0: torch's default. On a machine shared with other work, "
        "1 avoids the stalls of threads that wait at every parallel region for a core another process holds",
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--case", choices=CASES, help=argparse.SUPPRESS)
    parser.add_argument("--method", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--model-path", default="", help=argparse.SUPPRESS)
    parser.add_argument("--run-dir", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.steps < 2:
        parser.error("--steps must be >= 2 (the first step is warm-up)")
    if args.worker:
        if args.bf16 == "auto":
            args.bf16 = "recipe" if native_bf16() else "false"
        print(RESULT_MARKER + json.dumps(run_worker(args)), flush=True)
        return 0
    return run_parent(args)


if __name__ == "__main__":
    sys.exit(main())
