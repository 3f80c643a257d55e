# Conn: `make demo` (the console on the embedded demo fleet) and `make test` (everything).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo test lint types unit bench snapshots clean system-deps

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	@rm -f $(VENV)/.installed-*
	@touch $@

demo: $(STAMP)
	$(BIN)/conn demo

system-deps:
	@bash scripts/system-deps.sh

lint: $(STAMP)
	$(BIN)/ruff check console tests bench
	$(BIN)/lint-imports

types: $(STAMP)
	$(BIN)/mypy

test: $(STAMP) system-deps lint types
	$(BIN)/pytest -q

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

bench: $(STAMP)
	@bash scripts/system-deps.sh --bench
	$(BIN)/python bench/probe.py
	$(BIN)/python bench/memory.py
	$(BIN)/python bench/store.py
	$(BIN)/python bench/flags.py
	$(BIN)/python bench/history.py
	$(BIN)/python bench/incidents.py

snapshots: $(STAMP)
	$(BIN)/pytest -q tests/ui --snapshot-update

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
