# Every target bootstraps .venv itself, so a fresh clone needs only `make run` or `make test`.
# `make run` installs only what the server needs; test, lint and the rest add the dev tools.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= homeserver.yaml
RUN_STAMP := $(VENV)/.installed-run
STAMP := $(VENV)/.installed
# the matrix-js-sdk clients of tests/interop/test_e2ee_js.py; npm ci needs Node 20+ and npm
JS_INTEROP := tests/interop/js
JS_STAMP := $(JS_INTEROP)/node_modules/.installed

.PHONY: run test lint typecheck unit bench bench-servers bench-protocol fuzz clean

$(BIN)/python:
	@echo "==> Creating the virtualenv $(VENV)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# pip's own output is the progress report: the first install downloads for a minute or two
$(RUN_STAMP): pyproject.toml | $(BIN)/python
	@echo "==> Installing Ranvier and what it needs to run into $(VENV)"
	$(BIN)/pip install -e .
	touch $(RUN_STAMP)

$(STAMP): pyproject.toml $(RUN_STAMP)
	@echo "==> Installing the development tools (pytest, ruff, mypy, ...) into $(VENV)"
	$(BIN)/pip install -e '.[dev]'
	touch $(STAMP)

$(JS_STAMP): $(JS_INTEROP)/package.json $(JS_INTEROP)/package-lock.json
	cd $(JS_INTEROP) && npm ci --no-audit --no-fund
	touch $(JS_STAMP)

$(CONFIG): | $(RUN_STAMP)
	$(BIN)/ranvier generate-config --server-name localhost --config-path $(CONFIG) --data-dir ./data

run: $(RUN_STAMP) $(CONFIG)
	$(BIN)/ranvier run -c $(CONFIG)

lint: $(STAMP)
	$(BIN)/ruff check ranvier tests bench
	$(BIN)/ruff format --check ranvier tests bench

typecheck: $(STAMP)
	$(BIN)/mypy ranvier

unit: $(STAMP) $(JS_STAMP)
	$(BIN)/pytest -q

test: lint typecheck unit

# `make bench` races Ranvier against a Synapse it installs into bench/synapse-venv (A B A B);
# BENCH_ARGS passes options, e.g. BENCH_ARGS="--only ranvier --quick" or "--postgres"
BENCH_ARGS ?=
bench: bench-servers bench-protocol

bench-servers: $(STAMP)
	$(BIN)/python -m bench.run $(BENCH_ARGS)

bench-protocol: $(STAMP)
	$(BIN)/python -m bench.protocol_bench

# `make fuzz` sends generated requests to every Client-Server API operation of a Ranvier it
# starts and reports each 5xx with its traceback (docs/testing.md); FUZZ_ARGS passes options,
# e.g. FUZZ_ARGS="--engine postgres --examples 100 --json fuzz.json"
FUZZ_ARGS ?=
fuzz: $(STAMP)
	$(BIN)/python -m bench.fuzz $(FUZZ_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache $(JS_INTEROP)/node_modules
