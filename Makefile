# CINC Portal: `make run` starts everything on a laptop, `make test` runs the
# suite. Both create the virtual environment and install what they need.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

# Two pytest workers by default (the suite runs in about half the time);
# `make test PYTEST_ARGS=` runs it in one process.
PYTEST_ARGS ?= -n 2

.PHONY: run test bench reliability lint screenshots clean-var

$(BIN)/python:
	@echo "Creating the virtual environment in $(VENV)/ ..."
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Installs are skipped while the requirement files are unchanged.
$(VENV)/.run-installed: requirements.txt | $(BIN)/python
	@echo "Installing requirements.txt (first run takes a minute) ..."
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.dev-installed: requirements.txt requirements-dev.txt | $(BIN)/python
	@echo "Installing requirements-dev.txt ..."
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(VENV)/.run-installed $@

run: $(VENV)/.run-installed
	$(BIN)/python scripts/dev_setup.py
	$(BIN)/honcho --procfile Procfile.dev start

test: $(VENV)/.dev-installed
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(VENV)/.dev-installed
	$(BIN)/python -m bench

# Issue 5's fault scenarios, the load test and the security suites; writes
# docs/reliability.md (about 10 minutes).
reliability: $(VENV)/.dev-installed
	$(BIN)/python -m reliability

screenshots: $(VENV)/.dev-installed
	$(BIN)/python scripts/screenshots.py

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
