# KD Lab. Two commands on a fresh machine:
#   make course   # bootstraps .venv, executes every notebook headless (PROFILE=smoke|default|full)
#   make test     # lint + the test suite (labkit tests, every notebook under papermill, nbval checks)
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= smoke
NOTEBOOKS ?= $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
export PYTHONUNBUFFERED := 1

.PHONY: help env course test lint format clean-notebooks lab clean readme-table bench

help:
	@echo "make course [PROFILE=smoke|default|full]  run every notebook headless with papermill"
	@echo "make test                                 lint + tests (what CI runs)"
	@echo "make lab                                  open JupyterLab on notebooks/"
	@echo "make bench                                timing benchmarks -> results/BENCH.md (~2-3 min on 2 CPU cores)"
	@echo "make clean-notebooks                      strip outputs/metadata (keeps stated expectations)"
	@echo "make clean                                remove build outputs (keeps caches and .venv)"

env: $(VENV)/.installed

# The environment is rebuilt whenever the dependency list changes.
$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

course: env
	$(PY) tools/run_course.py --profile $(PROFILE) $(NOTEBOOKS)

lint: env
	$(PY) -m ruff check labkit tests tools notebooks benchmarks
	$(PY) -m ruff format --check labkit tests tools benchmarks
	$(PY) tools/nbclean.py --check $(NOTEBOOKS)

test: lint
	$(PY) -m pytest

format: env
	$(PY) -m ruff format labkit tests tools benchmarks
	$(PY) -m ruff check --fix labkit tests tools notebooks benchmarks

clean-notebooks: env
	$(PY) tools/nbclean.py $(NOTEBOOKS)

bench: env
	$(PY) benchmarks/bench.py

readme-table: env
	$(PY) tools/run_course.py --readme-only

lab: env
	$(VENV)/bin/jupyter lab notebooks/

clean:
	rm -rf build .pytest_cache .ruff_cache
