"""``egsw score`` and ``egsw eval`` end to end: files written, exit status 2 with one line on bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from egsw.commands import evaluate as eval_command
from egsw.tasks import procedural
from egsw.tasks.rewards import score_locally
from tests.helpers import run_egsw as egsw_process

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def egsw_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache folder for built-in models (tiny-random is written there on first use)."""
    return tmp_path_factory.mktemp("egsw-cache")


def run_egsw(*args: str, cache: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return egsw_process(*args, env={"EGSW_CACHE": str(cache)} if cache is not None else None, timeout=timeout)


def assert_usage_error(result: subprocess.CompletedProcess[str], command: str, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"egsw {command}: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


# ---------------------------------------------------------------------------------------------
# egsw score


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_score_end_to_end(tmp_path: Path) -> None:
    rows = [
        {"id": "p1", "completion": "So \\boxed{\\frac{1}{2}}.", "answer": "0.5", "model": "other"},
        {"id": "p2", "completion": "The answer is 7.", "answer": 8},
        {"id": "p3", "completion": "Reasoning...\nAnswer: C", "answer": "C", "kind": "choice"},
        {"id": "p4", "completion": [{"role": "assistant", "content": "\\boxed{42}"}], "answer": "42"},
        {"id": "p5", "completion": "no idea", "answer": "3"},
    ]
    source = write_jsonl(tmp_path / "answers.jsonl", rows)
    result = run_egsw("score", "--input", str(source))
    assert result.returncode == 0, result.stderr
    assert "all: accuracy 60.0% [" in result.stdout and "(3/5 correct); unparsed 1, unscorable 0" in result.stdout
    assert "choice: accuracy 100.0%" in result.stdout and "math: accuracy 50.0%" in result.stdout
    scored = [json.loads(line) for line in (tmp_path / "answers.scored.jsonl").read_text().splitlines()]
    assert [(s["id"], s["correct"], s["extracted"]) for s in scored] == [
        ("p1", True, "\\frac{1}{2}"),
        ("p2", False, "7"),
        ("p3", True, "C"),
        ("p4", True, "42"),
        ("p5", False, None),
    ]
    assert scored[0]["model"] == "other" and scored[1]["answer"] == 8  # every field is kept


def test_score_explicit_output_and_timeout(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [{"completion": "\\boxed{9^{9^{9^{9}}}}", "answer": "1"}])
    output = tmp_path / "out" / "scored.jsonl"
    started = time.perf_counter()
    result = run_egsw("score", "--input", str(source), "--output", str(output), "--timeout", "0.5")
    assert result.returncode == 0, result.stderr
    assert time.perf_counter() - started < 30
    assert json.loads(output.read_text()) == {
        "completion": "\\boxed{9^{9^{9^{9}}}}", "answer": "1", "correct": None, "extracted": None,
    }  # fmt: skip
    assert "unscorable 1" in result.stdout


@pytest.mark.parametrize(
    ("content", "args", "fragments"),
    [
        ('{"completion": "x"}\n', (), ("line 1: no answer field (fields found: completion)",)),
        ('{"answer": "1"}\n', (), ("no completion field",)),
        ('{"completion": "x", "answer": "1"}\nnot json\n', (), ("line 2: not valid JSON",)),
        (
            '{"completion": "x", "answer": "1", "kind": "essay"}\n',
            (),
            ("unknown kind 'essay'; choose from math, choice",),
        ),
        ('{"completion": 3, "answer": "1"}\n', (), ("completion must be a string or a list of chat messages",)),
        ('{"completion": "x", "answer": null}\n', (), ("answer must be a string or a number",)),
        ("\n", (), ("holds no lines to score",)),
        ('{"completion": "x", "answer": "1"}\n', ("--timeout", "0"), ("--timeout must be > 0",)),
    ],
)
def test_score_bad_input_exits_2_with_one_line(tmp_path: Path, content: str, args: tuple, fragments: tuple) -> None:
    source = tmp_path / "bad.jsonl"
    source.write_text(content)
    assert_usage_error(run_egsw("score", "--input", str(source), *args), "score", *fragments)
    assert not (tmp_path / "bad.scored.jsonl").exists()


def test_score_missing_file_and_arguments(tmp_path: Path) -> None:
    assert_usage_error(run_egsw("score", "--input", str(tmp_path / "absent.jsonl")), "score", "no such file")
    assert_usage_error(run_egsw("score"), "score", "--input")
    source = write_jsonl(tmp_path / "same.jsonl", [{"completion": "x", "answer": "1"}])
    assert_usage_error(run_egsw("score", "--input", str(source), "--output", str(source)), "score", "is the input")


# ---------------------------------------------------------------------------------------------
# egsw eval


def test_eval_tiny_random_writes_results_and_samples(tmp_path: Path, egsw_cache: Path) -> None:
    quiz = write_jsonl(
        tmp_path / "quiz.jsonl",
        [
            {"q": "What is 1 + 1 ?", "options": ["2", "3"], "gold": "2"},
            {"q": "What is 2 + 2 ?", "options": ["5", "4"], "gold": "4"},
        ],
    )
    output = tmp_path / "eval"
    result = run_egsw(
        "eval", "--model", "tiny-random", "--sets", f"procedural,{quiz}", "--limit", "3", "--max-new-tokens", "6",
        "--num-samples", "2", "--temperature", "1.0", "--k", "1,2", "--question-column", "q",
        "--answer-column", "gold", "--options-columns", "options", "--output", str(output), "--no-progress",
        cache=egsw_cache,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "accuracy [95% CI]" in result.stdout and "pass@2" in result.stdout
    assert "procedural" in result.stdout and "quiz" in result.stdout

    summary = json.loads((output / "summary.json").read_text())
    assert [row["set"] for row in summary] == ["procedural", "quiz"]
    results = json.loads((output / "procedural" / "results.json").read_text())
    assert results["model"] == "tiny-random" and results["backend"] == "transformers"
    assert (results["num_problems"], results["num_samples"], results["temperature"]) == (3, 2, 1.0)
    assert set(results["pass_at_k"]) == {"1", "2"} and results["max_new_tokens"] == 6
    assert 0.0 <= results["accuracy_low"] <= results["accuracy"] <= results["accuracy_high"] <= 1.0
    assert 0 < results["mean_length"] <= 6 and results["unparsed_share"] >= 0.0
    assert results["set_options"]["size"] == procedural.DEFAULT_HELDOUT_SIZE

    samples = [json.loads(line) for line in (output / "procedural" / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 6
    expected_ids = [
        e.id
        for e in procedural.procedural_examples(
            3, "heldout", procedural.DEFAULT_HELDOUT_SEED, procedural.DEFAULT_KINDS, procedural.DEFAULT_LEVELS
        )
    ]
    assert [s["id"] for s in samples] == [i for i in expected_ids for _ in range(2)]
    assert [s["sample"] for s in samples] == [0, 1] * 3
    for sample in samples:
        assert set(sample) >= {"prompt", "completion", "answer", "extracted", "correct", "num_tokens", "kind"}
        # Each record's verdict is what the answer checker says of its completion, scored again here.
        rescored = score_locally(sample["completion"], sample["answer"], sample["kind"])
        assert (sample["correct"], sample["extracted"]) == (rescored.correct, rescored.extracted)
        assert sample["num_tokens"] <= 6
    assert results["accuracy"] == pytest.approx(sum(s["correct"] for s in samples) / len(samples))
    quiz_samples = [json.loads(line) for line in (output / "quiz" / "samples.jsonl").read_text().splitlines()]
    assert [s["answer"] for s in quiz_samples] == ["A", "A", "B", "B"] and quiz_samples[0]["kind"] == "choice"


def test_eval_greedy_matches_evaluate_examples_as_egsw_train_calls_it(
    tmp_path: Path, egsw_cache: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Same problems, prompts and greedy completions as ``egsw train``'s held-out evaluation."""
    from egsw.models import load_model_and_tokenizer
    from egsw.tasks.evaluation import evaluate_examples, precision_context

    monkeypatch.setenv("EGSW_CACHE", str(egsw_cache))
    output = tmp_path / "eval"
    args = ["--model", "tiny-random", "--limit", "4", "--max-new-tokens", "5", "--output", str(output), "--no-progress"]
    assert eval_command.main(args) == 0
    assert "procedural" in capsys.readouterr().out
    model, tokenizer = load_model_and_tokenizer("tiny-random")
    examples = procedural.procedural_examples(
        4, "heldout", procedural.DEFAULT_HELDOUT_SEED, procedural.DEFAULT_KINDS, procedural.DEFAULT_LEVELS
    )
    with precision_context(model, bf16=True):  # both default to bf16 autocast
        reference = evaluate_examples(
            model, tokenizer, examples, max_new_tokens=5, batch_size=procedural.DEFAULT_EVAL_BATCH_SIZE, progress=False
        )
    samples = [json.loads(line) for line in (output / "procedural" / "samples.jsonl").read_text().splitlines()]
    assert [(s["id"], s["prompt"], s["completion"]) for s in samples] == [
        (r.id, r.prompt, r.completion) for r in reference.samples
    ]
    assert json.loads((output / "procedural" / "results.json").read_text())["accuracy"] == reference.accuracy


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("--sets", "gsm8k"), ("unknown evaluation set 'gsm8k'",)),
        (("--sets", "math500", "--data-dir", "tests"), ("math500: no local copy in tests",)),
        (("--num-samples", "4"), ("--num-samples 4 needs --temperature > 0",)),
        (("--num-samples", "2", "--temperature", "1", "--k", "1,4"), ("--k [4] out of range",)),
        (("--limit", "0"), ("--limit must be >= 1",)),
        (("--model", "./no/such/model"), ("unknown model './no/such/model'",)),
        (("--backend", "tpu"), ("invalid choice: 'tpu'",)),
        (("--procedural-kinds", "division"), ("unknown problem kind",)),
        (("--prompt-template", "no placeholder"), ("--prompt-template must contain {question}",)),
        (("--temperature", "-1"), ("--temperature must be >= 0",)),
    ],
)
def test_eval_bad_input_exits_2_before_loading_a_model(args: tuple, fragments: tuple, egsw_cache: Path) -> None:
    started = time.perf_counter()
    assert_usage_error(run_egsw("eval", "--model", "tiny-random", *args, cache=egsw_cache), "eval", *fragments)
    assert time.perf_counter() - started < 15


def test_eval_local_file_with_a_missing_column(tmp_path: Path, egsw_cache: Path) -> None:
    source = write_jsonl(tmp_path / "mine.jsonl", [{"problem": "1+1?", "answer": "2"}])
    result = run_egsw("eval", "--model", "tiny-random", "--sets", str(source), cache=egsw_cache)
    assert_usage_error(result, "eval", str(source), "no column 'question'", "columns found: problem, answer")


def test_eval_vllm_backend_needs_vllm(egsw_cache: Path) -> None:
    from egsw.tasks.evaluation import vllm_available

    if vllm_available():
        pytest.skip("vllm is installed here")
    result = run_egsw("eval", "--model", "tiny-random", "--backend", "vllm", cache=egsw_cache)
    assert_usage_error(result, "eval", "--backend vllm needs vllm", "pip install 'egsw[vllm]'")


def test_eval_presets_from_data_dir(tmp_path: Path, egsw_cache: Path) -> None:
    """All four presets from the fixtures in one run (2 problems each, 3 tokens: the plumbing, not the model)."""
    output = tmp_path / "eval"
    result = run_egsw(
        "eval", "--model", "tiny-random", "--sets", "math500,aime24,gpqa-diamond,math-lighteval",
        "--data-dir", str(FIXTURES), "--limit", "2", "--max-new-tokens", "3", "--output", str(output),
        "--no-progress", cache=egsw_cache,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    for name, kind in (("math500", "math"), ("aime24", "math"), ("gpqa-diamond", "choice"), ("math-lighteval", "math")):
        results = json.loads((output / name / "results.json").read_text())
        assert results["num_problems"] == 2 and results["source"].startswith(str(FIXTURES / name))
        samples = [json.loads(line) for line in (output / name / "samples.jsonl").read_text().splitlines()]
        assert len(samples) == 2 and {s["kind"] for s in samples} == {kind}


@pytest.mark.slow
def test_eval_bundled_smollm2_matches_evaluate_examples(tmp_path: Path) -> None:
    """The real model: `egsw eval` on 8 held-out problems gives what `egsw train`'s evaluation gives."""
    from egsw.models import load_model_and_tokenizer
    from egsw.tasks.evaluation import evaluate_examples, precision_context

    output = tmp_path / "eval"
    result = run_egsw("eval", "--model", "smollm2-135m-instruct", "--limit", "8", "--output", str(output))
    assert result.returncode == 0, result.stderr
    model, tokenizer = load_model_and_tokenizer("smollm2-135m-instruct")
    examples = procedural.procedural_examples(
        8, "heldout", procedural.DEFAULT_HELDOUT_SEED, procedural.DEFAULT_KINDS, procedural.DEFAULT_LEVELS
    )
    with precision_context(model, bf16=True):  # egsw train's default recipe evaluates under bf16 autocast
        reference = evaluate_examples(
            model, tokenizer, examples, max_new_tokens=procedural.DEFAULT_MAX_NEW_TOKENS,
            batch_size=procedural.DEFAULT_EVAL_BATCH_SIZE, progress=False,
        )  # fmt: skip
    samples = [json.loads(line) for line in (output / "procedural" / "samples.jsonl").read_text().splitlines()]
    assert [(s["id"], s["correct"]) for s in samples] == [(r.id, r.correct) for r in reference.samples]
    assert json.loads((output / "procedural" / "results.json").read_text())["accuracy"] == reference.accuracy


def test_eval_set_folders_are_distinct_per_split_and_file(tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "math500" / "test.jsonl", tmp_path / "math-lighteval.jsonl")
    options = eval_command.parse_options(
        ["--model", "tiny-random", "--sets", f"math-lighteval,math-lighteval:train,{tmp_path / 'math-lighteval.jsonl'}",
         "--data-dir", str(FIXTURES), "--question-column", "problem"]
    )  # fmt: skip
    assert [s.name for s in options.sets] == ["math-lighteval", "math-lighteval-train", "math-lighteval-2"]
    assert options.output == Path("runs") / "eval" / "tiny-random" and options.k_values == [1]
