"""Named evaluation sets, local files and the procedural held-out split, as lists of ``Example``.

Three sources, one result (``EvalSet``):

- ``procedural``: the held-out split of the procedural task, offline. Its defaults are the
  constants ``egsw train`` evaluates with (``egsw.tasks.procedural.DEFAULT_*``), so both measure
  the same problems.
- a local ``.jsonl``, ``.json``, ``.parquet`` or ``.csv`` file, read through a ``ColumnMapping``
  (question, answer, and for multiple choice the option columns).
- presets (``PRESETS``) with each data set's real schema and a prompt template: ``math500``,
  ``aime24``, ``gpqa-diamond`` and ``math-lighteval``. They load through ``datasets`` from the
  Hugging Face Hub, or from a local copy under ``data_dir`` laid out as follows (the first that
  exists is read)::

      DATA_DIR/<preset>.jsonl | .json | .parquet | .csv     one file in the preset's schema
      DATA_DIR/<preset>/<file as in the Hub repository>      e.g. math500/test.jsonl
      DATA_DIR/<owner>/<name>/<file as in the Hub repository> e.g. HuggingFaceH4/MATH-500/test.jsonl

  so ``hf download --repo-type dataset HuggingFaceH4/MATH-500 --local-dir DATA_DIR/math500``
  makes a copy that works offline. ``PRESETS[name].local_files`` lists the files looked for, per
  split (a single ``<preset>.jsonl`` file serves whichever split is asked for). Without a network
  the Hub is not waited for (a quick probe fails at once); ``HF_HUB_OFFLINE=1`` reads the
  ``datasets`` cache instead.

Every error is a ``CatalogError`` with one line naming the file, the column and what was found.
"""

from __future__ import annotations

import csv
import fnmatch
import json
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from egsw.hub import hub_reachable, offline_mode
from egsw.tasks import procedural
from egsw.tasks.examples import Example, Messages
from egsw.tasks.rewards import CHOICE_LETTERS, last_boxed

PROCEDURAL = "procedural"
FILE_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv")
OPTION_SHUFFLE_SEED = 0
LOCAL_MAX_NEW_TOKENS = 1024

MATH_TEMPLATE = "{question}\nPlease reason step by step, and put your final answer within \\boxed{}."
CHOICE_TEMPLATE = (
    "Answer the following multiple-choice question. Think step by step, then give your final answer "
    "on the last line in the form 'Answer: LETTER', where LETTER is one of {letters}.\n\n{question}\n\n{options}"
)


class CatalogError(ValueError):
    """An evaluation set that cannot be loaded: one line naming the file, the column and the fix."""


@dataclass(frozen=True)
class ColumnMapping:
    """Which columns of a table hold what.

    ``answer`` is the reference: for math any expression math-verify reads; for multiple choice a
    letter or the text of one option. Without ``answer``, ``solution`` gives it: its last
    ``\\boxed{}``. ``options`` (multiple choice) are the option columns in order, or one column
    holding a list; ``shuffle_options`` shuffles them per question with a fixed seed (needed when
    the correct option always comes first, as in GPQA). ``kind`` is "math" or "choice"; None
    means "choice" when there are options, else "math".
    """

    question: str = "question"
    answer: str | None = "answer"
    solution: str | None = None
    options: tuple[str, ...] = ()
    id: str | None = None
    kind: str | None = None
    shuffle_options: bool = False

    @property
    def resolved_kind(self) -> str:
        return self.kind or ("choice" if self.options else "math")

    def required(self) -> list[str]:
        """The columns every row must have."""
        columns = [self.question, self.answer or self.solution, *self.options]
        return [column for column in columns if column is not None]


@dataclass(frozen=True)
class Preset:
    """A published evaluation set: where it lives, its schema, and how it is asked."""

    name: str
    hub_id: str
    hub_config: str | None
    split: str
    columns: ColumnMapping
    template: str
    # Files of the Hub repository, per split, as glob patterns relative to its root.
    local_files: dict[str, tuple[str, ...]]
    max_new_tokens: int
    description: str
    access_note: str = ""

    @property
    def splits(self) -> tuple[str, ...]:
        return tuple(self.local_files)


PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset(
            name="math500",
            hub_id="HuggingFaceH4/MATH-500",
            hub_config=None,
            split="test",
            columns=ColumnMapping(question="problem", answer="answer", id="unique_id"),
            template=MATH_TEMPLATE,
            local_files={"test": ("test.jsonl", "data/test-*.parquet")},
            max_new_tokens=2048,
            description="500 MATH competition problems (Lightman et al.'s subset); answer: a LaTeX expression",
        ),
        Preset(
            name="aime24",
            hub_id="HuggingFaceH4/aime_2024",
            hub_config=None,
            split="train",
            columns=ColumnMapping(question="problem", answer="answer", id="id"),
            template=MATH_TEMPLATE,
            local_files={"train": ("data/train-*.parquet",)},
            max_new_tokens=2048,
            description="the 30 AIME 2024 problems (I and II); answer: an integer 0-999",
        ),
        Preset(
            name="gpqa-diamond",
            hub_id="Idavidrein/gpqa",
            hub_config="gpqa_diamond",
            split="train",
            columns=ColumnMapping(
                question="Question",
                answer="Correct Answer",
                options=("Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3"),
                id="Record ID",
                kind="choice",
                shuffle_options=True,
            ),
            template=CHOICE_TEMPLATE,
            local_files={"train": ("gpqa_diamond.csv",)},
            max_new_tokens=2048,
            description="198 graduate-level science questions, 4 options shuffled with a fixed seed; answer: a letter",
            access_note="gated: accept its terms on huggingface.co/datasets/Idavidrein/gpqa, then `hf auth login`",
        ),
        Preset(
            name="math-lighteval",
            hub_id="DigitalLearningGmbH/MATH-lighteval",
            hub_config=None,
            split="test",
            columns=ColumnMapping(question="problem", answer=None, solution="solution"),
            template=MATH_TEMPLATE,
            local_files={"train": ("data/train-*.parquet",), "test": ("data/test-*.parquet",)},
            max_new_tokens=2048,
            description="MATH, 7,500 train and 5,000 test problems; answer: the last box of the solution",
        ),
    )
}


@dataclass
class EvalSet:
    """An evaluation set ready to run: its examples, where they came from, and its generation budget."""

    name: str
    examples: list[Example]
    source: str
    max_new_tokens: int
    skipped: int = 0
    meta: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# The procedural held-out split


def load_procedural(
    size: int | None = None,
    seed: int | None = None,
    kinds: Sequence[str] | None = None,
    levels: Sequence[int] | None = None,
    limit: int | None = None,
) -> EvalSet:
    """The procedural held-out problems; every option left None is ``egsw train``'s default."""
    size = procedural.DEFAULT_HELDOUT_SIZE if size is None else size
    seed = procedural.DEFAULT_HELDOUT_SEED if seed is None else seed
    kinds = tuple(procedural.DEFAULT_KINDS if kinds is None else kinds)
    levels = tuple(procedural.DEFAULT_LEVELS if levels is None else levels)
    if size < 1:
        raise CatalogError(f"the procedural set needs a size >= 1, got {size}")
    try:
        procedural.check_task_options(kinds, levels, "heldout")
        examples = procedural.procedural_examples(min(size, limit or size), "heldout", seed, kinds, levels)
    except ValueError as error:
        raise CatalogError(f"procedural set: {error}") from None
    return EvalSet(
        name=PROCEDURAL,
        examples=examples,
        source=f"procedural held-out split (size {size}, seed {seed}, kinds {','.join(kinds)}, "
        f"levels {','.join(map(str, levels))})",
        max_new_tokens=procedural.DEFAULT_MAX_NEW_TOKENS,
        meta={"size": size, "seed": seed, "kinds": list(kinds), "levels": list(levels)},
    )


# ---------------------------------------------------------------------------------------------
# Reading tables


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a ``.jsonl``, ``.json`` (a list of objects), ``.parquet`` or ``.csv`` file."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FILE_SUFFIXES:
        raise CatalogError(f"{path}: unknown file type {suffix!r}; use one of {', '.join(FILE_SUFFIXES)}")
    if not path.is_file():
        raise CatalogError(f"{path}: no such file")
    try:
        if suffix == ".jsonl":
            return _read_jsonl(path)
        if suffix == ".json":
            rows = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
                raise CatalogError(f"{path}: a .json file must hold a list of objects; use .jsonl for one per line")
            return rows
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path).to_pylist()
        with path.open(newline="", encoding="utf-8-sig") as handle:
            return list(csv.DictReader(handle))
    except CatalogError:
        raise
    except Exception as error:  # noqa: BLE001 - any reader failure is one line naming the file
        message = " ".join(str(error).split())[:200]
        raise CatalogError(f"{path}: cannot read it as {suffix[1:]} ({type(error).__name__}: {message})") from None


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise CatalogError(f"{path}: line {number} is not valid JSON ({error.msg})") from None
            if not isinstance(row, dict):
                raise CatalogError(f"{path}: line {number} is a {type(row).__name__}, not a JSON object")
            rows.append(row)
    return rows


def _check_columns(rows: list[dict[str, Any]], columns: ColumnMapping, where: str, fix: str) -> None:
    if not rows:
        raise CatalogError(f"{where}: holds no rows")
    found = list(rows[0])
    for column in columns.required():
        if column not in found:
            raise CatalogError(f"{where}: no column {column!r} (columns found: {', '.join(found) or 'none'}); {fix}")


def _text(value: Any) -> str:  # noqa: ANN401 - a table cell
    return "" if value is None else str(value).strip()


def _render_options(options: Sequence[str]) -> str:
    return "\n".join(f"{CHOICE_LETTERS[index]}) {option}" for index, option in enumerate(options))


def render_prompt(
    template: str, question: str, options: Sequence[str] = (), system_prompt: str | None = None
) -> Messages:
    """Chat messages for one question: ``template`` with ``{question}``, ``{options}``, ``{letters}`` filled.

    Plain replacement, not ``str.format``, so templates may hold LaTeX braces (``\\boxed{}``).
    """
    letters = CHOICE_LETTERS[: len(options)]
    letter_list = ", ".join(letters[:-1]) + f" or {letters[-1]}" if len(letters) > 1 else letters
    content = (
        template.replace("{question}", question)
        .replace("{options}", _render_options(options))
        .replace("{letters}", letter_list)
    )
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return messages + [{"role": "user", "content": content}]


def rows_to_examples(
    rows: list[dict[str, Any]],
    columns: ColumnMapping,
    *,
    name: str,
    where: str,
    template: str | None = None,
    system_prompt: str | None = None,
    fix: str = "pass the right column names",
) -> tuple[list[Example], int]:
    """Turn table rows into examples; returns them and the number of rows skipped (no answer)."""
    kind = columns.resolved_kind
    if kind not in ("math", "choice"):
        raise CatalogError(f"{where}: unknown answer kind {kind!r}; choose math or choice")
    if len(columns.options) > len(CHOICE_LETTERS):
        raise CatalogError(f"{where}: {len(columns.options)} option columns; at most {len(CHOICE_LETTERS)}")
    _check_columns(rows, columns, where, fix)
    template = template or (CHOICE_TEMPLATE if kind == "choice" else MATH_TEMPLATE)
    examples, skipped = [], 0
    for index, row in enumerate(rows):
        row_id = _text(row.get(columns.id)) if columns.id else ""
        row_id = row_id or f"{name}-{index}"
        question = _text(row.get(columns.question))
        if columns.answer is not None:
            answer = _text(row.get(columns.answer))
        else:
            answer = last_boxed(_text(row.get(columns.solution))) or ""
        if not question or not answer:
            skipped += 1
            continue
        options: list[str] = []
        if kind == "choice" and columns.options:
            options, answer = _choice(row, columns, answer, row_id, f"{where}: row {index + 1} ({row_id})")
        elif kind == "choice":
            answer = answer.upper()
            if answer not in CHOICE_LETTERS:
                raise CatalogError(f"{where}: row {index + 1} ({row_id}) has answer {answer!r}, not an option letter")
        meta = {"question": question, "source": where, "row": index}
        if options:
            meta["options"] = options
        prompt = render_prompt(template, question, options, system_prompt)
        examples.append(Example(id=row_id, prompt=prompt, answer=answer, kind=kind, meta=meta))
    if not examples:
        raise CatalogError(f"{where}: none of its {len(rows)} rows has both a question and an answer; {fix}")
    ids = [example.id for example in examples]
    if len(set(ids)) != len(ids):
        examples = [replace(example, id=f"{example.id}#{index}") for index, example in enumerate(examples)]
    return examples, skipped


def _choice(row: dict[str, Any], columns: ColumnMapping, answer: str, row_id: str, where: str) -> tuple[list[str], str]:
    """The options of a multiple-choice row (shuffled if asked) and the correct one's letter."""
    if len(columns.options) == 1:
        value = row.get(columns.options[0])
        if hasattr(value, "tolist"):
            value = value.tolist()
        if not isinstance(value, list):
            raise CatalogError(f"{where}: column {columns.options[0]!r} should hold a list of options")
        options = [_text(option) for option in value]
    else:
        options = [_text(row.get(column)) for column in columns.options]
    if len(options) < 2 or len(options) > len(CHOICE_LETTERS):
        raise CatalogError(f"{where}: {len(options)} options; a question needs 2 to {len(CHOICE_LETTERS)}")
    if answer in options:
        correct = options.index(answer)
    elif len(answer) == 1 and answer.upper() in CHOICE_LETTERS[: len(options)]:
        correct = CHOICE_LETTERS.index(answer.upper())
    else:
        raise CatalogError(f"{where}: answer {answer[:60]!r} is neither an option's text nor an option letter")
    order = list(range(len(options)))
    if columns.shuffle_options:
        random.Random(f"egsw-options-{OPTION_SHUFFLE_SEED}-{row_id}").shuffle(order)
    return [options[i] for i in order], CHOICE_LETTERS[order.index(correct)]


# ---------------------------------------------------------------------------------------------
# Local files and presets


def load_file(
    path: str | Path,
    columns: ColumnMapping | None = None,
    *,
    template: str | None = None,
    system_prompt: str | None = None,
    limit: int | None = None,
    max_new_tokens: int = LOCAL_MAX_NEW_TOKENS,
) -> EvalSet:
    """A local table as an evaluation set (see ``ColumnMapping`` for how its columns are read)."""
    columns = columns or ColumnMapping()
    path = Path(path)
    rows = read_rows(path)[:limit]
    fix = "map columns with --question-column/--answer-column/--options-columns"
    examples, skipped = rows_to_examples(
        rows, columns, name=path.stem, where=str(path), template=template, system_prompt=system_prompt, fix=fix
    )
    return EvalSet(path.stem, examples, str(path), max_new_tokens, skipped, {"columns": asdict(columns)})


def preset_files(preset: Preset, data_dir: str | Path, split: str) -> list[Path]:
    """The files of a preset's local copy under ``data_dir`` (see the module docstring); [] if none."""
    data_dir = Path(data_dir)
    for suffix in FILE_SUFFIXES:
        single = data_dir / f"{preset.name}{suffix}"
        if single.is_file():
            return [single]
    for folder in (data_dir / preset.name, data_dir / preset.hub_id):
        if not folder.is_dir():
            continue
        files = sorted(folder.rglob("*"))
        for pattern in preset.local_files[split]:
            found = [f for f in files if f.is_file() and fnmatch.fnmatch(f.relative_to(folder).as_posix(), pattern)]
            if found:
                return found
    return []


def parse_set_spec(spec: str) -> tuple[str, str | None]:
    """``"math-lighteval:train"`` -> ``("math-lighteval", "train")``; other specs come back whole."""
    name, _, split = spec.partition(":")
    if name in PRESETS and split:
        return name, split
    return spec, None


def load_preset(
    name: str,
    *,
    split: str | None = None,
    data_dir: str | Path | None = None,
    system_prompt: str | None = None,
    limit: int | None = None,
) -> EvalSet:
    """A preset from ``data_dir`` when given (offline), else from the Hugging Face Hub via ``datasets``."""
    if name not in PRESETS:
        raise CatalogError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    preset = PRESETS[name]
    split = split or preset.split
    if split not in preset.splits:
        raise CatalogError(f"{name} has no split {split!r}; choose from {', '.join(preset.splits)}")
    fix = f"it is not in {preset.hub_id}'s schema"
    if data_dir is not None:
        files = preset_files(preset, data_dir, split)
        if not files:
            wanted = " or ".join(f"{name}/{pattern}" for pattern in preset.local_files[split])
            raise CatalogError(
                f"{name}: no local copy in {data_dir}; put {name}.jsonl (or .parquet/.csv) or {wanted} there"
            )
        rows = [row for path in files for row in read_rows(path)]
        where = str(files[0]) if len(files) == 1 else f"{files[0].parent}/{{{','.join(f.name for f in files)}}}"
    else:
        rows, where = _load_from_hub(preset, split), f"{preset.hub_id} ({split})"
    examples, skipped = rows_to_examples(
        rows[:limit], preset.columns, name=name, where=where, template=preset.template,
        system_prompt=system_prompt, fix=fix,
    )  # fmt: skip
    return EvalSet(name, examples, where, preset.max_new_tokens, skipped, {"hub_id": preset.hub_id, "split": split})


def _load_from_hub(preset: Preset, split: str) -> list[dict[str, Any]]:
    """Rows of a preset through ``datasets`` (its cache only when HF_HUB_OFFLINE=1 is set)."""
    copy = f"pass --data-dir DIR holding a copy ({preset.name}/{preset.local_files[split][0]})"
    # Without a network, datasets retries for about half a minute; a quick probe answers at once.
    if not offline_mode() and not hub_reachable():
        raise CatalogError(
            f"cannot reach the Hugging Face Hub to load {preset.hub_id} (no network); {copy}, "
            f"or set HF_HUB_OFFLINE=1 to read the datasets cache"
        )
    try:
        from datasets import load_dataset

        dataset = load_dataset(preset.hub_id, preset.hub_config, split=split)
    except Exception as error:  # noqa: BLE001 - offline, gated, missing: all one line with the fix
        message = " ".join(str(error).split())[:160]
        access = f" ({preset.access_note})" if preset.access_note else ""
        raise CatalogError(
            f"could not load {preset.hub_id} from the Hugging Face Hub ({type(error).__name__}: {message}){access}; "
            f"{copy}"
        ) from None
    return dataset.to_list()


def load_eval_set(
    spec: str,
    *,
    data_dir: str | Path | None = None,
    columns: ColumnMapping | None = None,
    template: str | None = None,
    system_prompt: str | None = None,
    limit: int | None = None,
    procedural_options: dict[str, Any] | None = None,
) -> EvalSet:
    """One set by name: ``procedural``, a preset (``math500``, ``math-lighteval:train``, ...) or a file path."""
    name, split = parse_set_spec(spec)
    if name == PROCEDURAL:
        return load_procedural(limit=limit, **(procedural_options or {}))
    if name in PRESETS:
        return load_preset(name, split=split, data_dir=data_dir, system_prompt=system_prompt, limit=limit)
    if Path(spec).suffix.lower() in FILE_SUFFIXES or Path(spec).exists():
        return load_file(spec, columns, template=template, system_prompt=system_prompt, limit=limit)
    raise CatalogError(
        f"unknown evaluation set {spec!r}: not {PROCEDURAL}, not a preset ({', '.join(PRESETS)}), "
        f"not a {'/'.join(FILE_SUFFIXES)} file"
    )


def set_names() -> tuple[str, ...]:
    """The named sets: ``procedural`` and the presets."""
    return (PROCEDURAL, *PRESETS)
