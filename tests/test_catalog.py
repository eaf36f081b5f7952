"""The catalog of evaluation sets: presets from fixtures in their real schemas, local files, errors.

``tests/fixtures/`` holds a few made-up rows per preset, laid out as the Hub repositories are:
``math500/test.jsonl`` (HuggingFaceH4/MATH-500), ``aime24/data/train-*.parquet``
(HuggingFaceH4/aime_2024), ``gpqa-diamond/gpqa_diamond.csv`` (Idavidrein/gpqa, gpqa_diamond) and
``math-lighteval/data/{train,test}-*.parquet`` (DigitalLearningGmbH/MATH-lighteval).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from egsw.tasks import catalog, procedural
from egsw.tasks.catalog import CatalogError, ColumnMapping, load_eval_set, load_file, load_preset, load_procedural
from egsw.tasks.rewards import CHOICE_LETTERS

FIXTURES = Path(__file__).parent / "fixtures"


def user_message(example: catalog.Example) -> str:
    return example.prompt[-1]["content"]


def test_math500_fixture() -> None:
    eval_set = load_preset("math500", data_dir=FIXTURES)
    assert eval_set.name == "math500" and eval_set.skipped == 0
    assert [e.answer for e in eval_set.examples] == [
        "\\frac{1}{2}", "\\$18.90", "\\text{Evelyn}", "[-2,7]", "\\frac{\\sqrt{3}}{2}",
    ]  # fmt: skip
    first = eval_set.examples[0]
    assert first.id == "test/prealgebra/1001.json" and first.kind == "math"
    instruction = "Please reason step by step, and put your final answer within \\boxed{}."
    content = f"What is $\\frac{{3}}{{6}}$ in lowest terms?\n{instruction}"
    assert first.prompt == [{"role": "user", "content": content}]
    assert eval_set.max_new_tokens == catalog.PRESETS["math500"].max_new_tokens


def test_aime24_fixture_parquet() -> None:
    eval_set = load_preset("aime24", data_dir=FIXTURES)
    assert [(e.id, e.answer) for e in eval_set.examples] == [("60", "204"), ("61", "24"), ("62", "330")]
    assert user_message(eval_set.examples[2]).startswith("Compute $15 \\cdot 22$.\nPlease reason step by step")


def test_gpqa_diamond_options_are_shuffled_with_a_fixed_seed() -> None:
    eval_set = load_preset("gpqa-diamond", data_dir=FIXTURES)
    rows = catalog.read_rows(FIXTURES / "gpqa-diamond" / "gpqa_diamond.csv")
    assert len(eval_set.examples) == len(rows) == 4
    for example, row in zip(eval_set.examples, rows, strict=True):
        assert example.kind == "choice" and example.id == row["Record ID"]
        options = example.meta["options"]
        assert sorted(options) == sorted(row[c] for c in catalog.PRESETS["gpqa-diamond"].columns.options)
        # The letter points at the correct answer's text, and the prompt lists it under that letter.
        assert options[CHOICE_LETTERS.index(example.answer)] == row["Correct Answer"]
        assert f"\n{example.answer}) {row['Correct Answer']}" in user_message(example)
        assert "'Answer: LETTER'" in user_message(example) and "A, B, C or D" in user_message(example)
    # Not always first (the file's order), and the same order on every load.
    assert {e.answer for e in eval_set.examples} != {"A"}
    again = load_preset("gpqa-diamond", data_dir=FIXTURES)
    assert [e.meta["options"] for e in again.examples] == [e.meta["options"] for e in eval_set.examples]
    # A question holding a comma and a newline survives the CSV round trip.
    assert "ATP,\nunder aerobic" in eval_set.examples[2].meta["question"]


def test_math_lighteval_answer_is_the_solutions_last_box() -> None:
    eval_set = load_preset("math-lighteval", data_dir=FIXTURES)
    # Nested braces kept, the last of two boxes taken, the row without a box skipped.
    assert [e.answer for e in eval_set.examples] == ["\\frac{1}{2}", "6", "\\dfrac{1}{3}"]
    assert eval_set.skipped == 1
    train = load_eval_set("math-lighteval:train", data_dir=FIXTURES)
    assert [e.answer for e in train.examples] == ["56", "\\{1,2,3\\}"]
    with pytest.raises(CatalogError, match="no split 'validation'; choose from train, test"):
        load_preset("math-lighteval", split="validation", data_dir=FIXTURES)


def test_preset_local_layouts(tmp_path: Path) -> None:
    # One file named after the preset ...
    shutil.copy(FIXTURES / "math500" / "test.jsonl", tmp_path / "math500.jsonl")
    assert len(load_preset("math500", data_dir=tmp_path).examples) == 5
    # ... or the Hub repository under its own name.
    hub_copy = tmp_path / "hub" / "HuggingFaceH4" / "aime_2024"
    shutil.copytree(FIXTURES / "aime24", hub_copy)
    assert len(load_preset("aime24", data_dir=tmp_path / "hub").examples) == 3
    with pytest.raises(CatalogError, match=r"gpqa-diamond: no local copy in .*gpqa-diamond/gpqa_diamond.csv"):
        load_preset("gpqa-diamond", data_dir=tmp_path)


def test_preset_in_the_wrong_schema_names_file_column_and_columns_found(tmp_path: Path) -> None:
    (tmp_path / "math500.jsonl").write_text(json.dumps({"question": "1+1?", "answer": "2"}) + "\n")
    with pytest.raises(CatalogError) as error:
        load_preset("math500", data_dir=tmp_path)
    message = str(error.value)
    assert str(tmp_path / "math500.jsonl") in message
    assert "no column 'problem'" in message and "columns found: question, answer" in message
    assert "\n" not in message


def test_preset_without_network_fails_fast_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr(catalog, "hub_reachable", lambda timeout_s=3.0: False)
    started = time.perf_counter()
    with pytest.raises(CatalogError, match=r"cannot reach the Hugging Face Hub .* --data-dir DIR .*math500/test.jsonl"):
        load_eval_set("math500")
    assert time.perf_counter() - started < 1.0


def test_procedural_defaults_are_egsw_trains(monkeypatch: pytest.MonkeyPatch) -> None:
    eval_set = load_eval_set("procedural", limit=12)
    expected = procedural.procedural_examples(
        12, "heldout", procedural.DEFAULT_HELDOUT_SEED, procedural.DEFAULT_KINDS, procedural.DEFAULT_LEVELS
    )
    assert eval_set.examples == expected
    assert eval_set.max_new_tokens == procedural.DEFAULT_MAX_NEW_TOKENS
    # The constants are read when the set is loaded, not copied when the catalog is imported.
    monkeypatch.setattr(procedural, "DEFAULT_HELDOUT_SIZE", 7)
    monkeypatch.setattr(procedural, "DEFAULT_KINDS", ("mul",))
    changed = load_procedural()
    assert len(changed.examples) == 7 and {e.meta["problem_kind"] for e in changed.examples} == {"mul"}


def test_procedural_options_and_errors() -> None:
    eval_set = load_procedural(size=5, seed=3, kinds=["add"], levels=[1])
    assert len(eval_set.examples) == 5 and all(e.meta["problem_kind"] == "add" for e in eval_set.examples)
    assert eval_set.meta == {"size": 5, "seed": 3, "kinds": ["add"], "levels": [1]}
    with pytest.raises(CatalogError, match="unknown problem kind"):
        load_procedural(kinds=["division"])


def test_local_jsonl_with_column_mapping(tmp_path: Path) -> None:
    path = tmp_path / "mine.jsonl"
    rows = [{"q": "What is 2+2?", "a": 4, "key": "x1"}, {"q": "What is 3+3?", "a": "6", "key": "x2"}]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    eval_set = load_file(path, ColumnMapping(question="q", answer="a", id="key"), system_prompt="Be brief.", limit=1)
    [example] = eval_set.examples
    assert (example.id, example.answer, example.kind) == ("x1", "4", "math")
    assert example.prompt[0] == {"role": "system", "content": "Be brief."}
    assert eval_set.name == "mine" and eval_set.max_new_tokens == catalog.LOCAL_MAX_NEW_TOKENS


def test_local_csv_multiple_choice_with_letter_answers(tmp_path: Path) -> None:
    path = tmp_path / "quiz.csv"
    path.write_text("question,A,B,C,answer\nPick the even one,3,4,5,B\nPick the odd one,2,4,7,c\n")
    columns = ColumnMapping(options=("A", "B", "C"))
    eval_set = load_file(path, columns, template="Q: {question}\n{options}\nOne of {letters}.")
    assert [e.answer for e in eval_set.examples] == ["B", "C"]
    assert user_message(eval_set.examples[0]) == "Q: Pick the even one\nA) 3\nB) 4\nC) 5\nOne of A, B or C."
    assert all(e.kind == "choice" for e in eval_set.examples)


def test_local_parquet_with_a_list_of_options_and_text_answers(tmp_path: Path) -> None:
    path = tmp_path / "mc.parquet"
    table = pa.Table.from_pylist(
        [{"prompt": "Capital of France?", "choices": ["Lyon", "Paris", "Nice"], "gold": "Paris"}]
    )
    pq.write_table(table, path)
    eval_set = load_file(path, ColumnMapping(question="prompt", answer="gold", options=("choices",)))
    assert eval_set.examples[0].answer == "B"
    shuffled = load_file(
        path, ColumnMapping(question="prompt", answer="gold", options=("choices",), shuffle_options=True)
    )
    example = shuffled.examples[0]
    assert example.meta["options"][CHOICE_LETTERS.index(example.answer)] == "Paris"


def test_local_solution_column(tmp_path: Path) -> None:
    path = tmp_path / "sol.json"
    path.write_text(json.dumps([{"question": "1+1?", "worked": "It is \\boxed{2}."}]))
    eval_set = load_file(path, ColumnMapping(answer=None, solution="worked"))
    assert eval_set.examples[0].answer == "2"


CHOICE_AB = ColumnMapping(options=("A", "B"))
BAD_FILES = [
    (
        "missing.jsonl",
        '{"question": "q", "solution": "s"}\n',
        None,
        r"no column 'answer' \(columns found: question, solution\)",
    ),
    ("options.csv", "question,answer,A\nq,A,x\n", CHOICE_AB, r"no column 'B' \(columns found: question, answer, A\)"),
    ("broken.jsonl", '{"question": "q", "answer": "1"}\n{"question": \n', None, r"line 2 is not valid JSON"),
    ("list.jsonl", '["q", "1"]\n', None, r"line 1 is a list, not a JSON object"),
    ("broken.parquet", "not a parquet file", None, r"cannot read it as parquet \(ArrowInvalid"),
    ("table.json", '{"question": "q"}', None, r"must hold a list of objects"),
    ("empty.csv", "", None, r"holds no rows"),
    ("notes.txt", "hello", None, r"unknown file type '.txt'"),
    ("bad-letter.csv", "question,A,B,answer\nq,x,y,Z\n", CHOICE_AB, r"answer 'Z' is neither"),
    ("no-answers.jsonl", '{"question": "q", "answer": ""}\n', None, r"none of its 1 rows has both"),
]


@pytest.mark.parametrize(("name", "content", "columns", "pattern"), BAD_FILES, ids=[row[0] for row in BAD_FILES])
def test_unreadable_files_and_missing_columns_are_one_line(
    tmp_path: Path, name: str, content: str, columns: ColumnMapping | None, pattern: str
) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(CatalogError, match=pattern) as error:
        load_eval_set(str(path), columns=columns)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_unknown_set_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="unknown evaluation set 'gsm8k': not procedural, not a preset"):
        load_eval_set("gsm8k")
    with pytest.raises(CatalogError, match="no such file"):
        load_eval_set(str(tmp_path / "absent.jsonl"))


def test_duplicate_ids_are_made_unique(tmp_path: Path) -> None:
    path = tmp_path / "dup.jsonl"
    path.write_text('{"id": "a", "question": "q1", "answer": "1"}\n{"id": "a", "question": "q2", "answer": "2"}\n')
    eval_set = load_file(path, ColumnMapping(id="id"))
    assert len({e.id for e in eval_set.examples}) == 2
