"""The answer extractors and verifiers on a table of tricky completions, one block per evaluation set.

The table goes through ``score_completions`` (the time-limited worker process), which is what
both the training reward and ``egsw eval``/``egsw score`` call.
"""

from __future__ import annotations

import time

import pytest

from egsw.tasks.rewards import (
    MAX_SCORED_CHARS,
    Score,
    Verifier,
    extract_choice,
    last_boxed,
    score_completions,
    score_locally,
    scored_text,
)

# (set, completion, reference answer, kind, expected correct)
TABLE = [
    # --- procedural: integers, the worked example's format
    ("procedural", "12 + 7 = 19. The answer is \\boxed{19}.", "19", "math", True),
    ("procedural", "The answer is \\boxed{ 19 }", "19", "math", True),
    ("procedural", "The answer is 19.", "19", "math", True),  # no box: math-verify's own search
    ("procedural", "19 is close, but the answer is 20.", "19", "math", False),  # right value, wrong place
    ("procedural", "12 + 7 = 19, so I write \\boxed{20}.", "19", "math", False),  # right value, not the boxed one
    ("procedural", "First \\boxed{19}, then on reflection \\boxed{18}.", "19", "math", False),  # the last box counts
    ("procedural", "First \\boxed{18}, then on reflection \\boxed{19}.", "19", "math", True),
    ("procedural", "I do not know.", "19", "math", False),  # no answer
    ("procedural", "", "19", "math", False),
    ("procedural", "\\boxed{}", "19", "math", False),
    ("procedural", "\\boxed{19", "19", "math", False),  # never closed: no box
    # --- math500: LaTeX answers in MATH-500's forms
    ("math500", "So \\boxed{\\frac{1}{2}}.", "\\frac{1}{2}", "math", True),
    ("math500", "So \\boxed{0.5}.", "\\frac{1}{2}", "math", True),  # equivalent forms
    ("math500", "So \\boxed{1/2}.", "\\frac{1}{2}", "math", True),
    ("math500", "So \\boxed{\\dfrac12}.", "\\frac{1}{2}", "math", True),
    ("math500", "So \\boxed{\\frac{1}{3}}.", "\\frac{1}{2}", "math", False),
    ("math500", "\\boxed{\\frac{\\sqrt{3}}{2}}", "\\frac{\\sqrt{3}}{2}", "math", True),  # nested braces
    ("math500", "\\boxed{\\frac{\\sqrt{2}}{2}}", "\\frac{\\sqrt{3}}{2}", "math", False),
    ("math500", "They cost \\boxed{\\$18.90}.", "\\$18.90", "math", True),  # a money answer
    ("math500", "They cost \\boxed{18.90}.", "\\$18.90", "math", True),
    ("math500", "They cost \\boxed{18.80}.", "\\$18.90", "math", False),
    ("math500", "\\boxed{\\text{Evelyn}}", "\\text{Evelyn}", "math", True),  # \text{} answers
    ("math500", "\\boxed{Evelyn}", "\\text{Evelyn}", "math", True),
    ("math500", "\\boxed{\\text{Bob}}", "\\text{Evelyn}", "math", False),
    ("math500", "\\boxed{10\\text{ cm}}", "10", "math", True),  # units
    ("math500", "\\boxed{[-2, 7]}", "[-2,7]", "math", True),  # intervals
    ("math500", "\\boxed{(-2, 7)}", "[-2,7]", "math", False),
    ("math500", "\\boxed{\\{1,2\\}}", "\\{1,2\\}", "math", True),  # escaped braces inside the box
    ("math500", "\\boxed{\\boxed{7}}", "7", "math", True),
    ("math500", "$\\boxed{x^2+2x+1}$", "(x+1)^2", "math", True),
    # --- aime24: integer answers 0-999
    ("aime24", "Therefore the answer is $\\boxed{204}$.", "204", "math", True),
    ("aime24", "Therefore the answer is $\\boxed{033}$.", "33", "math", True),
    ("aime24", "We get 204 pairs... no wait, the answer is \\boxed{205}.", "204", "math", False),
    # --- math-lighteval: the reference is the solution's last box (see test_catalog); forms as above
    ("math-lighteval", "$x = \\boxed{\\dfrac{1}{3}}$", "\\dfrac{1}{3}", "math", True),
    ("math-lighteval", "$x = \\boxed{0.333}$", "\\dfrac{1}{3}", "math", False),
    ("math-lighteval", "The union is \\boxed{\\{1, 2, 3\\}}", "\\{1,2,3\\}", "math", True),
    # --- gpqa-diamond: option letters
    ("gpqa-diamond", "The mitochondrion makes ATP.\nAnswer: B", "B", "choice", True),
    ("gpqa-diamond", "So the answer is (B).", "B", "choice", True),
    ("gpqa-diamond", "The final answer is $\\boxed{B}$", "B", "choice", True),
    ("gpqa-diamond", "\\boxed{\\text{(B)}}", "B", "choice", True),
    ("gpqa-diamond", "**Answer: B**", "B", "choice", True),
    ("gpqa-diamond", "Answer: $\\textbf{(B)}$", "B", "choice", True),
    ("gpqa-diamond", "Answer: C", "B", "choice", False),  # a wrong letter
    ("gpqa-diamond", "I'd first think of option (B), but the answer is C.", "B", "choice", False),
    ("gpqa-diamond", "(A) is wrong and (C) is wrong, so\nB", "B", "choice", False),  # bracketed beats a bare line
    ("gpqa-diamond", "It is the mitochondrion.", "B", "choice", False),  # no letter at all
    ("gpqa-diamond", "Answer: I think it is B.", "B", "choice", False),  # "I" is no option of four
    ("gpqa-diamond", "\\boxed{b}", "B", "choice", False),
]


@pytest.fixture(scope="module")
def table_scores() -> list[Score]:
    return score_completions([row[1] for row in TABLE], [row[2] for row in TABLE], [row[3] for row in TABLE])


@pytest.mark.parametrize("index", range(len(TABLE)), ids=[f"{row[0]}:{row[1][:40]!r}" for row in TABLE])
def test_table(table_scores: list[Score], index: int) -> None:
    name, completion, answer, kind, expected = TABLE[index]
    score = table_scores[index]
    assert score.correct is expected, f"{name}: {completion!r} vs {answer!r} gave {score}"
    if expected:
        assert score.extracted is not None


def test_extracted_answer_is_the_last_box() -> None:
    scores = score_completions(["\\boxed{3} and \\boxed{\\frac{1}{2}}", "no answer"], ["0.5", "1"])
    assert scores[0] == Score(True, "\\frac{1}{2}")
    assert scores[1] == Score(False, None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\\boxed{42}", "42"),
        ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
        ("\\boxed{1} then \\boxed{2}", "2"),
        ("\\boxed{\\boxed{7}}", "7"),
        ("\\fbox{5}", "5"),
        ("\\boxed {5}", "5"),
        ("\\boxed{\\{1,2\\}}", "\\{1,2\\}"),
        ("\\boxed{3} and \\boxed{4", "3"),  # the unclosed box is no answer
        ("\\boxed{a \\} b}", "a \\} b"),  # an escaped brace does not close it
        ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix} \\boxed{x}", "x"),
        ("no box", None),
        ("\\boxed{", None),
    ],
)
def test_last_boxed(text: str, expected: str | None) -> None:
    assert last_boxed(text) == expected


def test_last_boxed_is_linear_on_adversarial_text() -> None:
    started = time.perf_counter()
    assert last_boxed("\\boxed{" * 20_000) is None
    assert last_boxed("\\boxed{" * 20_000 + "1" + "}" * 20_000) == "1"
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize(
    ("text", "letters", "expected"),
    [
        ("(B)", "ABCD", "B"),
        ("Answer: B", "ABCD", "B"),
        ("\\boxed{B}", "ABCD", "B"),
        ("The answer is option C, not (A).", "ABCD", "C"),
        ("A) one\nB) two\nThe correct choice is D.", "ABCD", "D"),
        ("C.", "ABCD", "C"),
        ("Answer: E", "ABCD", None),
        ("Answer: E", "ABCDE", "E"),
        ("Between A and B I pick B", "ABCD", None),
    ],
)
def test_extract_choice(text: str, letters: str, expected: str | None) -> None:
    assert extract_choice(text, letters) == expected


def test_scored_text_keeps_a_long_completions_last_box_whole() -> None:
    # The box opens before the last MAX_SCORED_CHARS characters: a naive tail would read "...+1}" as 1.
    completion = "\\boxed{" + "1+" * 10_000 + "1}"
    assert score_locally(completion, "1") == Score(False, None)
    assert scored_text(completion) == ""  # a box longer than the limit is no answer
    long_reasoning = "x " * 50_000 + "so \\boxed{7}"
    assert scored_text(long_reasoning) == "\\boxed{7}"
    assert score_locally(long_reasoning, "7") == Score(True, "7")
    # Without a box the tail is cut at a space, so no number is read from its last digits.
    tail = scored_text("1" * 10_000 + " the answer is 5")
    assert tail == "the answer is 5"
    assert len(scored_text("word " * 10_000)) <= MAX_SCORED_CHARS


@pytest.fixture(scope="module")
def warm_verifier() -> Verifier:
    verifier = Verifier()
    assert verifier.score(["\\boxed{1}"], ["1"]) == [Score(True, "1")]  # starts the worker
    yield verifier
    verifier.close()


@pytest.mark.parametrize(
    "completion",
    [
        "\\boxed{9^{9^{9^{9}}}}",
        "x" * 100_000,
        "1+" * 50_000 + "1",
        "\\boxed{" * 15_000,
        "\\boxed{" + "9^{" * 2_000 + "9" + "}" * 2_001,
    ],
    ids=["tower", "100kB-letters", "100kB-sum", "100kB-open-boxes", "deep-nesting"],
)
def test_adversarial_completion_is_scored_within_two_seconds(warm_verifier: Verifier, completion: str) -> None:
    started = time.perf_counter()
    [score] = warm_verifier.score([completion], ["1"])
    assert time.perf_counter() - started < 2.0
    assert score.correct is not True
    # The verifier still works afterwards (a timed-out worker is replaced).
    assert warm_verifier.score(["\\boxed{2}"], ["2"]) == [Score(True, "2")]


def test_unparseable_reference_is_unscorable() -> None:
    with pytest.raises(ValueError, match="cannot be parsed"):
        score_locally("\\boxed{1}", "\\text{}")
    assert score_completions(["\\boxed{1}"], ["\\text{}"]) == [Score(None, None)]


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        ("<think>\n3 + 4 = 7\n</think>\nThe answer is \\boxed{7}.", 1.0),
        ("The answer is \\boxed{7}.", 0.0),  # no reasoning block
        ("<think>a</think><think>b</think> \\boxed{7}", 0.0),  # two blocks
        ("<think>3 + 4 = 7</think> so 7", 0.0),  # no boxed answer
        ("<think>\\boxed{7}</think> done", 0.0),  # the answer inside the reasoning
        ("<think>x</think> \\boxed{6} or \\boxed{7}", 0.0),  # two answers
    ],
)
def test_think_format_reward(completion: str, expected: float) -> None:
    from egsw.tasks.rewards import think_format_reward

    assert think_format_reward([completion]) == [expected]
    assert think_format_reward([[{"role": "assistant", "content": completion}]]) == [expected]
