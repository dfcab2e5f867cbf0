# `make demo` and `make test` work on a fresh machine: they create .venv and install first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO := runs/demo

.PHONY: install demo test lint clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, by exact version: it resolves to the local CPU wheel and nothing pulls CUDA.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[train,cpu,dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/fan-edge demo --out $(DEMO)

test: $(STAMP)
	$(BIN)/ruff check fan_edge exporters benchmarks tests
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check fan_edge exporters benchmarks tests
	$(BIN)/ruff format --check fan_edge exporters benchmarks tests

clean:
	rm -rf $(VENV) runs .pytest_cache
