"""``egsw eval``: a model on one or more evaluation sets; accuracy with its CI, pass@k, answer length.

    egsw eval --model smollm2-135m-instruct --sets procedural
    egsw eval --model runs/train-... --sets math500,aime24 --data-dir data/ --num-samples 8 --temperature 0.6 --k 1,8
    egsw eval --model NAME --sets my.jsonl --question-column q --answer-column a

Every input (options, sets, data files, the model name) is checked before the model is loaded.
Each set gets ``OUTPUT/<set>/results.json`` (the summary) and ``OUTPUT/<set>/samples.jsonl`` (one
line per completion: prompt, completion, extracted answer, correct); ``OUTPUT/summary.json``
holds all sets' summaries, and a table is printed at the end.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from egsw.commands.parsing import parser as one_line_parser
from egsw.errors import InputError
from egsw.models import BUNDLED_SMOLLM2, ModelNotFoundError, check_model_name
from egsw.run.model_eval import EvalOptions
from egsw.tasks import catalog, procedural

BACKENDS = ("transformers", "vllm")
# `egsw train` evaluates its held-out problems in batches of this size too (TrainScriptArguments).
DEFAULT_BATCH_SIZE = procedural.DEFAULT_EVAL_BATCH_SIZE
# Beside `egsw train`'s runs/train-<time> (runs/ is git-ignored).
DEFAULT_OUTPUT_ROOT = "runs/eval"


def build_parser() -> argparse.ArgumentParser:
    parser = one_line_parser(
        "egsw eval",
        "Evaluate a model: accuracy (pass@1, 95% CI), pass@k, completion length, unparsed answers.",
    )
    parser.add_argument(
        "--model",
        default=BUNDLED_SMOLLM2,
        help="a built-in name, a hub id, a local folder or an `egsw train` output (default: %(default)s)",
    )
    parser.add_argument(
        "--sets",
        default=catalog.PROCEDURAL,
        help=f"comma-separated: {', '.join(catalog.set_names())}, PRESET:SPLIT (math-lighteval:train) "
        f"or a local {'/'.join(catalog.FILE_SUFFIXES)} file (default: %(default)s)",
    )
    parser.add_argument(
        "--data-dir",
        help="offline copies of the presets: DIR/<preset>.jsonl|.parquet|.csv, or DIR/<preset>/ (or "
        "DIR/<owner>/<name>/) laid out as the Hub repository; without it presets load from the Hub",
    )
    parser.add_argument("--limit", type=int, help="evaluate only the first N problems of each set")
    generation = parser.add_argument_group("generation")
    generation.add_argument(
        "--backend", choices=BACKENDS, default="transformers", help="%(default)s (default) or vllm (needs `egsw[vllm]`)"
    )
    generation.add_argument("--num-samples", type=int, default=1, help="completions per problem (default: 1)")
    generation.add_argument("--temperature", type=float, default=0.0, help="0 is greedy (default); > 0 samples")
    generation.add_argument("--k", default=None, help="pass@k values, e.g. 1,4 (default: 1 and --num-samples)")
    generation.add_argument(
        "--max-new-tokens",
        type=int,
        help=f"tokens per completion (default per set: procedural {procedural.DEFAULT_MAX_NEW_TOKENS}, "
        f"presets {max(p.max_new_tokens for p in catalog.PRESETS.values())}, files {catalog.LOCAL_MAX_NEW_TOKENS})",
    )
    generation.add_argument(
        "--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="prompts per generate call (default: %(default)s)"
    )
    generation.add_argument("--seed", type=int, default=0, help="sampling seed (default: %(default)s)")
    generation.add_argument(
        "--dtype",
        choices=("float32", "bfloat16", "float16", "auto"),
        help="weights' dtype (default: float32; auto with --backend vllm)",
    )
    generation.add_argument(
        "--bf16",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="generate under bf16 autocast, weights kept in --dtype, as `egsw train` evaluates with bf16: true "
        "(default: on; --no-bf16 for full precision; ignored by vllm)",
    )
    generation.add_argument(
        "--device", default="auto", help="auto (default: cuda when available), cpu, cuda, cuda:1, ..."
    )
    generation.add_argument("--system-prompt", help="a system message put before every preset or file question")
    output = parser.add_argument_group("output")
    output.add_argument("--output", help=f"results folder (default: {DEFAULT_OUTPUT_ROOT}/<model>)")
    output.add_argument("--no-progress", action="store_true", help="no progress bars")
    local = parser.add_argument_group("local files (column mapping)")
    local.add_argument("--question-column", default="question", help="(default: %(default)s)")
    local.add_argument(
        "--answer-column",
        default="answer",
        help="the reference answer: for choice a letter or an option's text (default: %(default)s)",
    )
    local.add_argument("--solution-column", help="take the answer from this column's last \\boxed{} instead")
    local.add_argument("--options-columns", help="comma-separated option columns (or one list column): choice")
    local.add_argument("--id-column", help="a column of problem ids (default: row numbers)")
    local.add_argument("--kind", choices=("math", "choice"), help="default: choice with options, else math")
    local.add_argument("--shuffle-options", action="store_true", help="shuffle options per question (fixed seed)")
    local.add_argument("--prompt-template", help="user message with {question} (and {options}, {letters})")
    proc = parser.add_argument_group("procedural set (defaults: the held-out split `egsw train` evaluates)")
    proc.add_argument(
        "--procedural-size", type=int, default=procedural.DEFAULT_HELDOUT_SIZE, help="(default: %(default)s)"
    )
    proc.add_argument(
        "--procedural-seed", type=int, default=procedural.DEFAULT_HELDOUT_SEED, help="(default: %(default)s)"
    )
    proc.add_argument("--procedural-kinds", default=",".join(procedural.DEFAULT_KINDS), help="(default: %(default)s)")
    proc.add_argument(
        "--procedural-levels", default=",".join(map(str, procedural.DEFAULT_LEVELS)), help="(default: %(default)s)"
    )
    return parser


def _int_list(text: str, option: str) -> list[int]:
    try:
        values = [int(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise InputError(f"{option} takes comma-separated integers, got {text!r}") from None
    if not values:
        raise InputError(f"{option} needs at least one value")
    return values


def _model_slug(model: str) -> str:
    name = Path(model).name if Path(model).expanduser().exists() else model.replace("/", "--")
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name) or "model"


def parse_options(argv: Sequence[str]) -> EvalOptions:
    """Parse and check everything that can be checked without loading the model (sets are loaded)."""
    args = build_parser().parse_args(list(argv))
    for option, value, minimum in (
        ("--num-samples", args.num_samples, 1),
        ("--batch-size", args.batch_size, 1),
        ("--limit", args.limit, 1),
        ("--max-new-tokens", args.max_new_tokens, 1),
        ("--procedural-size", args.procedural_size, 1),
    ):
        if value is not None and value < minimum:
            raise InputError(f"{option} must be >= {minimum}, got {value}")
    if args.temperature < 0:
        raise InputError(f"--temperature must be >= 0, got {args.temperature}")
    if args.num_samples > 1 and args.temperature == 0:
        raise InputError(
            f"--num-samples {args.num_samples} needs --temperature > 0 (greedy decoding gives one answer); "
            "e.g. --temperature 0.6"
        )
    k_values = sorted(set(_int_list(args.k, "--k") if args.k else [1, args.num_samples]))
    bad_k = [k for k in k_values if not 1 <= k <= args.num_samples]
    if bad_k:
        raise InputError(f"--k {bad_k} out of range: pass@k needs 1 <= k <= --num-samples ({args.num_samples})")
    if args.backend == "vllm" and importlib.util.find_spec("vllm") is None:
        raise InputError("--backend vllm needs vllm: run `pip install 'egsw[vllm]'`, or use --backend transformers")
    try:
        check_model_name(args.model)
    except ModelNotFoundError as error:
        raise InputError(str(error)) from None
    if args.data_dir is not None and not Path(args.data_dir).is_dir():
        raise InputError(f"--data-dir {args.data_dir} is not a folder; pass the folder holding the presets' copies")
    output = Path(args.output) if args.output else Path(DEFAULT_OUTPUT_ROOT) / _model_slug(args.model)
    if output.exists() and not output.is_dir():
        raise InputError(f"--output {output} is a file; pass a folder")
    return EvalOptions(
        model=args.model,
        sets=load_sets(args),
        backend=args.backend,
        num_samples=args.num_samples,
        temperature=args.temperature,
        k_values=k_values,
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
        seed=args.seed,
        dtype=args.dtype,
        bf16=args.bf16,
        device=args.device,
        output=output,
        progress=not args.no_progress,
    )


def load_sets(args: argparse.Namespace) -> list[catalog.EvalSet]:
    """Every set named in ``--sets``, loaded now so a bad file or column fails before the model loads."""
    specs = [spec.strip() for spec in args.sets.split(",") if spec.strip()]
    if not specs:
        raise InputError(f"--sets names no set; choose from {', '.join(catalog.set_names())} or a file")
    columns = catalog.ColumnMapping(
        question=args.question_column,
        answer=None if args.solution_column else args.answer_column,
        solution=args.solution_column,
        options=tuple(c.strip() for c in args.options_columns.split(",") if c.strip()) if args.options_columns else (),
        id=args.id_column,
        kind=args.kind,
        shuffle_options=args.shuffle_options,
    )
    if args.prompt_template is not None and "{question}" not in args.prompt_template:
        raise InputError("--prompt-template must contain {question} (and {options} for multiple choice)")
    procedural_options = {
        "size": args.procedural_size,
        "seed": args.procedural_seed,
        "kinds": [kind.strip() for kind in args.procedural_kinds.split(",") if kind.strip()],
        "levels": _int_list(args.procedural_levels, "--procedural-levels"),
    }
    sets, names = [], set()
    for spec in specs:
        try:
            eval_set = catalog.load_eval_set(
                spec, data_dir=args.data_dir, columns=columns, template=args.prompt_template,
                system_prompt=args.system_prompt, limit=args.limit, procedural_options=procedural_options,
            )  # fmt: skip
        except catalog.CatalogError as error:
            raise InputError(str(error)) from None
        named = catalog.parse_set_spec(spec)[0] in catalog.set_names()  # "math-lighteval:train" -> its own folder
        base = re.sub(r"[^A-Za-z0-9._-]+", "-", spec if named else eval_set.name)
        name, index = base, 2
        while name in names:
            name, index = f"{base}-{index}", index + 1
        names.add(name)
        eval_set.name = name
        sets.append(eval_set)
    return sets


def main(argv: Sequence[str]) -> int:
    options = parse_options(argv)
    from egsw.run.model_eval import evaluate_model

    rows = evaluate_model(options, report=lambda line: print(line, file=sys.stderr, flush=True))
    print(format_table(rows, options.k_values))
    print(f"results in {options.output}/ (summary.json, <set>/results.json, <set>/samples.jsonl)")
    return 0


def _percent(value: float) -> str:
    return f"{100 * value:.1f}%"


def format_table(rows: Sequence[dict[str, Any]], k_values: Sequence[int]) -> str:
    """The results as an aligned text table: one line per set."""
    header = ["set", "problems", "samples", "accuracy [95% CI]"]
    header += [f"pass@{k}" for k in k_values] + ["mean len", "median len", "unparsed", "unscorable", "time"]
    lines = [header]
    for row in rows:
        line = [
            row["set"],
            str(row["num_problems"]),
            str(row["num_samples"]),
            f"{_percent(row['accuracy'])} [{_percent(row['accuracy_low'])}, {_percent(row['accuracy_high'])}]",
        ]
        line += [_percent(row["pass_at_k"][str(k)]) for k in k_values]
        line += [
            f"{row['mean_length']:.1f}",
            f"{row['median_length']:.1f}",
            _percent(row["unparsed_share"]),
            _percent(row["unscorable_share"]),
            f"{row['wall_time_s']:.0f}s",
        ]
        lines.append(line)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    aligned = [
        [
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(line, widths, strict=True))
        ]
        for line in lines
    ]
    return "\n".join("  ".join(line) for line in aligned)
