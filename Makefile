# KD Lab. Two commands on a fresh machine:
#   make course   # bootstraps .venv, executes every notebook headless (PROFILE=smoke|default|full)
#   make test     # lint + the test suite (labkit tests, every notebook under papermill, nbval checks)
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= smoke
NOTEBOOKS ?= $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
# Slide decks: reveal.js and MathJax from npm, installed into build/ (not committed), so decks render offline.
SLIDES_VENDOR := build/slides/vendor
SLIDES_NPM := reveal.js@5.2.1 mathjax@3.2.2
EXECUTED = $(patsubst notebooks/%,build/$(PROFILE)/%,$(NOTEBOOKS))
export PYTHONUNBUFFERED := 1

.PHONY: verdict-rule results help env course test lint format clean-notebooks lab clean readme-table bench student otter slides slides-vendor badges
.DELETE_ON_ERROR:

help:
	@echo "make course [PROFILE=smoke|default|full]  run every notebook headless with papermill"
	@echo "make test                                 lint + tests (what CI runs)"
	@echo "make lab                                  open JupyterLab on notebooks/"
	@echo "make student                              student versions (solutions blanked) + nbgrader sources in build/"
	@echo "make otter                                otter-grader student notebooks + autograder zips in build/otter/"
	@echo "make slides [PROFILE=smoke|default]       a reveal.js deck per notebook in slides/ (offline, needs npm)"
	@echo "make site [PROFILE=default]               the course website, offline: build/site/html/index.html"
	@echo "make badges                               rewrite Colab badges + install cells from pyproject's URL"
	@echo "make results PROFILE=full                 run + record every notebook, write results/REFERENCE.md (GPU)"
	@echo "make bench                                timing benchmarks -> results/BENCH.md (~2-3 min on 2 CPU cores)"
	@echo "make verdict-rule                         the verdict rule's false-positive rate and power -> results/VERDICT_RULE.md"
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

# Two workers (pytest-xdist): a notebook run keeps one core busy, so two run side by side. Tests that share
# one executed notebook (conftest.smoke_run) or the student runs stay on one worker (xdist_group + loadgroup).
# Each worker's torch (and every notebook kernel it starts) gets one thread: two workers of two threads each on
# two cores oversubscribe them and run slower than one process. PYTEST_WORKERS=0 runs everything in one process.
PYTEST_WORKERS ?= 2
test: lint
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} MKL_NUM_THREADS=$${MKL_NUM_THREADS:-1} $(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadgroup

format: env
	$(PY) -m ruff format labkit tests tools benchmarks
	$(PY) -m ruff check --fix labkit tests tools notebooks benchmarks

clean-notebooks: env
	$(PY) tools/nbclean.py $(NOTEBOOKS)

# Run every notebook in PROFILE, record times + digests, and write the findings page
# (PROFILE=full -> results/REFERENCE.md, on a GPU; otherwise results/<profile>/SUMMARY.md).
results: env
	$(PY) tools/run_course.py --profile $(PROFILE) --record $(NOTEBOOKS)
	$(PY) tools/run_course.py --summarize $(PROFILE)

bench: env
	$(PY) benchmarks/bench.py

verdict-rule: env
	$(PY) tools/verdict_rule.py

student: env
	$(PY) tools/course_tools.py student $(NOTEBOOKS)
	$(PY) tools/course_tools.py student --nbgrader $(NOTEBOOKS)

# otter-grader: per notebook a student notebook and an autograder zip (docs/INSTRUCTORS.md, How to grade)
otter: env
	$(PY) tools/course_tools.py otter $(NOTEBOOKS)

badges: env
	$(PY) tools/course_tools.py badges $(NOTEBOOKS)

slides-vendor: $(SLIDES_VENDOR)/.installed

$(SLIDES_VENDOR)/.installed: Makefile
	mkdir -p $(SLIDES_VENDOR)
	npm install --silent --no-save --no-package-lock --no-audit --no-fund --prefix $(SLIDES_VENDOR) $(SLIDES_NPM)
	touch $@

# Decks show the outputs (figures, tables) of an executed run; a notebook reruns only when its source changed.
build/$(PROFILE)/%.ipynb: notebooks/%.ipynb | env
	$(PY) tools/run_course.py --profile $(PROFILE) $<

slides: env slides-vendor $(EXECUTED)
	$(PY) tools/course_tools.py slides --out slides --vendor $(SLIDES_VENDOR)/node_modules $(EXECUTED)

# The course website (tools/course_site.py): the executed notebooks of SITE_PROFILE (default unless PROFILE is given on the
# command line), each lesson's student version, slide deck, results digest and run time, and the docs; Sphinx +
# MyST-NB from PyPI, MathJax served from the build, nothing fetched when it is viewed. Decks need npm (slides-vendor);
# without it the site builds without them.
SITE_PROFILE ?= $(if $(filter command line,$(origin PROFILE)),$(PROFILE),default)
SITE_EXECUTED = $(patsubst notebooks/%,build/$(SITE_PROFILE)/%,$(NOTEBOOKS))
.PHONY: site
build/$(SITE_PROFILE)/%.ipynb: notebooks/%.ipynb | env
	$(PY) tools/run_course.py --profile $(SITE_PROFILE) $<

site: env $(SITE_EXECUTED)
	@command -v npm >/dev/null && $(MAKE) -s slides-vendor || echo "site: building it without slide decks (they need npm: make slides-vendor)"
	$(PY) tools/course_site.py --profile $(SITE_PROFILE) --executed build/$(SITE_PROFILE) --out build/site

readme-table: env
	$(PY) tools/run_course.py --readme-only

lab: env
	$(VENV)/bin/jupyter lab notebooks/

clean:
	rm -rf build .pytest_cache .ruff_cache slides/assets slides/*.html
