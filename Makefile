# Quickstart: `make demo` and `make test`. Both create/refresh .venv with the pinned constraints.
# `make lint`: ruff check, ruff format --check and mypy (configured in pyproject.toml); CI runs it.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.ampczoo-installed
EXTRAS ?= dev,ik,ray,rl,robosuite,metaworld,pusht
PYTEST_ARGS ?=

.PHONY: demo test lint install clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "ampczoo needs Python 3.11"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[$(EXTRAS)]"
	@bash scripts/ensure-osmesa.sh
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/ampczoo demo

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check ampczoo tests scripts
	$(BIN)/ruff format --check ampczoo tests scripts
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build *.egg-info
