# The project's verbs. `make help` lists them.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DATA_DIR ?= data
DEMO_DIR := $(DATA_DIR)/demo
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
# The coverage floor of `make test`, in percent of cjm_ml's lines (set from a full-suite run).
COV_FLOOR ?= 95
# Two workers, one test file per worker at a time (module fixtures are built once).
PYTEST := $(BIN)/pytest -q -n 2 --dist loadfile

.DEFAULT_GOAL := help
.PHONY: help install demo test lint format typecheck unit browser wrk bench lock clean

help: ## list the verbs
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): requirements.lock pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP) ## create .venv and install the pinned dependencies and cjm_ml

demo: install ## simulate a dealer group and run the whole pipeline on the embedded defaults
	$(BIN)/cjm demo --out $(DEMO_DIR)

test: install lint typecheck browser ## lint, type-check, run every test (notebooks, browser) with coverage
	$(PYTEST) --cov=cjm_ml --cov-report=term --cov-fail-under=$(COV_FLOOR)

unit: install ## the fast tier: no simulated group, browser, server or notebook (under 90 s)
	$(PYTEST) -m "not slow"

lint: install ## ruff format check, lint (complexity too) and the import-layer contracts
	$(BIN)/ruff format --check cjm_ml tests benchmarks
	$(BIN)/ruff check cjm_ml tests benchmarks
	$(BIN)/lint-imports

format: install ## apply ruff formatting and safe fixes
	$(BIN)/ruff format cjm_ml tests benchmarks
	$(BIN)/ruff check --fix cjm_ml tests benchmarks

typecheck: install ## mypy on the package
	$(BIN)/mypy cjm_ml

browser: ## headless Chromium for the journey-map browser test (Debian's chromium, if missing)
	@test -x $(CHROMIUM) || { $(SUDO) apt-get update && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; }

wrk: ## the HTTP load generator for benchmarks/api.py (Debian's wrk, if missing)
	@command -v wrk >/dev/null || { $(SUDO) apt-get update && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y wrk; }

bench: install wrk ## the benchmark scripts (figures go to the README's performance table)
	$(BIN)/python benchmarks/simulate.py
	$(BIN)/python benchmarks/features.py
	$(BIN)/python benchmarks/training.py
	$(BIN)/python benchmarks/score_one.py
	$(BIN)/python benchmarks/explain.py
	$(BIN)/python benchmarks/api.py

lock: ## re-resolve requirements.lock from pyproject.toml (needs network)
	$(PY) -m venv /tmp/cjm-lock-venv && /tmp/cjm-lock-venv/bin/pip install --quiet uv
	/tmp/cjm-lock-venv/bin/uv pip compile pyproject.toml --extra dev --python-version 3.11 -o requirements.lock

clean: ## remove the venv and generated data
	rm -rf $(VENV) $(DATA_DIR) .mypy_cache .ruff_cache .pytest_cache .coverage .coverage.*
