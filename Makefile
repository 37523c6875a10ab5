# Two commands: `make run` and `make test`. Everything else is set up on the way.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
WEB_THREADS ?= 8

.PHONY: run test bench clean

$(BIN)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

run: $(BIN)/.installed
	@mkdir -p var
	$(BIN)/flask --app wsgi db init
	$(BIN)/gunicorn --workers 1 --threads $(WEB_THREADS) --bind $(HOST):$(PORT) --access-logfile - wsgi:app

test: $(BIN)/.installed
	$(BIN)/pytest $(PYTEST_ARGS)

bench: $(BIN)/.installed
	$(BIN)/python -m bench.checkout && $(BIN)/python -m bench.read_side

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis
