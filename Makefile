# Likha ERP Realtime — the two commands: `make run` and `make test` (each sets everything up first).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
# PostgreSQL for the second test pass (trust auth on the machine's server). Exported: the SQLite pass's embedding test
# (tests/embedding) runs its host ERP on this server too.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/likha
export TEST_DATABASE_URL
PYTEST_ARGS ?=
# e.g. SEED_ARGS=--reset (restore the demo logins and groups) or --allow-other-users (see seed_demo --help)
SEED_ARGS ?=

.PHONY: run serve install install-dev migrate seed test test-sqlite test-postgres lint format bench soak clean

$(VENV)/bin/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (found " + sys.version.split()[0] + "); set PYTHON=/path/to/python3.11")'
	$(PYTHON) -m venv $(VENV)

$(VENV)/.stamp-runtime: requirements.txt pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	touch $@

$(VENV)/.stamp-dev: requirements-dev.txt $(VENV)/.stamp-runtime
	$(PY) -m pip install --disable-pip-version-check -q -r requirements-dev.txt
	touch $@

# The pinned npm clients of the live interop tests (tests/live/js): package.json + package-lock.json.
node_modules/.stamp: package.json package-lock.json
	npm ci --no-audit --no-fund && touch node_modules/.stamp

# Debian's chromium for the cross-origin browser tests (tests/live/test_browser_live.py): Playwright drives the browser
# at $(CHROMIUM), since `playwright install` cannot download its own browser builds here. Exported: the test reads the
# same path. When that file is missing, Debian's package is installed (needs root); another browser binary is used by
# setting CHROMIUM=/its/path.
CHROMIUM ?= /usr/bin/chromium
export CHROMIUM
$(CHROMIUM):
	apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
	@test -x "$(CHROMIUM)" || { echo "Debian's chromium package gave no $(CHROMIUM): set CHROMIUM to the browser's path." >&2; exit 1; }

install: $(VENV)/.stamp-runtime
install-dev: $(VENV)/.stamp-dev

migrate: install
	$(PY) manage.py migrate --noinput

seed: migrate
	$(PY) manage.py seed_demo $(SEED_ARGS)

# /metrics answers for every server process started here (prometheus-client's multi-process mode, docs/OPERATIONS.md):
# `make run` starts a new deployment (the directory emptied), `make serve` adds a process to it.
METRICS_DIR ?= $(CURDIR)/var/prometheus

## make run: venv + pinned install + migrations + demo data, then daphne on $(HOST):$(PORT)
run: seed
	rm -rf "$(METRICS_DIR)" && mkdir -p "$(METRICS_DIR)"
	PROMETHEUS_MULTIPROC_DIR="$(METRICS_DIR)" exec $(PY) -m likha_realtime.server -b $(HOST) -p $(PORT) settings.asgi:application

## make serve: another server process on the same database and Redis (no migrate/seed), e.g. PORT=8001
serve: install
	mkdir -p "$(METRICS_DIR)"
	PROMETHEUS_MULTIPROC_DIR="$(METRICS_DIR)" exec $(PY) -m likha_realtime.server -b $(HOST) -p $(PORT) settings.asgi:application

## make test: the whole suite on SQLite, then again on PostgreSQL
test: lint test-sqlite test-postgres

# The heavy reliability tests (marker "reliability") run once, in the PostgreSQL pass: they measure the server
# (memory, latency, database connections), not the database backend, and would double CI time.
test-sqlite: install-dev node_modules/.stamp $(CHROMIUM)
	env -u DATABASE_URL $(PY) -m pytest -m "not reliability" $(PYTEST_ARGS)

test-postgres: install-dev node_modules/.stamp $(CHROMIUM)
	$(PY) scripts/require_postgres.py "$(TEST_DATABASE_URL)"
	DATABASE_URL="$(TEST_DATABASE_URL)" $(PY) -m pytest $(PYTEST_ARGS)

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy realtime_auth likha_realtime

## make bench: every performance target (docs/BENCHMARKS.md) against 2 daphne processes on Redis and PostgreSQL, with
## the baselines in the same run; a Node load generator in worker processes of its own (bench/perf). Prints each
## target PASS/FAIL, writes docs/BENCHMARKS.md's table and docs/benchmarks.json; exits 1 when a target fails.
BENCH_ARGS ?=
bench: install-dev node_modules/.stamp
	$(PY) scripts/require_postgres.py "$(TEST_DATABASE_URL)"
	DATABASE_URL="$(TEST_DATABASE_URL)" $(PY) -m bench.perf.suite $(BENCH_ARGS)

## make soak: 2,000 subscribed connections over 2 daphne processes on Redis and PostgreSQL, 50 writes/s for 10 minutes,
## 10 % reconnecting every minute; exits non-zero on any lost or duplicated event, ERROR line or RSS growth >= 5 %
## (docs/RELIABILITY.md). Not part of `make test` (its 60-second version is: tests/live/test_soak_live.py).
SOAK_ARGS ?=
soak: install-dev
	$(PY) scripts/require_postgres.py "$(TEST_DATABASE_URL)"
	DATABASE_URL="$(TEST_DATABASE_URL)" $(PY) -m bench.soak $(SOAK_ARGS)

format: install-dev
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) db.sqlite3 .pytest_cache .ruff_cache .hypothesis
