# mirrors: `make demo` shows it working, `make test` proves it.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install lint typecheck test test-unit bench clean lock

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

# Pin the image's dependencies (runtime and build backend) with hashes from pyproject.toml;
# existing pins are kept unless pyproject.toml needs others (add --upgrade to refresh them).
PIP_COMPILE := $(BIN)/pip-compile --quiet --generate-hashes --strip-extras --allow-unsafe \
	--no-emit-index-url --no-emit-find-links
lock: install
	$(PIP_COMPILE) -o requirements.lock pyproject.toml
	$(PIP_COMPILE) --build-deps-for=wheel --only-build-deps -o requirements-build.lock pyproject.toml
