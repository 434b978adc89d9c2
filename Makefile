# Two commands for a fresh machine: `make up` (install + start everything) and `make test`.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: up down test lint bench install

$(BIN)/deeplens-installed: pyproject.toml
	@# Debian's Chromium drives the browser tests (tests/security); Playwright's own browser
	@# download needs the internet.
	@test -x /usr/bin/chromium || (apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[local,test]'
	touch $@

install: $(BIN)/deeplens-installed

up: install
	$(BIN)/deeplens up

down:
	$(BIN)/deeplens down

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	DAGSTER_HOME=$$(mktemp -d) $(BIN)/dg check defs

test: lint
	$(BIN)/pytest

bench: install
	$(BIN)/pip install --quiet -e '.[local,bench]'
	$(BIN)/python -m bench
