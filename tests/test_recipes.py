"""Every file in configs/ loads and validates: `egsw train --config ... --dry-run` for the recipes, accelerate's
own loader for its configs, a simulated SLURM for the batch script; and the math-lighteval task on the CPU."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from egsw.cli import main as egsw_main
from egsw.run.task_data import MATH_SYSTEM_PROMPT
from tests.helpers import run_egsw

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
ACCELERATE = CONFIGS / "accelerate"
VERL = CONFIGS / "verl"  # verl's Hydra recipes: tests/verl/test_recipes.py checks them, in .venv-verl
RECIPES = sorted(p for p in CONFIGS.rglob("*.yaml") if ACCELERATE not in p.parents and VERL not in p.parents)
PAPER_MODELS = {"qwen2.5-math-7b": "Qwen/Qwen2.5-Math-7B", "qwen2.5-math-7b-instruct": "Qwen/Qwen2.5-Math-7B-Instruct"}
METHODS = ("grpo", "egsw-step", "egsw-trajectory")


def recipe_id(path: Path) -> str:
    return str(path.relative_to(CONFIGS))


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def dry_run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = egsw_main(["train", *args, "--dry-run"])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_configs_folder_holds_what_the_readme_promises() -> None:
    names = {recipe_id(path) for path in CONFIGS.rglob("*") if path.is_file()}
    for folder in PAPER_MODELS:
        for method in METHODS:
            assert {f"{folder}/{method}.yaml", f"{folder}/{method}-server.yaml"} <= names
    assert {
        "accelerate/zero3-1node-8gpu.yaml",
        "accelerate/zero3-multinode.yaml",
        "slurm/egsw-multinode.sbatch",
    } <= names
    assert any(name.startswith("lora/") for name in names) and "smollm2-cpu.yaml" in names


@pytest.mark.parametrize("recipe", RECIPES, ids=recipe_id)
def test_every_recipe_passes_the_dry_run(recipe: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    status, out, err = dry_run(capsys, "--config", str(recipe), "--output_dir", str(tmp_path / "run"))
    assert status == 0, err
    options, _, summary = out.partition("egsw train --dry-run: nothing loaded, nothing written")
    resolved = yaml.safe_load(options)
    config = load(recipe)
    declared = config.get("num_processes", 1)
    assert f"processes   {declared} (" in summary
    per_step = config["per_device_train_batch_size"] * config.get("gradient_accumulation_steps", 1) * declared
    assert f"= {per_step} completions per optimizer step = {per_step // config['num_generations']} prompts" in summary
    for key, value in config.items():  # the resolved options are the recipe's (lists of one item aside)
        if key not in ("lora_target_modules",):
            assert resolved[key] == value, key
    assert not (tmp_path / "run").exists()


def test_dry_run_imports_no_vllm_or_deepspeed_and_touches_no_gpu() -> None:
    script = f"""
import json, sys, torch
def refusing(name):
    def refuse(*args, **kwargs):
        raise SystemExit(f"a dry run called torch.cuda.{{name}}")
    return refuse
for name in ("is_available", "device_count", "init", "current_device", "set_device"):
    setattr(torch.cuda, name, refusing(name))
from egsw.cli import main
status = main(["train", "--config", {str(CONFIGS / "qwen2.5-math-7b" / "egsw-step.yaml")!r}, "--dry-run"])
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("vllm", "deepspeed", "flash_attn"))
print(json.dumps({{"status": status, "heavy": heavy, "cuda": torch.cuda.is_initialized()}}))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"status": 0, "heavy": [], "cuda": False}


@pytest.mark.parametrize("folder", PAPER_MODELS)
def test_paper_recipes_differ_only_where_they_should(folder: str) -> None:
    recipes = {path.stem: load(path) for path in (CONFIGS / folder).glob("*.yaml")}
    for suffix in ("", "-server"):
        grpo = recipes[f"grpo{suffix}"]
        assert grpo["egsw_mode"] == "none"
        for method in ("egsw-step", "egsw-trajectory"):
            egsw = recipes[f"{method}{suffix}"]
            assert egsw["egsw_mode"] == method.split("-")[1]
            changed = {key for key in grpo.keys() | egsw.keys() if grpo.get(key) != egsw.get(key)}
            assert changed and all(key.startswith("egsw_") for key in changed), changed
    for method in METHODS:
        colocate, server = recipes[method], recipes[f"{method}-server"]
        changed = {key for key in colocate.keys() | server.keys() if colocate.get(key) != server.get(key)}
        assert changed - {"num_processes"} and all(key.startswith("vllm_") for key in changed - {"num_processes"})
        assert (colocate["vllm_mode"], server["vllm_mode"], colocate["num_processes"]) == ("colocate", "server", 8)
    for recipe in recipes.values():
        assert recipe["model_name_or_path"] == PAPER_MODELS[folder]
        assert recipe["system_prompt"] == MATH_SYSTEM_PROMPT and recipe["task"] == "math-lighteval"
        assert (recipe["bf16"], recipe["gradient_checkpointing"], recipe["use_vllm"]) == (True, True, True)
        assert recipe["reward_funcs"] == ["accuracy", "think_format"]
    other = next(name for name in PAPER_MODELS if name != folder)
    for name, recipe in recipes.items():
        twin = load(CONFIGS / other / f"{name}.yaml")
        assert {key for key in recipe if recipe[key] != twin.get(key)} == {"model_name_or_path"}


def test_accelerate_configs_load_and_match_the_recipes() -> None:
    from accelerate.commands.config.config_args import load_config_from_file

    one_node = load_config_from_file(str(ACCELERATE / "zero3-1node-8gpu.yaml"))
    several = load_config_from_file(str(ACCELERATE / "zero3-multinode.yaml"))
    for config in (one_node, several):
        assert config.distributed_type == "DEEPSPEED" and config.mixed_precision == "bf16"
        assert config.deepspeed_config["zero_stage"] == 3 and config.deepspeed_config["zero3_save_16bit_model"]
        assert config.num_processes == 8 * config.num_machines
    assert one_node.num_machines == 1 and several.num_machines > 1
    assert load(CONFIGS / "qwen2.5-math-7b" / "egsw-step.yaml")["num_processes"] == one_node.num_processes


def fake_slurm(bin_dir: Path, srun_body: str) -> None:
    """``scontrol`` (hostnames, and requeue written to $LOG), ``srun`` as given, ``accelerate`` that echoes."""
    bin_dir.mkdir()
    fakes = {
        "scontrol": 'if [ "$1" = requeue ]; then echo "requeue $2" >> "$LOG"; '
        'else printf "node-a\\nnode-b\\nnode-c\\n" | head -n "$NODES"; fi',
        "srun": srun_body,
        "accelerate": 'echo "accelerate $*"',
    }
    for name, body in fakes.items():
        (bin_dir / name).write_text(f"#!/bin/bash\n{body}\n")
        (bin_dir / name).chmod(0o755)


def slurm_env(bin_dir: Path, nodes: int, log: Path) -> dict[str, str]:
    return os.environ | {
        "PATH": f"{bin_dir}:{os.environ['PATH']}", "NODES": str(nodes), "SLURM_JOB_NUM_NODES": str(nodes),
        "SLURM_JOB_NODELIST": "node-[a-c]", "SLURM_JOB_ID": "4242", "LOG": str(log),
    }  # fmt: skip


SLURM_SCRIPT = CONFIGS / "slurm" / "egsw-multinode.sbatch"
SLURM_ARGS = [str(SLURM_SCRIPT), "configs/qwen2.5-math-7b/egsw-step.yaml", "runs/x", "--max_steps", "5"]


def test_slurm_script_launches_every_node_with_its_rank_and_resume_auto(tmp_path: Path) -> None:
    fake_slurm(
        tmp_path / "bin",
        'while [[ "$1" == --* ]]; do shift; done\nfor id in $(seq 0 $((NODES - 1))); do SLURM_NODEID=$id "$@"; done',
    )
    assert subprocess.run(["bash", "-n", str(SLURM_SCRIPT)]).returncode == 0
    text = SLURM_SCRIPT.read_text()
    assert "#SBATCH --requeue" in text and "#SBATCH --signal=B:TERM@" in text

    def launch(nodes: int) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", *SLURM_ARGS], cwd=ROOT, env=slurm_env(tmp_path / "bin", nodes, tmp_path / "log"),
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    two = launch(2)
    assert two.returncode == 0, two.stderr
    lines = two.stdout.strip().splitlines()
    assert len(lines) == 2
    for rank, line in enumerate(lines):
        assert f"--num_machines 2 --num_processes 16 --machine_rank {rank} --main_process_ip node-a" in line
        assert line.endswith(
            "-m egsw.cli train --num_processes 16 --gradient_accumulation_steps 8 "
            "--config configs/qwen2.5-math-7b/egsw-step.yaml --output_dir runs/x --resume auto --max_steps 5"
        )
    assert not (tmp_path / "log").exists(), "a run that ends by itself is not requeued"
    three = launch(3)
    assert three.returncode == 2 and "cannot be split over 24 GPUs" in three.stderr


def test_slurm_script_forwards_sigterm_to_the_training_then_requeues(tmp_path: Path) -> None:
    # The training stands in for srun: it records the SIGTERM it receives and exits as egsw train does.
    fake_slurm(
        tmp_path / "bin",
        'trap \'echo "training got TERM" >> "$LOG"; exit 143\' TERM\n'
        'echo started >> "$LOG"\nsleep 60 >/dev/null 2>&1 & wait $!',
    )
    log = tmp_path / "log"
    job = subprocess.Popen(
        ["bash", *SLURM_ARGS], cwd=ROOT, env=slurm_env(tmp_path / "bin", 2, log),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not (log.exists() and "started" in log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    job.send_signal(signal.SIGTERM)  # what --signal=B:TERM delivers to the batch script
    _, err = job.communicate(timeout=60)
    assert job.returncode == 143, err
    assert log.read_text().splitlines() == ["started", "training got TERM", "requeue 4242"]


# ---- the dry run's checks ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--num_generations", "7"], "num_generations (7)"),
        (["--vllm_tensor_parallel_size", "3"], "vllm_tensor_parallel_size=3 must divide the 8 processes"),
        (["--max_completion_length", "4096"], "leaves no room for the prompt"),
        (["--data_dir", "{empty}"], "no local copy in"),
        (["--num_processes", "0"], "num_processes must be"),
        (["--resume_from_checkpoint", "x"], "pass --resume"),
    ],
)
def test_dry_run_refuses_a_bad_layout_in_one_line(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    args = [arg.format(empty=tmp_path) for arg in args]
    recipe = str(CONFIGS / "qwen2.5-math-7b" / "egsw-step.yaml")
    status, _, err = dry_run(capsys, "--config", recipe, *args)
    lines = err.strip().splitlines()
    assert status == 2 and len(lines) == 1 and message in lines[0], err


def test_dry_run_checks_for_the_declared_processes(capsys: pytest.CaptureFixture[str]) -> None:
    recipe = str(CONFIGS / "qwen2.5-math-7b" / "egsw-step.yaml")
    # 8 per process x 1 step x 1 process is not a multiple of 16; on the 16 processes of two nodes it is.
    args = ["--config", recipe, "--num_generations", "16", "--gradient_accumulation_steps", "1"]
    status, _, err = dry_run(capsys, *args, "--num_processes", "1")
    assert status == 2 and "num_generations" in err
    status, out, _ = dry_run(capsys, *args, "--num_processes", "16")
    assert status == 0 and "processes   16 (--num_processes)" in out and "= 128 completions per optimizer step" in out


def test_dry_run_with_a_local_copy_and_resume(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    recipe = str(CONFIGS / "lora" / "qwen2.5-math-1.5b-egsw-step-1gpu-24gb.yaml")
    status, out, err = dry_run(capsys, "--config", recipe, "--data_dir", str(FIXTURES), "--output_dir", "/tmp/x")
    assert status == 0, err
    assert f"from {FIXTURES}" in out and "LoRA r=64 alpha=128" in out
    run = tmp_path / "run"
    (run / "checkpoint-4").mkdir(parents=True)
    (run / "checkpoint-4" / "trainer_state.json").write_text('{"global_step": 4}')
    (run / "checkpoint-4" / ".egsw-complete").write_text("{}")
    (run / "config.yaml").write_text(Path(recipe).read_text())
    status, out, err = dry_run(capsys, "--resume", "--output_dir", str(run))
    assert status == 0, err
    assert "resume from checkpoint-4 (step 4)" in out and "Qwen2.5-Math-1.5B" in out


# ---- the math-lighteval task ------------------------------------------------------------------------------


@pytest.mark.slow
def test_math_lighteval_task_trains_from_a_local_copy(tmp_path: Path) -> None:
    args = [
        "--model_name_or_path", "tiny-random", "--task", "math-lighteval", "--data_dir", str(FIXTURES),
        "--max_steps", "1", "--bf16", "false", "--max_completion_length", "8", "--per_device_train_batch_size", "8",
        "--num_generations", "4", "--heldout_size", "2", "--eval_max_new_tokens", "4", "--eval_after", "false",
        "--report_to", "none", "--output_dir", "run",
    ]  # fmt: skip
    result = run_egsw("train", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "run"
    evaluation = json.loads((run / "eval.json").read_text())
    assert evaluation["before"]["num_problems"] == 2  # held out: MATH's test split
    assert [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()][0] == 1
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["task"] == "math-lighteval" and saved["model_name_or_path"] == "tiny-random"
    assert "resume" not in saved and "generation_batch_size" not in saved


def test_math_lighteval_prompts_carry_the_system_prompt_and_the_boxed_answer() -> None:
    from egsw.run.options import parse
    from egsw.run.task_data import task_examples

    parsed = parse(["--model_name_or_path", "tiny-random", "--task", "math-lighteval", "--data_dir", str(FIXTURES)])
    script_args, training_args = parsed.script, parsed.training
    train, heldout = task_examples(script_args, training_args)
    assert len(train) == 2 and len(heldout) == 3
    assert train[0].prompt[0] == {"role": "system", "content": MATH_SYSTEM_PROMPT}
    assert train[0].answer == "56" and "\\boxed{}" in train[0].prompt[1]["content"]
    assert {e.meta["question"] for e in train}.isdisjoint({e.meta["question"] for e in heldout})


def test_procedural_task_refuses_math_options(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = dry_run(capsys, "--model_name_or_path", "tiny-random", "--data_dir", "somewhere")
    assert status == 2 and "apply to --task math-lighteval" in err
