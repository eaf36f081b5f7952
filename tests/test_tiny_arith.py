"""The tiny-arith testbed: character tokenizer, chat template, worked solutions, train-only data, build and cache."""

from __future__ import annotations

import fcntl
import threading
import time
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

import egsw.models.tiny_arith as tiny_arith
from egsw.models import (
    COMPLETE_MARKER,
    TINY_ARITH,
    TINY_ARITH_FOLDER,
    build_tiny_arith,
    builtin_models,
    check_model_name,
    resolve_model,
)
from egsw.models.__main__ import main as models_main
from egsw.models.tiny_arith import (
    GENERATION_PROMPT,
    PretrainSettings,
    build_tokenizer,
    encode_batch,
    lr_factor,
    problem_pool,
    render_prompt,
    solution_steps,
    validation_problems,
    worked_solution,
)
from egsw.tasks.procedural import (
    DEFAULT_HELDOUT_SEED,
    DEFAULT_HELDOUT_SIZE,
    DEFAULT_KINDS,
    DEFAULT_LEVELS,
    PROBLEM_KINDS,
    generate_problems,
    problem_prompt,
    procedural_examples,
    split_of,
)

# A build that takes seconds: a few steps on small batches, a small validation set.
QUICK = PretrainSettings(batch_size=8, max_steps=6, eval_every=3, validation_size=6, warmup_steps=2)


def all_kinds_problems(n: int = 600) -> list:
    return generate_problems(n, "train", seed=5, kinds=tuple(PROBLEM_KINDS), levels=(1, 2, 3)) + generate_problems(
        n // 4, "heldout", seed=5, kinds=tuple(PROBLEM_KINDS), levels=(1, 2, 3)
    )


# ---------------------------------------------------------------------------------------------
# Tokenizer and chat template


def test_decode_of_encode_is_the_text_for_every_prompt_and_solution() -> None:
    tokenizer = build_tokenizer()
    for problem in all_kinds_problems():
        for text in (render_prompt(tokenizer, problem.question), worked_solution(problem), problem.question):
            ids = tokenizer.encode(text, add_special_tokens=False)
            assert tokenizer.unk_token_id not in ids
            assert len(ids) == len(text)  # one token per character
            assert tokenizer.decode(ids) == text
    boxed = "12 - 4 = 8. \\boxed{8}"
    assert tokenizer.decode(tokenizer.encode(boxed, add_special_tokens=False)) == boxed


def test_special_tokens_are_skipped_and_unknown_characters_map_to_unk() -> None:
    tokenizer = build_tokenizer()
    ids = tokenizer.encode("7 + 5", add_special_tokens=False) + [tokenizer.eos_token_id, tokenizer.pad_token_id]
    assert tokenizer.decode(ids, skip_special_tokens=True) == "7 + 5"
    assert tokenizer.encode("é", add_special_tokens=False) == [tokenizer.unk_token_id]
    assert {tokenizer.pad_token, tokenizer.eos_token, tokenizer.unk_token} == {"<pad>", "<eos>", "<unk>"}


def test_tokenizer_round_trips_through_save_and_from_pretrained(tmp_path: Path) -> None:
    tokenizer = build_tokenizer()
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path, padding_side="left")
    text = render_prompt(
        tokenizer, "Mia has 3 coins, gets 4 more, then gives away 2. How many coins does Mia have now?"
    )
    assert loaded.encode(text, add_special_tokens=False) == tokenizer.encode(text, add_special_tokens=False)
    assert loaded.decode(loaded.encode(text, add_special_tokens=False)) == text
    assert render_prompt(loaded, "What is 1 + 2?") == "What is 1 + 2?" + GENERATION_PROMPT
    assert (loaded.pad_token_id, loaded.eos_token_id) == (tokenizer.pad_token_id, tokenizer.eos_token_id)


def test_left_padding_pads_before_the_prompt() -> None:
    tokenizer = build_tokenizer()
    tokenizer.padding_side = "left"
    batch = tokenizer(["ab", "abcd"], padding=True, add_special_tokens=False, return_tensors="pt")
    assert batch["input_ids"][0].tolist()[:2] == [tokenizer.pad_token_id] * 2
    assert batch["attention_mask"].tolist() == [[0, 0, 1, 1], [1, 1, 1, 1]]
    assert tokenizer.decode(batch["input_ids"][0], skip_special_tokens=True) == "ab"


def test_chat_template_renders_only_the_last_question_and_the_generation_prompt() -> None:
    tokenizer = build_tokenizer()
    messages = problem_prompt("What is 7 + 5 - 4?")  # worked example first, the question last
    assert len(messages) == 3
    assert render_prompt(tokenizer, "What is 7 + 5 - 4?") == "What is 7 + 5 - 4?\nA: "
    with_system = [{"role": "system", "content": "You are helpful."}, *messages]
    rendered = tokenizer.apply_chat_template(with_system, tokenize=False, add_generation_prompt=True)
    assert rendered == "What is 7 + 5 - 4?\nA: "
    without_prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    assert without_prompt == "What is 7 + 5 - 4?"
    plain = [{"role": "user", "content": "What is 2 + 2?"}]
    assert tokenizer.apply_chat_template(plain, tokenize=False, add_generation_prompt=True) == "What is 2 + 2?\nA: "


def test_template_tokens_match_what_trl_and_egsw_eval_feed_the_model() -> None:
    """TRL tokenizes through apply_chat_template(tokenize=True); egsw eval renders then encodes."""
    tokenizer = build_tokenizer()
    examples = procedural_examples(6, "heldout", 0, DEFAULT_KINDS, DEFAULT_LEVELS)
    prompts = [example.prompt for example in examples]
    trl_ids = tokenizer.apply_chat_template(prompts, tokenize=True, add_generation_prompt=True, return_dict=True)
    for ids, example in zip(trl_ids["input_ids"], examples, strict=True):
        rendered = tokenizer.apply_chat_template(example.prompt, tokenize=False, add_generation_prompt=True)
        assert ids == tokenizer(rendered, add_special_tokens=False)["input_ids"]
        assert 15 <= len(rendered) <= 120


# ---------------------------------------------------------------------------------------------
# Worked solutions and pre-training data


def test_worked_solution_boxes_the_answer_and_every_step_is_right() -> None:
    for problem in all_kinds_problems(1500):
        solution = worked_solution(problem)
        assert solution.endswith(f"\\boxed{{{problem.answer}}}"), (problem, solution)
        assert solution.count("\\boxed") == 1
        for step in solution.split(". ")[:-1]:
            left, result = step.rstrip(".").split(" = ")
            assert eval(left) == int(result), step  # noqa: S307 - digits and + - * only


def test_worked_solution_examples() -> None:
    chain = generate_problems(1, "train", seed=0, kinds=("chain",), levels=(1,))[0]
    first, steps = solution_steps(chain)
    assert len(steps) == 2 and [op for op, _ in steps] == ["+", "-"]
    two_step_word = next(p for p in generate_problems(40, "train", 0, ("word",), (1,)) if "gives away" in p.question)
    assert [op for op, _ in solution_steps(two_step_word)[1]] == ["+", "-"]
    problem = tiny_arith.Problem("x", "What is 7 + 5 - 4?", "8", "chain", 1)
    assert worked_solution(problem) == "7 + 5 = 12. 12 - 4 = 8. \\boxed{8}"
    with pytest.raises(ValueError, match="cannot read"):
        worked_solution(tiny_arith.Problem("x", "Why?", "1", "chain", 1))


def test_pretraining_and_validation_problems_come_from_the_train_split_only() -> None:
    settings = PretrainSettings()
    validation = validation_problems(settings)
    exclude = {p.question for p in validation}
    pool = problem_pool(settings.kinds, settings.levels, tiny_arith.PRETRAIN_SEED, 500, exclude)
    heldout_problems = generate_problems(
        DEFAULT_HELDOUT_SIZE, "heldout", DEFAULT_HELDOUT_SEED, DEFAULT_KINDS, DEFAULT_LEVELS
    )
    heldout = {p.question for p in heldout_problems}
    pooled = [p for problems in pool.values() for p in problems]
    assert set(pool) == set(DEFAULT_KINDS) and all(len(problems) == 500 for problems in pool.values())
    assert all(split_of(p.question) == "train" for p in [*pooled, *validation])
    assert not heldout & {p.question for p in pooled} and not heldout & exclude
    assert not exclude & {p.question for p in pooled}
    assert len(validation) == settings.validation_size and {p.kind for p in validation} == set(DEFAULT_KINDS)


def test_batches_mask_the_prompt_and_end_with_eos() -> None:
    tokenizer = build_tokenizer()
    problems = generate_problems(4, "train", seed=1, kinds=DEFAULT_KINDS, levels=DEFAULT_LEVELS)
    batch = encode_batch(tokenizer, problems)
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape
    rows = zip(batch["input_ids"], batch["labels"], batch["attention_mask"], problems, strict=True)
    for row, labels, mask, problem in rows:
        kept = labels[labels != -100].tolist()
        assert tokenizer.decode(kept[:-1]) == worked_solution(problem) and kept[-1] == tokenizer.eos_token_id
        prompt_length = len(render_prompt(tokenizer, problem.question))
        assert tokenizer.decode(row[:prompt_length].tolist()) == render_prompt(tokenizer, problem.question)
        assert (labels[:prompt_length] == -100).all() and mask.sum() == prompt_length + len(kept)


def test_learning_rate_warms_up_then_decays_to_the_floor() -> None:
    settings = PretrainSettings(warmup_steps=10, max_steps=110, min_lr_ratio=0.1)
    factors = [lr_factor(step, settings) for step in range(130)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0) and factors[10] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(factors[10:], factors[11:], strict=False))
    assert factors[110] == pytest.approx(0.1) and factors[129] == pytest.approx(0.1)


# ---------------------------------------------------------------------------------------------
# Build, load, cache


def test_tiny_arith_is_a_builtin_name() -> None:
    assert TINY_ARITH in builtin_models()
    check_model_name(TINY_ARITH)


def test_a_quick_build_loads_with_from_pretrained_and_generates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    splits: list[str] = []
    real_iter_problems = tiny_arith.iter_problems

    def recording_iter_problems(split: str, *args: object, **kwargs: object):  # noqa: ANN202
        splits.append(split)
        return real_iter_problems(split, *args, **kwargs)

    monkeypatch.setattr(tiny_arith, "iter_problems", recording_iter_problems)
    threads = torch.get_num_threads()
    folder = build_tiny_arith(tmp_path / "tiny-arith", QUICK)
    assert torch.get_num_threads() == threads
    assert splits and set(splits) == {"train"}
    assert (folder / COMPLETE_MARKER).read_text().startswith("tiny-arith: 6 steps, loss")
    assert not list(tmp_path.glob(".tiny-arith-*"))  # the staging folder was renamed

    model = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder, padding_side="left")
    assert model.dtype == torch.float32 and model.config.tie_word_embeddings
    assert model.config.vocab_size == len(tokenizer) == 99
    assert 500_000 < model.num_parameters() < 5_000_000
    assert (model.generation_config.pad_token_id, model.generation_config.eos_token_id) == (
        tokenizer.pad_token_id,
        tokenizer.eos_token_id,
    )
    prompts = [render_prompt(tokenizer, q) for q in ("What is 1 + 2?", "Ana has 3 books and gets 4 more. How many?")]
    encoded = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    output = model.generate(**encoded, max_new_tokens=5, do_sample=False)
    assert output.shape[0] == 2 and encoded["input_ids"].shape[1] < output.shape[1] <= encoded["input_ids"].shape[1] + 5
    assert all(isinstance(text, str) for text in tokenizer.batch_decode(output, skip_special_tokens=True))


def test_a_built_folder_is_returned_without_building_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "models" / TINY_ARITH_FOLDER
    folder.mkdir(parents=True)
    (folder / COMPLETE_MARKER).write_text("built\n")
    monkeypatch.setattr(tiny_arith, "save_tiny_arith", lambda *a, **k: pytest.fail("rebuilt a complete folder"))
    monkeypatch.setenv("EGSW_CACHE", str(tmp_path))
    assert resolve_model(TINY_ARITH).path == str(folder)
    assert build_tiny_arith() == folder
    assert models_main([TINY_ARITH]) == 0  # python -m egsw.models tiny-arith
    assert capsys.readouterr().out.strip() == str(folder)


def test_an_incomplete_folder_is_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "tiny"
    folder.mkdir()
    (folder / "config.json").write_text("{}")  # left by an interrupted build: no marker
    calls: list[Path] = []

    def fake_save(staging: Path, settings: PretrainSettings) -> tiny_arith.PretrainOutcome:
        calls.append(Path(staging))
        (Path(staging) / "config.json").write_text('{"new": true}')
        return tiny_arith.PretrainOutcome((tiny_arith.Check(1, 0.5, 0.5),), 0.1)

    monkeypatch.setattr(tiny_arith, "save_tiny_arith", fake_save)
    assert build_tiny_arith(folder, QUICK) == folder
    assert len(calls) == 1 and (folder / "config.json").read_text() == '{"new": true}'
    assert (folder / COMPLETE_MARKER).exists()


def test_a_second_builder_waits_for_the_first_and_uses_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "tiny"
    monkeypatch.setattr(tiny_arith, "save_tiny_arith", lambda *a, **k: pytest.fail("built twice"))
    result: list[Path] = []
    with open(tmp_path / f".{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the first builder holds the lock
        waiter = threading.Thread(target=lambda: result.append(build_tiny_arith(folder, QUICK)))
        waiter.start()
        time.sleep(0.3)
        assert waiter.is_alive() and not result  # waiting on the lock
        folder.mkdir()
        (folder / COMPLETE_MARKER).write_text("built by the first\n")
    waiter.join(timeout=10)
    assert result == [folder]
