"""``egsw score``: score completions another system produced, with the training reward's verifier.

    egsw score --input completions.jsonl [--output scored.jsonl] [--timeout 1.0]

Each input line is a JSON object with ``completion`` (a string, or a list of chat messages) and
``answer`` (the reference), and optionally ``kind`` ("math", the default, or "choice" for a
multiple-choice letter) and ``id``. Every line is checked before anything is scored. Each line is
written back, all its fields kept, with ``correct`` (true, false, or null when it could not be
scored in time) and ``extracted`` (the answer read from the completion, or null); the accuracy is
printed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from egsw.commands.parsing import parser as one_line_parser
from egsw.errors import InputError
from egsw.stats import wilson_interval
from egsw.tasks.rewards import ANSWER_KINDS, DEFAULT_TIMEOUT_S, Verifier, completion_text


def build_parser() -> argparse.ArgumentParser:
    parser = one_line_parser(
        "egsw score",
        "Score completions from a JSONL file (completion, answer[, kind, id]) with egsw's verifier.",
    )
    parser.add_argument("--input", required=True, help="JSONL file: one {completion, answer[, kind, id]} per line")
    parser.add_argument("--output", help="scored JSONL to write (default: INPUT with .scored.jsonl)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help="seconds per completion before it is unscorable (default: %(default)s)",
    )
    return parser


def read_items(path: Path) -> list[dict[str, Any]]:
    """The input lines, each checked: a JSON object with a completion, an answer and a known kind."""
    if not path.is_file():
        raise InputError(f"--input {path}: no such file")
    items = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"--input {path}: cannot read it ({type(error).__name__}: {error})") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path} line {number}"
        try:
            item = json.loads(line)
        except json.JSONDecodeError as error:
            raise InputError(f"{where}: not valid JSON ({error.msg}); each line must be one JSON object") from None
        if not isinstance(item, dict):
            raise InputError(f"{where}: a {type(item).__name__}, not a JSON object with completion and answer")
        missing = [key for key in ("completion", "answer") if key not in item]
        if missing:
            found = ", ".join(item) or "none"
            raise InputError(f"{where}: no {' or '.join(missing)} field (fields found: {found})")
        try:
            completion_text(item["completion"])
        except TypeError:
            raise InputError(f"{where}: completion must be a string or a list of chat messages") from None
        if item["answer"] is None or isinstance(item["answer"], (dict, list)):
            raise InputError(f"{where}: answer must be a string or a number, got {json.dumps(item['answer'])}")
        kind = item.get("kind", "math")
        if kind not in ANSWER_KINDS:
            raise InputError(f"{where}: unknown kind {kind!r}; choose from {', '.join(ANSWER_KINDS)}")
        items.append(item)
    if not items:
        raise InputError(f"--input {path}: holds no lines to score")
    return items


def default_output(path: Path) -> Path:
    """``answers.jsonl`` -> ``answers.scored.jsonl`` beside it."""
    return path.with_name(f"{path.name.removesuffix('.jsonl')}.scored.jsonl")


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    if not args.timeout > 0:
        raise InputError(f"--timeout must be > 0 seconds, got {args.timeout}")
    path = Path(args.input)
    output = Path(args.output) if args.output else default_output(path)
    if output.resolve() == path.resolve():
        raise InputError(f"--output {output} is the input file; pass another path")
    if output.is_dir():
        raise InputError(f"--output {output} is a folder; pass a file path")
    items = read_items(path)

    verifier = Verifier(timeout_s=args.timeout)
    try:
        scores = verifier.score(
            [completion_text(item["completion"]) for item in items],
            [str(item["answer"]) for item in items],
            [item.get("kind", "math") for item in items],
        )
    finally:
        verifier.close()
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("w", encoding="utf-8") as handle:
        for item, score in zip(items, scores, strict=True):
            handle.write(json.dumps({**item, "correct": score.correct, "extracted": score.extracted}) + "\n")

    print(summarize(items, scores))
    print(f"wrote {output}", file=sys.stderr)
    return 0


def summarize(items: Sequence[dict[str, Any]], scores: Sequence[Any]) -> str:
    """One line per kind present and one for all: accuracy with its 95% interval, unparsed, unscorable."""
    groups: dict[str, list[Any]] = {"all": list(scores)}
    kinds = sorted({item.get("kind", "math") for item in items})
    if len(kinds) > 1:
        for kind in kinds:
            groups[kind] = [s for item, s in zip(items, scores, strict=True) if item.get("kind", "math") == kind]
    lines = []
    for name, group in groups.items():
        correct = sum(bool(s.correct) for s in group)
        low, high = wilson_interval(correct, len(group))
        unparsed = sum(s.extracted is None for s in group)  # as in EvalResult: unscorable ones too
        unscorable = sum(s.correct is None for s in group)
        lines.append(
            f"{name}: accuracy {100 * correct / len(group):.1f}% [{100 * low:.1f}%, {100 * high:.1f}%] "
            f"({correct}/{len(group)} correct); unparsed {unparsed}, unscorable {unscorable}"
        )
    return "\n".join(lines)
