# Two commands for a fresh machine:  make demo  ·  make test
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint typecheck unit bench clean

# byte-compiled at install: an editable install run with PYTHONDONTWRITEBYTECODE=1 would
# otherwise compile every module it imports again on every start (bench/startup.py)
$(VENV)/.base: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	$(BIN)/python -m compileall -q src/backout
	touch $@

$(VENV)/.test: $(VENV)/.base
	$(BIN)/pip install --quiet -e '.[test]'
	$(BIN)/python -m compileall -q src/backout
	touch $@

demo: $(VENV)/.base            ## set up, then watch a bad release get backed out
	$(BIN)/backout demo

test: $(VENV)/.test            ## set up, then lint, type-check and run the whole suite
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache --no-logo   # the layers of docs/architecture.md
	$(BIN)/pytest -n auto    # one worker per core: the e2e tests are process-bound

lint: $(VENV)/.test
	$(BIN)/ruff check src tests bench
	$(BIN)/lint-imports --no-cache --no-logo

typecheck: $(VENV)/.test
	$(BIN)/mypy

bench: $(VENV)/.test
	$(BIN)/python bench/crash_resume.py

clean:
	rm -rf $(VENV) .backout .pytest_cache .mypy_cache .ruff_cache
