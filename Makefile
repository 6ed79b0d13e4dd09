# mirrors: `make demo` shows it working, `make test` proves it.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install lint typecheck test test-unit bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

# The whole suite: lint, types, unit, Vault (real OpenBao) and end-to-end (real API server).
test: lint typecheck
	$(BIN)/pytest

test-unit: install
	$(BIN)/pytest tests/unit

bench: install
	$(BIN)/python -m bench.hooks

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis

# Scenario 1 on a local control plane (built on first use), left running; see hack/demo.py.
.PHONY: demo demo-down
demo: install
	$(BIN)/python hack/demo.py up

demo-down:
	$(if $(wildcard $(BIN)/python),$(BIN)/python,$(PYTHON)) hack/demo.py down
