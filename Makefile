# Two commands: `make run` and `make test`. Everything else is set up on the way.
# Also: `make unit` / `integration` / `e2e` (one speed of tests), `chaos`, `lint`, `typecheck`, `coverage`;
# `lock` (the image's pinned dependencies), `compose-smoke` (the docker compose stack, where docker runs).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
WEB_THREADS ?= 8
TEST_WORKERS ?= 3

.PHONY: run test unit integration e2e chaos lint typecheck coverage bench clean lock compose-smoke

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
	@# every part runs; the target fails if any missed a target or failed
	$(BIN)/python -m bench.checkout; checkout=$$?; \
	$(BIN)/python -m bench.webhooks; webhooks=$$?; \
	$(BIN)/python -m bench.read_side; read_side=$$?; \
	$(BIN)/python -m bench.inventory; inventory=$$?; \
	$(BIN)/python -m bench.scaleout; scaleout=$$?; \
	[ $$checkout = 0 ] && [ $$webhooks = 0 ] && [ $$read_side = 0 ] && [ $$inventory = 0 ] && [ $$scaleout = 0 ]

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis

# The image's dependencies (Dockerfile), pinned with hashes, resolved from pyproject.toml for
# Python 3.11 on every platform. Existing pins are kept unless pyproject.toml needs others;
# `make lock UPGRADE=1` moves every one to the newest allowed.
LOCK := requirements.lock
lock: $(BIN)/.installed
	$(BIN)/pip install --quiet 'uv>=0.5,<1'
	$(BIN)/uv pip compile pyproject.toml --universal --python-version 3.11 --generate-hashes \
		--custom-compile-command 'make lock' --quiet $(if $(UPGRADE),--upgrade) -o $(LOCK)

# Where a docker daemon runs: build the image, bring the compose stack up with the mock provider
# (settings from .env.example, none from this shell or .env), wait until web, both workers and the
# scheduler are healthy, create an admin and a customer key, pay one checkout over HTTP, read the
# order back (brought up to date by the workers), run `audit verify`, tear it all down (volumes too).
# Not part of `make test`. Without a daemon it says so and exits 0.
SMOKE_PORT ?= 18000
SMOKE_TIMEOUT ?= 300
compose-smoke:
	@if ! docker info >/dev/null 2>&1; then echo "compose-smoke skipped: no docker daemon"; exit 0; fi; \
	set -eu; \
	docker compose version >/dev/null 2>&1 || { echo "compose-smoke FAILED: docker compose (v2) not found"; exit 1; }; \
	for name in $$(sed -n 's/^\([A-Z_][A-Z0-9_]*\)=.*/\1/p' .env.example); do unset $$name; done; \
	export PAYMENT_PROVIDER=mock POSTGRES_PASSWORD=smoke TALLY_PORT=$(SMOKE_PORT); \
	dc="docker compose --env-file .env.example -p tally-smoke"; \
	trap '$$dc down -v --remove-orphans >/dev/null 2>&1 || true' EXIT; \
	$$dc up -d --build || { $$dc ps -a; $$dc logs --tail 80; echo "compose-smoke FAILED: up"; exit 1; }; \
	deadline=$$(( $$(date +%s) + $(SMOKE_TIMEOUT) )); \
	until [ "$$(docker inspect -f '{{.State.Health.Status}}' $$($$dc ps -q web worker scheduler) 2>/dev/null \
			| grep -c '^healthy$$')" = 4 ]; do \
		if [ $$(date +%s) -ge $$deadline ]; then \
			$$dc ps -a; $$dc logs --tail 80; \
			echo "compose-smoke FAILED: web, 2 workers and scheduler not all healthy after $(SMOKE_TIMEOUT) s"; exit 1; \
		fi; \
		sleep 5; \
	done; \
	echo "compose-smoke: web, 2 workers and scheduler healthy"; \
	api=http://127.0.0.1:$(SMOKE_PORT)/api; \
	admin=$$($$dc exec -T web flask --app wsgi keys create --role admin | tail -n 1); \
	customer=$$($$dc exec -T web flask --app wsgi keys create --role customer --subject c-1 | tail -n 1); \
	session=$$(curl -fsS -X POST $$api/checkout/sessions \
		-H "Authorization: Bearer $$customer" -H 'Content-Type: application/json' -H 'Idempotency-Key: smoke-cart' \
		-d '{"customer_id": "c-1", "currency": "USD", "items": [{"seller_id": "s-1", "sku": "mug", "description": "Mug", "unit_amount": 1250, "quantity": 2}], "delivery_address": {"line1": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "US"}}' \
		| python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])'); \
	order=$$(curl -fsS -X POST $$api/checkout/sessions/$$session/confirm \
		-H "Authorization: Bearer $$customer" -H 'Content-Type: application/json' -H 'Idempotency-Key: smoke-pay' \
		-d '{"payment_method": "pm_card_visa"}' \
		| python3 -c 'import json, sys; print(json.load(sys.stdin)["order"]["id"])'); \
	echo "compose-smoke: paid, order $$order"; \
	tries=0; until curl -fsS -o /dev/null $$api/orders/$$order -H "Authorization: Bearer $$admin"; do \
		tries=$$((tries + 1)); [ $$tries -lt 30 ] || { echo "compose-smoke FAILED: order not readable"; exit 1; }; \
		sleep 1; \
	done; \
	$$dc exec -T web flask --app wsgi audit verify; \
	echo "compose-smoke passed: stack healthy, one checkout paid with the mock provider, audit verify clean"
