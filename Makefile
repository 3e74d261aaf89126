# ndsim: two commands from a fresh clone.
#   make run   -> creates .venv, installs ndsim, runs the baseline world into runs/baseline
#   make test  -> creates .venv with dev extras, runs the test suite
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
WORLD ?= models/baseline_2024.toml
OUT ?= runs/baseline

# First interpreter of 3.12+ found: pyenv's (via .python-version), then versioned names.
PYTHON_CANDIDATES := python3 python3.13 python3.12 $(HOME)/.pyenv/versions/3.12*/bin/python3 /usr/bin/python3.12
FIND_PY := for p in $(PYTHON_CANDIDATES); do \
	  if command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; then \
	    echo $$p; break; fi; done

.PHONY: run test lint bench clean ui venv docs

$(VENV)/.core: pyproject.toml
	@py=$$($(FIND_PY)); \
	if [ -z "$$py" ]; then \
	  echo "error: ndsim needs Python 3.12 or newer (mesa>=3.5 requires it); none found." >&2; \
	  echo "       install it (e.g. 'pyenv install 3.12') and run make again." >&2; exit 2; fi; \
	echo "using $$py ($$($$py --version))"; \
	[ -x $(PY) ] || $$py -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	@touch $@

$(VENV)/.dev: $(VENV)/.core
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

venv: $(VENV)/.core

run: $(VENV)/.core
	$(VENV)/bin/ndsim run $(WORLD) --out $(OUT)

test: $(VENV)/.dev
	@bash tests/ensure_chromium.sh || echo "warning: chromium unavailable; browser tests will be skipped" >&2
	$(VENV)/bin/python -m pytest -q

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check sim tests benchmarks
	$(VENV)/bin/ruff format --check sim tests benchmarks

# Rewrite the generated blocks of README.md and docs/*.md from fresh runs (sim/docgen.py);
# tests/test_docs.py fails when a committed block disagrees with a fresh run.
docs: $(VENV)/.core
	$(PY) -m sim.docgen
	$(PY) -m sim.app.lesson --write

bench: $(VENV)/.core
	$(PY) benchmarks/bench_core.py

ui: $(VENV)/.dev
	$(VENV)/bin/ndsim ui

clean:
	rm -rf $(VENV) runs .pytest_cache
