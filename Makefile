PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench clean

# The stamp makes the venv refresh when pyproject.toml changes.
$(VENV): $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

run: $(VENV)
	$(BIN)/integ-bot serve

# One test process per core; each gets its own SQLite files and PostgreSQL database.
test: $(VENV)
	$(BIN)/python -m pytest -q -n auto

lint: $(VENV)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/hadolint Dockerfile

bench: $(VENV)
	$(BIN)/python -m bench.status_latency

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
