# Dari: `make run` serves the demo, `make test` runs the whole suite.
#   make test          lint, then every test on SQLite and PostgreSQL (browser ones too);
#                      fails if the run changed any file git tracks or would list
#   make test-fast     the edit-test loop: SQLite only, no browser, no slow tests
#   make fuzz          schemathesis over the whole API, many cases per operation, both DBs
#   make guide-images  rewrite the user guides' screenshots in docs/img
#   make soak          two signaling processes over Redis for 30 min (not in test/bench/CI);
#                      make soak SOAK_ARGS="--minutes 3" for a short one
#   make lint | format | bench | run | services | clean | lock | i18n
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test test-fast fuzz guide-images lint format services venv migrate demo bench netlab soak clean \
	lock i18n i18n-extract i18n-update

.DEFAULT_GOAL := venv

# Installs come from requirements.lock only (pinned, with hashes); `make lock` renews it.
$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
	touch $(STAMP)

venv: $(STAMP) i18n

# Translation catalogs: the .po files are the source, the .mo files (not committed)
# are what the app reads; the app refuses to start when one is missing or stale.
i18n: $(STAMP)
	$(BIN)/python -m web.catalogs compile

# Every message of the code and templates, to var/i18n/messages.pot.
i18n-extract: $(STAMP)
	$(BIN)/python -m web.catalogs extract

# Messages that no catalog has yet, appended untranslated to DOMAIN's .po.
i18n-update: $(STAMP)
	@test -n "$(DOMAIN)" || { echo "usage: make i18n-update DOMAIN=<catalog, e.g. web>"; exit 2; }
	$(BIN)/python -m web.catalogs update $(DOMAIN)

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
	$(BIN)/lint-imports
	$(BIN)/python -m web.jslint

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

# The API fuzz of `make test` (tests/server/test_fuzz.py), with 20 times the cases.
fuzz: venv services
	DARI_FUZZ_EXAMPLES=$${DARI_FUZZ_EXAMPLES:-100} $(BIN)/pytest -q -p no:cacheprovider tests/server/test_fuzz.py

# The browser tests again, this time also writing their guide screenshots into docs/img.
guide-images: venv services
	DARI_GUIDE_IMAGES=1 DARI_TEST_BACKENDS=sqlite $(BIN)/pytest -m browser tests/web
	$(BIN)/pytest -q tests/web/test_guide.py

bench: venv services
	$(BIN)/python -m bench

# The rural-link lab: Dari's call page over each link profile (root, ~10 min; docs/benchmarks.md).
netlab: venv services
	$(BIN)/python -m bench.netlab

# The soak: 200 clients in 100 rooms across two signaling processes sharing Redis, 30
# minutes; fails if a frame or notification is lost or a process's memory grows 10 %
# (bench/soak.py, docs/benchmarks.md "Soak"). Options: SOAK_ARGS="--minutes 3 --rooms 50".
soak: venv services
	$(BIN)/python -m bench.soak $(SOAK_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
	find web/locale -name '*.mo' -delete

# Renew the lock after changing dependencies in pyproject.toml (needs the package index);
# `make lock UPGRADE=1` also moves every pin to its newest release.
lock: venv
	$(BIN)/python -m pip install --quiet uv
	printf 'setuptools>=77\n' | $(BIN)/uv pip compile pyproject.toml - --extra test \
		--generate-hashes --universal --python-version 3.11 --no-header \
		$(if $(UPGRADE),--upgrade) -o requirements.lock
