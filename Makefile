# Forge: `make demo` and `make test` are the whole set-up on a fresh machine.
# Each target installs only what it runs: `make demo` the Python package (no system package); `make up` adds the
# monitoring stack's Debian packages; `make test` and `make lint` the dev tools, checkov and the rest.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RUN_STAMP := $(VENV)/.forge-run
DEV_STAMP := $(VENV)/.forge-dev
# checkov in its own environment: its dependency pins fight the project's (constraints-tools.txt).
TOOLS := .venv-tools
TOOLS_STAMP := $(TOOLS)/.installed
# torch's CPU build (about 200 MB, against 2.5 GB of CUDA libraries in PyPI's default Linux build) comes from this
# index when it answers within a few seconds; TORCH_INDEX= keeps to PyPI alone.
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# Tools and `python` inside Ray jobs resolve to the project environment.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: install dev tools setup demo demo-loop up down test test-fast screenshots bench lint check-pins clean

install: $(RUN_STAMP)
dev: $(DEV_STAMP)
tools: $(TOOLS_STAMP)
setup: dev tools
	scripts/sysdeps.sh test

$(RUN_STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip wheel
	index=""; if [ -n "$(TORCH_INDEX)" ] && $(PY) -c "import urllib.request as u; u.urlopen('$(TORCH_INDEX)/torch/', \
	  timeout=5)" 2>/dev/null; then index="--extra-index-url $(TORCH_INDEX)"; fi; \
	$(PY) -m pip install -q $$index -c constraints.txt -e .
	touch $(RUN_STAMP)

$(DEV_STAMP): $(RUN_STAMP)
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(DEV_STAMP)

$(TOOLS_STAMP): constraints-tools.txt
	test -x $(TOOLS)/bin/python || $(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install -q -c constraints-tools.txt checkov
	touch $(TOOLS_STAMP)

demo: install
	$(VENV)/bin/forge demo quickstart -c examples/churn/forge.yaml

# The local stack for people: Ray head + dashboard, the Serve app, MLflow UI, Prometheus, Alertmanager, Pushgateway.
up: install
	scripts/sysdeps.sh stack
	$(VENV)/bin/forge up -c examples/churn/forge.yaml

down: install
	$(VENV)/bin/forge down -c examples/churn/forge.yaml

demo-loop: install
	$(VENV)/bin/forge demo loop -c examples/churn/forge.yaml

test: setup
	$(PY) -m pytest -q -p no:cacheprovider --durations=30 tests

# Starts no Ray cluster and no server: unit tests only.
test-fast: dev
	$(PY) -m pytest -q -p no:cacheprovider -m "not integration" tests

# The README's pictures, from the tests that render them (headless Chromium), into docs/.
screenshots: setup
	FORGE_SCREENSHOTS=docs $(PY) -m pytest -q -p no:cacheprovider -m screenshot tests

bench: dev
	scripts/sysdeps.sh bench
	$(PY) -m bench

# ruff everywhere; mypy on the public API (pyproject's [tool.mypy]); bandit on forge/ with medium and high
# findings failing the build (each kept one carries a `# nosec` with its reason); checkov over every rendered
# overlay (the same run as tests/deploy/test_checkov.py).
lint: dev tools
	$(VENV)/bin/ruff check forge tests jobs bench scripts
	$(VENV)/bin/mypy
	$(VENV)/bin/bandit -q -c pyproject.toml -r forge --severity-level medium
	$(PY) -m pytest -q -p no:cacheprovider tests/deploy/test_checkov.py

# The pins as a machine that knows only PyPI sees them (no local wheel folder, no extra index): they must resolve.
check-pins:
	$(PYTHON) -m pip --isolated install --dry-run --ignore-installed -q -c constraints.txt -e '.[dev]'

clean:
	rm -rf .forge examples/churn/.forge examples/churn/data bench/out
