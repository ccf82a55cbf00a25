# The README's two commands: `make serve` and `make test`. Everything installs into .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: serve test lint format models bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Stamps re-run the install only when pyproject.toml changes.
$(VENV)/.stamp-serve: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.stamp-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev,training]'
	touch $@

serve: $(VENV)/.stamp-serve
	$(BIN)/uvicorn service.app:app --host $(HOST) --port $(PORT) --no-access-log

test: $(VENV)/.stamp-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

lint: $(VENV)/.stamp-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Benchmarks (not part of `test`): the BentoML peer gets its own venv so it cannot break the project's deps.
PEER_VENV := .venv-peer

$(PEER_VENV)/.stamp-peer: benchmarks/peer-requirements.txt
	$(PYTHON) -m venv $(PEER_VENV)
	$(PEER_VENV)/bin/pip install -q --upgrade pip
	$(PEER_VENV)/bin/pip install -q -r benchmarks/peer-requirements.txt
	touch $@

bench: $(VENV)/.stamp-dev $(PEER_VENV)/.stamp-peer
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
