# The README's two commands are `make demo` and `make test`; each sets up .venv on a bare machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
LINT_PATHS := bot handlers tests $(wildcard benchmarks)

.PHONY: demo demo-once test lint format package-check bench bench-quick clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)  ## the whole loop against the local Slack sandbox; keeps running for exploration
	$(BIN)/postmortem-bot demo $(DEMO_ARGS)

demo-once: $(STAMP)  ## the scripted loop, then exit
	$(BIN)/postmortem-bot demo --once

test: $(STAMP)  ## the whole suite; PostgreSQL tests run when TEST_POSTGRES_URL is set
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/lint-imports
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format $(LINT_PATHS)
	$(BIN)/ruff check --fix $(LINT_PATHS)

package-check: $(STAMP)  ## the wheel and the sdist, each in a clean venv, play the demo (~2 min)
	bash .ci/package-check

BENCH_STAMP := $(VENV)/.bench-stamp
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)  ## B1-B8 against their floors (~20 min quiet); writes benchmarks/results/, prints the table
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

bench-quick: $(STAMP)  ## the same harness in short phases (~90 s, CI): proves it runs, not the numbers
	$(BIN)/python -m benchmarks.run --quick $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
