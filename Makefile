# The README's two commands: `make serve` and `make test`. Everything installs into .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: serve test lint format models bench clean deploy-tools

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

# nginx and docker-compose run the deployment checks in tests/deploy; installed from Debian only when missing, as root.
deploy-tools:
	@if command -v docker-compose >/dev/null && { command -v nginx || test -x /usr/sbin/nginx; } >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nginx docker-compose; \
	else \
		echo "deploy-tools: nginx or docker-compose is missing and this is not root: tests/deploy will fail" >&2; \
	fi

test: $(VENV)/.stamp-dev deploy-tools
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

# `make models`: rebuild every bundled model from scratch with fixed seeds (CPU only; see each model card).
# The shapes classifier and detector start from the segmenter's encoder (transfer learning): from scratch,
# the shape classes need far more steps than two CPU cores give in minutes.
TRAIN := $(BIN)/python -m training

models: $(VENV)/.stamp-dev
	rm -rf runs/data/shapes runs/data/scenes runs/digits runs/shapes-classifier runs/shapes-detector \
		runs/shapes-segmenter
	$(TRAIN) synth --out runs/data/shapes --count 2500 --seed 1
	$(TRAIN) synth --out runs/data/scenes --count 3000 --seed 2 --max-objects 4
	$(TRAIN) train classify --data digits --run runs/digits --size 32 --epochs 40 --patience 10 --lr 1e-3
	$(TRAIN) export --run runs/digits --name digits --version 1
	$(TRAIN) train segment --data runs/data/shapes --run runs/shapes-segmenter --size 64 --epochs 10 --patience 4
	$(TRAIN) export --run runs/shapes-segmenter --name shapes-segmenter --version 1
	$(TRAIN) train classify --data runs/data/shapes --run runs/shapes-classifier --size 64 --epochs 22 \
		--patience 6 --arch unet_encoder --init-from runs/shapes-segmenter --lr 1e-3
	$(TRAIN) export --run runs/shapes-classifier --name shapes-classifier --version 1
	$(TRAIN) export --run runs/shapes-classifier --name shapes-classifier-int8 --version 1 --quantize
	$(TRAIN) train detect --data runs/data/scenes --run runs/shapes-detector --size 96 --epochs 7 \
		--patience 4 --arch encoder_grid --init-from runs/shapes-segmenter --lr 1e-3
	$(TRAIN) export --run runs/shapes-detector --name shapes-detector --version 1

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
