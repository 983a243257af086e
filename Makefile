# Every target that needs Python builds .venv first, so each works alone on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SHARED_BARS ?= ../shared/data/bars

.PHONY: install test lint fmt run-paper sim bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: lint
	$(BIN)/pytest -q

run-paper: $(STAMP)
	$(BIN)/magellan run --config configs/magellan.toml

sim: $(STAMP)
	$(BIN)/magellan sim --port 8700

bench: $(STAMP)
	@if ls bench/bench_*.py >/dev/null 2>&1; then for b in bench/bench_*.py; do $(BIN)/python $$b; done; else echo "no benchmarks yet"; fi

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
