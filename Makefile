# Dari: `make run` serves the demo, `make test` runs the whole suite.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint format services venv migrate demo bench clean lock

# Installs come from requirements.lock only (pinned, with hashes); `make lock` renews it.
$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
	touch $(STAMP)

venv: $(STAMP)

migrate: venv
	$(BIN)/dari migrate

demo: migrate
	$(BIN)/dari demo

run: demo
	$(BIN)/dari serve

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

services:
	bash .ci/services.sh

test: venv lint services
	$(BIN)/pytest

bench: venv services
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache

# Renew the lock after changing dependencies in pyproject.toml (needs the package index);
# `make lock UPGRADE=1` also moves every pin to its newest release.
lock: venv
	$(BIN)/python -m pip install --quiet uv
	printf 'setuptools>=77\n' | $(BIN)/uv pip compile pyproject.toml - --extra test \
		--generate-hashes --universal --python-version 3.11 --no-header \
		$(if $(UPGRADE),--upgrade) -o requirements.lock

