# Two commands: `make run` and `make test`. Everything else is set up on the way.
# Also: `make unit` / `integration` / `e2e` (one speed of tests), `chaos`, `lint`, `typecheck`, `coverage`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
WEB_THREADS ?= 8
TEST_WORKERS ?= 3

.PHONY: run test unit integration e2e chaos lint typecheck coverage bench clean

$(BIN)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

run: $(BIN)/.installed
	@mkdir -p var
	$(BIN)/flask --app wsgi db upgrade
	$(BIN)/gunicorn --workers 1 --threads $(WEB_THREADS) --bind $(HOST):$(PORT) --access-logfile - --logger-class app.logs.GunicornLogger wsgi:app

# Every test has its own PostgreSQL schema and Redis prefix, so they run in parallel (pytest-xdist).
test: $(BIN)/.installed
	$(BIN)/pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

unit: $(BIN)/.installed
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

integration: $(BIN)/.installed
	$(BIN)/pytest tests/integration $(PYTEST_ARGS)

e2e: $(BIN)/.installed
	$(BIN)/pytest tests/e2e $(PYTEST_ARGS)

# Kill -9 and restarts under load, on throwaway servers (~70 s); prints what clients saw.
chaos: $(BIN)/.installed
	$(BIN)/pytest tests/chaos -s $(PYTEST_ARGS)

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(BIN)/.installed
	$(BIN)/mypy

# Branch coverage of the four packages over the tests (PYTEST_ARGS narrows them), summed per package.
# Only this process is measured: code run in child processes (the integration tests' workers) is not.
coverage: $(BIN)/.installed
	@mkdir -p var
	$(BIN)/coverage run --data-file=var/.coverage --branch --source=app,domain,projections,workers \
		-m pytest $(PYTEST_ARGS)
	$(BIN)/coverage json --data-file=var/.coverage -q -o var/coverage.json
	$(BIN)/python tests/coverage_by_package.py var/coverage.json

bench: $(BIN)/.installed
	@# both parts run; the target fails if either missed a target or failed
	$(BIN)/python -m bench.checkout; checkout=$$?; $(BIN)/python -m bench.read_side && exit $$checkout

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis
