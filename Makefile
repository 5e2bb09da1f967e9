# Two entry points for a fresh machine: `make demo` and `make test`. Each bootstraps .venv from pyproject.toml.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export OPENBLAS_NUM_THREADS ?= 1

.PHONY: demo test lint bench bench-movielens bench-serve clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/shoprec demo --data data/amazon_beauty --out runs/demo

lint: $(STAMP)
	$(BIN)/ruff check src tests scripts
	$(BIN)/ruff format --check src tests scripts
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/shoprec bench --data data/amazon_beauty --out runs/bench/amazon_beauty.md
	$(BIN)/shoprec bench --data data/amazon_scientific --out runs/bench/amazon_scientific.md

bench-movielens: $(STAMP)
	$(BIN)/shoprec bench --data ../shared/data/movielens_1m --out runs/bench/movielens_1m.md

bench-serve: $(STAMP)
	$(BIN)/python scripts/bench_serve.py

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
