# Two commands for a newcomer (see README): `make serve` and `make test`.
# Each sets up what is missing first (a Python venv from requirements.txt, KaTeX and mermaid
# from package-lock.json), then runs plain `mkdocs serve` or `pytest` inside the venv.

VENV ?= .venv
BIN := $(VENV)/bin
PYTHON ?= python3
export NO_MKDOCS_2_WARNING := 1

.PHONY: setup serve build test lint bench clean

setup: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

serve: setup  ## set up, then serve the site on http://127.0.0.1:8000/
	$(BIN)/mkdocs serve

build: setup  ## set up, then build the site into site/ (strict)
	$(BIN)/mkdocs build --strict

test: setup  ## set up, then run every test (two workers, a test file stays on one)
	$(BIN)/pytest -n 2 --dist loadfile

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

bench: setup  ## print the benchmark figures (no assertions)
	for b in benchmarks/bench_*.py; do $(BIN)/python -m benchmarks.$$(basename $$b .py) || exit 1; done

clean:
	rm -rf site .cache test-output
