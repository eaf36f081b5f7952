"""Scoring answers and the rewards built on it: the same code grades training and evaluation.

- ``score_completion``: is a completion's final answer right? Math answers go through
  ``math-verify`` (``\\frac{1}{2}`` = ``0.5`` = ``1/2``; the last ``\\boxed{}`` counts); multiple-
  choice letters through ``extract_choice``. Every completion is scored in a worker process with
  a hard time limit, because sympy can spend minutes inside C code (``\\boxed{9^{9^{9^{9}}}}``)
  where no signal reaches it; a completion that runs out of time is *unscorable* (``None``).
- ``accuracy_reward`` and ``format_reward``: reward functions in TRL's signature.
(``egsw.reward_guard`` keeps one completion that breaks a reward function from stopping training.)
"""

from __future__ import annotations

import functools
import json
import os
import re
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ANSWER_KINDS = ("math", "choice")
CHOICE_LETTERS = "ABCDEFGHIJ"
DEFAULT_TIMEOUT_S = 1.0
# Only the tail of a completion is read: the final answer is at the end, and a 100 kB string
# must not reach the parser whole.
MAX_SCORED_CHARS = 4000
_WORKER_START_TIMEOUT_S = 60.0

RewardFunc = Callable[..., list[float | None]]


@dataclass(frozen=True)
class Score:
    """The verdict on one completion: ``correct`` is None when it could not be scored in time."""

    correct: bool | None
    extracted: str | None


# ---------------------------------------------------------------------------------------------
# Extraction


_BOX_OPENING = re.compile(r"\\(?:boxed|fbox)\s*\{")
_BRACE_OR_ESCAPE = re.compile(r"\\.|[{}]", re.DOTALL)


def last_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` (or ``\\fbox{...}``), braces balanced; None if absent.

    "Last" is the complete box that opens last (in ``\\boxed{\\boxed{7}}`` the inner one). Escaped
    braces (``\\{``, ``\\}``) do not count. One pass over the text: linear even for 100 kB of
    ``\\boxed{\\boxed{...``.
    """
    content_starts = {match.end() for match in _BOX_OPENING.finditer(text)}
    if not content_starts:
        return None
    open_braces: list[int] = []  # for each unclosed "{": where its content starts
    best: tuple[int, int] | None = None
    for token in _BRACE_OR_ESCAPE.finditer(text, min(content_starts) - 1):
        if token.group() == "{":
            open_braces.append(token.end())
        elif token.group() == "}" and open_braces:
            start = open_braces.pop()
            if start in content_starts and (best is None or start > best[0]):
                best = (start, token.start())
    return None if best is None else text[best[0] : best[1]].strip()


# A letter as LaTeX may wrap it: "B", "(B)", "\\text{B}", "\\textbf{(B)}", "\\mathrm{B}".
_LETTER = r"\(?\s*(?:\\(?:text|textbf|mathrm|mathbf)\s*\{\s*\(?\s*)?([A-J])\s*\)?\s*\}?\s*\)?"
_CHOICE_PATTERNS = (
    # Strongest first: an explicit box, then an announced answer, then a bracketed letter.
    re.compile(r"\\boxed\s*\{\s*" + _LETTER + r"\s*\}"),
    re.compile(r"(?i:answer|choice|option)\s*(?i:is)?\s*[:=]?[\s*$]*" + _LETTER + r"(?![A-Za-z])"),
    re.compile(r"\(([A-J])\)"),
    re.compile(r"^\s*\**([A-J])[.):\s]*\**\s*$", re.MULTILINE),
)


def extract_choice(text: str, letters: str = "ABCD") -> str | None:
    """The multiple-choice letter a completion commits to; the last one of the strongest form wins.

    Forms, strongest first: ``\\boxed{B}``; an announced answer (``Answer: B``, ``the answer is
    (B)``, ``option B``); a bracketed letter ``(B)``; a line holding only the letter. Only the
    letters in ``letters`` count, so "Answer: I think..." is not option I of a four-option question.
    """
    text = text[-MAX_SCORED_CHARS:]
    for pattern in _CHOICE_PATTERNS:
        found = [letter for letter in pattern.findall(text) if letter in letters]
        if found:
            return found[-1]
    return None


# ---------------------------------------------------------------------------------------------
# Verification (runs inside the worker process)


def _gold_forms(answer: str) -> list[str]:
    """Ways to hand a reference answer to math-verify, best first.

    A bare answer is boxed (``\\boxed{\\$18.90}`` parses where ``$\\$18.90$`` does not); one that
    already has a box or ``$...$`` delimiters is passed as it is first.
    """
    answer = answer.strip()
    boxed, dollars = f"\\boxed{{{answer}}}", f"${answer}$"
    delimited = "\\boxed" in answer or (answer.startswith("$") and answer.endswith("$") and not answer.endswith("\\$"))
    return [answer, boxed, dollars] if delimited else [boxed, dollars, answer]


def _verify_math(completion: str, answer: str) -> Score:
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    boxed = last_boxed(completion)
    gold = []
    for gold_text in _gold_forms(answer):
        gold = parse(
            gold_text, extraction_config=[LatexExtractionConfig(), ExprExtractionConfig()], parsing_timeout=None
        )
        if gold:
            break
    else:
        # A reference math-verify cannot read (free text) still matches itself, spaces aside.
        if boxed is not None and "".join(boxed.split()) == "".join(answer.split()):
            return Score(True, boxed)
        raise ValueError(f"the reference answer {answer!r} cannot be parsed")
    # The last boxed answer decides when there is one; otherwise math-verify's own search.
    target = f"\\boxed{{{boxed}}}" if boxed is not None else completion
    prediction = parse(
        target,
        extraction_config=[LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()],
        parsing_timeout=None,
    )
    if not prediction:
        return Score(False, None)
    extracted = str(prediction[-1]) if boxed is None else boxed
    return Score(bool(verify(gold, prediction, timeout_seconds=None)), extracted)


def scored_text(completion: str, kind: str = "math") -> str:
    """The part of a completion the scorer reads, at most about ``MAX_SCORED_CHARS`` characters.

    For math, the last complete ``\\boxed{}`` decides, so it is kept whole (found in one linear
    pass over the full text, so a box that opens before the cut is never read half); a box longer
    than ``MAX_SCORED_CHARS`` is no answer. Without a box, and for multiple choice, the tail is
    kept, cut at a space so that a number is never read from its last digits.
    """
    if kind == "math":
        boxed = last_boxed(completion)
        if boxed is not None:
            return f"\\boxed{{{boxed}}}" if len(boxed) <= MAX_SCORED_CHARS else ""
    if len(completion) <= MAX_SCORED_CHARS:
        return completion
    tail = completion[-MAX_SCORED_CHARS:]
    space = re.search(r"\s", tail)
    return tail[space.end() :] if space else ""


def _choice_letters(answer: str) -> str:
    """The option letters a choice answer implies: A-D, or up to the answer's letter when it is later."""
    index = CHOICE_LETTERS.find(answer.strip().upper()[:1]) if answer.strip() else -1
    return CHOICE_LETTERS[: max(4, index + 1)]


def score_locally(completion: str, answer: str, kind: str = "math") -> Score:
    """Score one completion in this process, without a time limit (the worker's entry point)."""
    completion = scored_text(completion, kind)
    if kind == "choice":
        letter = extract_choice(completion, _choice_letters(answer))
        return Score(letter is not None and letter == answer.strip().upper(), letter)
    if kind == "math":
        return _verify_math(completion, answer)
    raise ValueError(f"unknown answer kind {kind!r}; choose from {', '.join(ANSWER_KINDS)}")


def _shorten(extracted: str | None, limit: int = 200) -> str | None:
    return extracted if extracted is None or len(extracted) <= limit else extracted[: limit - 3] + "..."


def _worker_main() -> None:
    """Read JSON requests ``[completion, answer, kind]`` from stdin, answer one JSON line each."""
    import logging

    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    # One answer of each kind before "ready": the LaTeX grammar and sympy's parsers load on first
    # use (about a second), which must not be billed to the first real completion's time limit.
    score_locally("so \\boxed{\\frac{1}{2}}", "0.5", "math")
    score_locally("The answer is 3.", "3", "math")
    score_locally("Answer: B", "B", "choice")
    print(json.dumps("ready"), flush=True)
    for line in sys.stdin:
        completion, answer, kind = json.loads(line)
        try:
            score = score_locally(completion, answer, kind)
            reply = ["ok", score.correct, _shorten(score.extracted)]
        except Exception as error:  # noqa: BLE001 - any failure makes this completion unscorable
            reply = ["error", None, f"{type(error).__name__}: {error}"]
        print(json.dumps(reply), flush=True)


# A worker that neither answers nor uses the CPU (blocked) is stopped after this many time limits.
WALL_LIMIT_FACTOR = 10
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds a process has used (Linux ``/proc``); None where unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # After the command name: state is field 3, utime and stime fields 14 and 15 (1-based).
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


class Verifier:
    """Scores completions in a persistent worker process, each within ``timeout_s`` CPU seconds.

    A completion that runs out of time is unscorable (``correct=None``); the worker is killed and
    a fresh one started for the rest, so one pathological answer costs ``timeout_s`` and no more.
    The limit counts the worker's CPU time (on Linux), so that whether an answer is scorable does
    not depend on how busy the machine is; a worker blocked without using the CPU is stopped after
    ``WALL_LIMIT_FACTOR`` limits of wall time.
    The worker is a plain ``python -m egsw.tasks.rewards`` subprocess (not multiprocessing), so it works
    from any caller, including scripts without an ``if __name__ == "__main__"`` guard.
    """

    def __init__(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        self.timeout_s = timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self._buffer = b""
        self._lock = threading.Lock()
        self.timeouts = 0

    def _start(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "egsw.tasks.rewards"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            # Its own session: a Ctrl-C meant for training does not kill it mid-answer. It still
            # ends with its parent, when its stdin closes.
            start_new_session=True,
        )
        self._buffer = b""
        if self._read_reply(_WORKER_START_TIMEOUT_S) != "ready":
            self.close()
            raise RuntimeError("the answer-verification worker did not start; check that math-verify is installed")

    def _read_reply(self, timeout_s: float, cpu_limit: bool = False) -> Any:  # noqa: ANN401 - one JSON value
        """The worker's next reply line, or None when it does not come in time.

        With ``cpu_limit`` the limit is ``timeout_s`` seconds of the *worker's CPU time* (Linux), so
        that a verdict does not depend on how loaded the machine is; a worker that hangs without
        using the CPU is still stopped after ``WALL_LIMIT_FACTOR`` times the limit of wall time.
        """
        assert self._process is not None and self._process.stdout is not None
        started, cpu_start = time.monotonic(), _cpu_seconds(self._process.pid) if cpu_limit else None
        wall_limit = timeout_s * (WALL_LIMIT_FACTOR if cpu_start is not None else 1)
        descriptor = self._process.stdout.fileno()
        while b"\n" not in self._buffer:
            elapsed = time.monotonic() - started
            if cpu_start is not None and elapsed >= timeout_s:
                used = _cpu_seconds(self._process.pid)
                if used is None or used - cpu_start >= timeout_s:
                    return None
            if elapsed >= wall_limit:
                return None
            wait = min(wall_limit - elapsed, max(timeout_s - elapsed, 0.05))
            if not select.select([descriptor], [], [], wait)[0]:
                continue
            chunk = os.read(descriptor, 1 << 16)
            if not chunk:  # the worker died
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def close(self) -> None:
        """Stop the worker process (a new one starts on the next call)."""
        if self._process is not None:
            self._process.kill()
            self._process.wait(timeout=5)
            for stream in (self._process.stdin, self._process.stdout):
                if stream is not None:
                    stream.close()
        self._process = None

    def score(
        self, completions: Sequence[str], answers: Sequence[str], kinds: Sequence[str] | str = "math"
    ) -> list[Score]:
        """Score each completion against its reference answer; ``kinds`` is one kind or one per item."""
        kinds = [kinds] * len(completions) if isinstance(kinds, str) else list(kinds)
        if not len(completions) == len(answers) == len(kinds):
            raise ValueError(f"got {len(completions)} completions, {len(answers)} answers and {len(kinds)} kinds")
        for kind in set(kinds):
            if kind not in ANSWER_KINDS:
                raise ValueError(f"unknown answer kind {kind!r}; choose from {', '.join(ANSWER_KINDS)}")
        scores: list[Score] = []
        with self._lock:
            for completion, answer, kind in zip(completions, answers, kinds, strict=True):
                if self._process is None or self._process.poll() is not None:
                    self._start()
                assert self._process is not None and self._process.stdin is not None
                request = json.dumps([scored_text(str(completion), kind), str(answer), kind])
                self._process.stdin.write(request.encode() + b"\n")
                self._process.stdin.flush()
                reply = self._read_reply(self.timeout_s, cpu_limit=True)
                if reply is None:
                    self.timeouts += 1
                    self.close()
                    scores.append(Score(None, None))
                    continue
                status, correct, extracted = reply
                scores.append(Score(correct, extracted) if status == "ok" else Score(None, None))
        return scores

    def __del__(self) -> None:
        # Not contextlib.suppress: at interpreter shutdown module globals may already be None.
        try:  # noqa: SIM105
            self.close()
        except Exception:  # noqa: BLE001 - nothing to do about it then
            pass


@functools.cache
def default_verifier() -> Verifier:
    """The process-wide verifier used by the reward functions and ``egsw score``."""
    return Verifier()


def score_completions(
    completions: Sequence[str], answers: Sequence[str], kinds: Sequence[str] | str = "math"
) -> list[Score]:
    """Score completions with the process-wide verifier (time-limited, see ``Verifier``)."""
    return default_verifier().score(completions, answers, kinds)


# ---------------------------------------------------------------------------------------------
# Reward functions (TRL signature: keyword columns, one value per completion)


def completion_text(completion: Any) -> str:  # noqa: ANN401 - str or a list of chat messages
    """The text of a completion as TRL passes it: a string, or a list of chat messages."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        return "".join(str(message.get("content", "")) for message in completion if isinstance(message, dict))
    raise TypeError(f"a completion must be a string or a list of messages, got {type(completion).__name__}")


def accuracy_reward(
    completions: list[Any], answer: list[str], kind: list[str] | None = None, **_: Any
) -> list[float | None]:
    """1.0 for a correct final answer, 0.0 for a wrong or missing one, None when it could not be scored."""
    scores = score_completions([completion_text(c) for c in completions], answer, kind or "math")
    return [None if score.correct is None else float(score.correct) for score in scores]


def format_reward(completions: list[Any], **_: Any) -> list[float]:
    """1.0 when the completion ends its answer in one non-empty ``\\boxed{}``, else 0.0."""
    rewards = []
    for completion in completions:
        text = completion_text(completion)
        boxed = last_boxed(text)
        rewards.append(1.0 if boxed and text.count("\\boxed") == 1 else 0.0)
    return rewards


# open-r1's "<think>" format: the reasoning in one <think>...</think> block at the start, then the
# boxed answer after it (the answer form the accuracy reward reads).
_THINK_THEN_ANSWER = re.compile(r"^\s*<think>(?:(?!</?think>).)+</think>(?:(?!</?think>).)*\\boxed\s*\{", re.DOTALL)


def think_format_reward(completions: list[Any], **_: Any) -> list[float]:
    """1.0 for ``<think>reasoning</think>`` followed by exactly one non-empty ``\\boxed{}``, else 0.0."""
    return [
        1.0 if _THINK_THEN_ANSWER.match(completion_text(c)) and format_reward([c])[0] == 1.0 else 0.0
        for c in completions
    ]


REWARD_FUNCTIONS: dict[str, RewardFunc] = {
    "accuracy": accuracy_reward,
    "format": format_reward,
    "think_format": think_format_reward,
}


if __name__ == "__main__":
    _worker_main()
