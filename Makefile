# cohortsync: `make run` for the demo, `make test` for the tests. CI calls these targets too
# (.ci/run). Needs only Python 3.11+ and make; everything else goes into .venv.

VENV := .venv
PY := $(VENV)/bin/python
# The first Python 3.11+ on PATH; override with `make run PYTHON=/path/to/python3`.
PYTHON ?= $(shell for p in python3.14 python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	2>/dev/null && { echo $$p; break; }; done)
PORT ?= 8000
SANDBOX_PORT ?= 8765
RUNSTACK_ARGS ?=
PYTEST_ARGS ?=

.PHONY: help run test lint fmt clean
.DEFAULT_GOAL := help

help:
	@echo "make run    set up .venv, migrate, seed the demo and start web, worker, cron, simulator"
	@echo "make test   set up .venv with dev tools and run the whole test suite"
	@echo "make lint   ruff check, ruff format --check, mypy, the layer order (lint-imports)"
	@echo "make fmt    fix what ruff can"

run: export DEBUG := true
run: export COHORTSYNC_ALLOW_INSECURE_ENDPOINTS := true
run: $(VENV)/.installed
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo --port $(PORT) --sandbox-port $(SANDBOX_PORT)
	$(PY) manage.py runstack --port $(PORT) --sandbox-port $(SANDBOX_PORT) $(RUNSTACK_ARGS)

# DATABASE_URL and REDIS_URL pass through when set; unset, tests use SQLite and an embedded Valkey.
test: export DEBUG := true
test: $(VENV)/.installed-dev
	$(PY) -m pytest $(PYTEST_ARGS)

# DEBUG=true because mypy's django-stubs plugin loads the settings, which need secrets.
lint: export DEBUG := true
lint: $(VENV)/.installed-dev
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy .
	$(VENV)/bin/lint-imports

fmt: $(VENV)/.installed-dev
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

$(PY):
	@test -n "$(PYTHON)" || { echo "cohortsync needs Python 3.11 or newer on PATH" \
		"(or: make PYTHON=/path/to/python3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)

# Stamp files: reinstall only when a requirements file changes.
$(VENV)/.installed: requirements.txt | $(PY)
	$(PY) -m pip install -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(PY)
	$(PY) -m pip install -r requirements-dev.txt
	touch $@ $(VENV)/.installed
