# `make demo` and `make test` work on a fresh machine: they create .venv and install first.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO := runs/demo

.PHONY: install demo test lint report clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, by exact version: it resolves to the local CPU wheel and nothing pulls CUDA.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[train,cpu,dev,serve]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/fan-edge demo --out $(DEMO)
	$(BIN)/fan-edge run $(DEMO)/example.mp4 --budget 50ms --allow-over-budget --top-k 3

test: $(STAMP)
	$(BIN)/ruff check fan_edge exporters benchmarks tests
	$(BIN)/ruff format --check fan_edge exporters benchmarks tests
	# two workers, a test file each at a time (module fixtures are built once): exporting is
	# single-threaded tracing, so the suite takes ~6 minutes on 2 cores instead of ~10
	$(BIN)/python -m pytest -n 2 --dist loadfile

# Regenerates every number and plot in README (about 5 hours on 2 CPU cores; the
# training runs are resumable, so a second call only re-measures).
RESULTS := benchmarks/results
report: $(STAMP)
	mkdir -p $(RESULTS)
	$(BIN)/python benchmarks/reproduce.py --seeds 0 1 2 3 --jobs 2
	$(BIN)/python benchmarks/accuracy_plot.py --runs runs/reproduce --out $(RESULTS)
	$(BIN)/python benchmarks/reproduce.py --protocol scratch --seeds 0 1 --jobs 2
	$(BIN)/python benchmarks/reproduce.py --protocol scratch --data synthetic-pairs --seeds 0 1 --jobs 2
	{ $(BIN)/python benchmarks/grad_probe.py --batches 24 \
	  && $(BIN)/python benchmarks/grad_probe.py runs/reproduce-scratch/fan-paper-recipe_seed0/checkpoint.pt \
		--batches 24; } > $(RESULTS)/grad_probe.txt.tmp
	mv $(RESULTS)/grad_probe.txt.tmp $(RESULTS)/grad_probe.txt
	$(BIN)/python benchmarks/reproduce.py --out runs/reproduce-500clips --jobs 2 --seeds 0 1 \
		--init runs/reproduce/pretrain/checkpoint.pt --num-videos 500 --epochs 30 \
		--only st fan fan-ce --results $(RESULTS)/reproduce-500clips
	{ echo "# Fit on training vs held-out clips (seed 0): the benchmark, then 500 clips x 30 epochs" \
	  && echo && $(BIN)/python benchmarks/train_fit.py runs/reproduce/fan_seed0 runs/reproduce/fan-ce_seed0 \
	  && echo && $(BIN)/python benchmarks/train_fit.py runs/reproduce-500clips/fan_seed0 \
		runs/reproduce-500clips/fan-ce_seed0 --num-videos 500; } > $(RESULTS)/train_fit.md.tmp
	mv $(RESULTS)/train_fit.md.tmp $(RESULTS)/train_fit.md
	# decoding and whole-clip budgets (needs models/demo from `make demo`; ~15 min)
	$(BIN)/python benchmarks/end_to_end.py
	$(BIN)/fan-edge flops --preset r50 | tee $(RESULTS)/flops_r50.txt
	$(BIN)/python benchmarks/bundle_size.py | tee $(RESULTS)/bundle_size.md
	$(BIN)/python benchmarks/runtime_memory.py --iters 5 | tee $(RESULTS)/runtime_memory.md
	$(BIN)/python benchmarks/latency.py --iters 5 | tee $(RESULTS)/latency.md

lint: $(STAMP)
	$(BIN)/ruff check fan_edge exporters benchmarks tests
	$(BIN)/ruff format --check fan_edge exporters benchmarks tests

clean:
	rm -rf $(VENV) runs .pytest_cache
