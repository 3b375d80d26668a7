# Every target bootstraps .venv itself, so a fresh clone needs only `make run` or `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= homeserver.yaml
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck unit bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(CONFIG): | $(STAMP)
	$(BIN)/ranvier generate-config --server-name localhost --config-path $(CONFIG) --data-dir ./data

run: $(STAMP) $(CONFIG)
	$(BIN)/ranvier run -c $(CONFIG)

lint: $(STAMP)
	$(BIN)/ruff check ranvier tests bench
	$(BIN)/ruff format --check ranvier tests bench

typecheck: $(STAMP)
	$(BIN)/mypy ranvier

unit: $(STAMP)
	$(BIN)/pytest -q

test: lint typecheck unit

bench: $(STAMP)
	$(BIN)/python -m bench.protocol_bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
