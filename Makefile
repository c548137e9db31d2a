# charrnn developer tasks. `make` alone lists them.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.DEFAULT_GOAL := help
.PHONY: help install demo test test-all test-browser lint bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	@touch $(STAMP)

install: $(STAMP) ## Make .venv and install charrnn (editable) with its test extras

demo: $(STAMP) ## Train a small LSTM on the built-in corpus (~1 min), then print a sample
	rm -rf runs/demo
	$(BIN)/charrnn train --config configs/demo.yaml --out runs/demo --rng-seed 0
	$(BIN)/charrnn sample --checkpoint runs/demo --seed "def " -n 300 --temperature 0.8 --rng-seed 0

test: $(STAMP) ## Run the test suite (not the slow, browser or PostgreSQL tests)
	$(BIN)/python -m pytest -q -m "not slow and not browser and not postgres"

test-all: $(STAMP) ## Run every test, the slow end-to-end runs included
	$(BIN)/python -m pytest -q

test-browser: $(STAMP) ## The views in headless Chromium (installs Debian's chromium if missing)
	@command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q chromium; }
	$(BIN)/python -m pytest -q -m browser

lint: $(STAMP) ## Byte-compile and check the code with pyflakes
	$(BIN)/python -m pip install --quiet pyflakes
	$(BIN)/python -m pyflakes charrnn tests scripts

bench: $(STAMP) ## Speed and memory table (scripts/bench.py; add BENCH_ARGS="--torch --torch-python PY")
	$(BIN)/python scripts/bench.py $(BENCH_ARGS)

clean: ## Remove the virtual environment, build files and caches (not runs/)
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
