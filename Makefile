# The two commands of the README:
#   make dev    installs jobsys into .venv and runs the whole system on this machine
#   make test   installs the test tools, checks lint and types, runs the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: dev test lint pytest faults clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

dev: $(BIN)/.installed
	$(BIN)/jobsys dev

lint: $(BIN)/.installed
	$(BIN)/ruff check jobsys tests
	$(BIN)/ruff format --check jobsys tests
	$(BIN)/mypy

pytest: $(BIN)/.installed
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test: lint pytest

# The full fault suite (tests/faults): real processes, signals, network namespaces
# (needs root); writes its tables to docs/reliability.md. CI runs its fast subset.
faults: $(BIN)/.installed
	$(BIN)/python tests/faults/run.py $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .jobsys-data .pytest_cache .mypy_cache .ruff_cache
