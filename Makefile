# Paymaster: `make demo` runs the main job on the embedded defaults; `make test` runs the whole suite.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: help demo test bench lint

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(BIN)/paymaster: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

demo: $(BIN)/paymaster  ## the reference pipeline before and after the levers (cost per task, saving per lever), then the gateway up until Ctrl-C
	$(BIN)/paymaster demo

test: $(BIN)/paymaster  ## the whole suite (official SDKs against the real gateway and simulator)
	$(BIN)/python -m pytest -q $(ARGS)

bench: $(BIN)/paymaster  ## overhead (plain and TLS), transports, cap under load, bound tightness, journal, lever savings
	$(BIN)/python bench/overhead.py
	$(BIN)/python bench/overhead.py --tls
	$(BIN)/python bench/transport.py
	$(BIN)/python bench/cap_under_load.py
	$(BIN)/python bench/bound_tightness.py
	$(BIN)/python bench/journal.py
	$(BIN)/python bench/levers.py

lint: $(BIN)/paymaster  ## ruff (lint + format check) on src tests bench scripts, strict mypy on src ([tool.mypy] in pyproject)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/mypy
