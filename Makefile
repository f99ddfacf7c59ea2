# retrainq — every target installs what it needs first (virtualenv, pip packages pinned by
# constraints.txt, Azurite from npm into node_modules/, Debian's redis-server when missing).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
AZURITE := node_modules/.bin/azurite-blob
PYTEST_ARGS ?=
# Test files run on this many processes (pytest-xdist; a file's tests stay together). The
# tests mostly wait on real services, so two processes on two cores halve the wall time.
TEST_WORKERS ?= 2

.PHONY: install browser-deps lint format test demo up down status bench clean chaos image image-test

install: $(STAMP) $(AZURITE)
	@$(BIN)/python -c "from producer.devtools.processes import ensure_redis_server as e; e()" \
		|| (echo "redis-server is required (see above)"; exit 1)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev,emulator]'
	touch $(STAMP)

$(AZURITE): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $(AZURITE)

# Debian's Chromium for the browser tests (tests/browser skip without it); Playwright drives it.
browser-deps:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else \
		echo "browser tests need Chromium: run 'sudo apt-get install -y chromium' (the browser tests fail until then)"; \
	fi

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: lint browser-deps
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# The production image without a Docker engine: buildah (chroot isolation, vfs storage) on a
# Debian bookworm base made once with debootstrap; apt-get installs both when missing.
# IMAGE_STORAGE=DIR keeps the images in another buildah storage than the default one.
IMAGE_STORAGE ?=
IMAGE_ROOT = $(if $(IMAGE_STORAGE),--root $(IMAGE_STORAGE))
image:
	$(PYTHON) -m producer.devtools.image $(IMAGE_ROOT)

# The image's API and a worker (buildah run --network host) against a Redis, Azurite and
# emulator on the host: one tenant onboarded and retrained, health, metrics and uid checked.
image-test: install image
	$(BIN)/python -m producer.devtools.image_check $(IMAGE_ROOT)

up: install
	$(BIN)/retrainq dev up

down:
	@test -x $(BIN)/retrainq && $(BIN)/retrainq dev down || echo "nothing to stop"

status:
	$(BIN)/retrainq dev status

demo: install
	$(BIN)/retrainq demo

bench: install
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev,emulator,bench]'
	$(BIN)/python bench/run_all.py --quick

clean: down
	rm -rf $(VENV) node_modules .stack .mypy_cache .ruff_cache .pytest_cache

chaos: install
	RETRAINQ_CHAOS_FULL=1 $(BIN)/pytest tests/chaos -q -s
