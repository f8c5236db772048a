# Dari: `make run` serves the demo, `make test` runs the whole suite.
#   make test          lint, then every test on SQLite and PostgreSQL (browser ones too);
#                      fails if the run changed any file git tracks or would list
#   make test-fast     the edit-test loop: SQLite only, no browser, no slow tests
#   make guide-images  rewrite the user guides' screenshots in docs/img
#   make lint | format | bench | run | services | clean
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test test-fast guide-images lint format services venv migrate demo bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
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
	$(BIN)/python -m tests.worktree $(BIN)/pytest

# Needs no service: SQLite only, and what needs PostgreSQL, Redis or Chromium is left out.
test-fast: venv
	DARI_TEST_BACKENDS=sqlite $(BIN)/pytest -m "not browser and not slow and not postgres and not redis"

# The browser tests again, this time also writing their guide screenshots into docs/img.
guide-images: venv services
	DARI_GUIDE_IMAGES=1 DARI_TEST_BACKENDS=sqlite $(BIN)/pytest -m browser tests/web
	$(BIN)/pytest -q tests/web/test_guide.py

bench: venv services
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
