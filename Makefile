# Forge: `make demo` and `make test` are the whole set-up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.forge-installed
# checkov in its own environment: its dependency pins fight the project's (constraints-tools.txt).
TOOLS := .venv-tools
TOOLS_STAMP := $(TOOLS)/.installed
SYSPKGS := prometheus prometheus-pushgateway prometheus-alertmanager chromium wrk postgresql
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# Tools and `python` inside Ray jobs resolve to the project environment.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: setup sysdeps demo demo-loop up down test test-fast bench lint clean

setup: $(STAMP) $(TOOLS_STAMP) sysdeps

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip wheel
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

$(TOOLS_STAMP): constraints-tools.txt
	test -x $(TOOLS)/bin/python || $(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install -q -c constraints-tools.txt checkov
	touch $(TOOLS_STAMP)

# System packages the tests need (Prometheus + promtool, the Pushgateway, Alertmanager + amtool, headless Chromium,
# wrk, PostgreSQL for the MLflow server of the cluster-mode test); apt-get when missing.
sysdeps:
	@missing=""; \
	command -v prometheus >/dev/null || missing="$$missing prometheus"; \
	command -v prometheus-pushgateway >/dev/null || missing="$$missing prometheus-pushgateway"; \
	command -v amtool >/dev/null || missing="$$missing prometheus-alertmanager"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v wrk >/dev/null || missing="$$missing wrk"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO="sudo"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

demo: setup
	$(VENV)/bin/forge demo quickstart -c examples/churn/forge.yaml
	@echo "forge: to look at it (Ray dashboard, MLflow UI, Prometheus, Alertmanager, the app): make up; make down stops it"

# The local stack for people: Ray head + dashboard, the Serve app, MLflow UI, Prometheus, Alertmanager, Pushgateway.
up: setup
	$(VENV)/bin/forge up -c examples/churn/forge.yaml

down:
	$(VENV)/bin/forge down -c examples/churn/forge.yaml

demo-loop: setup
	$(VENV)/bin/forge demo loop -c examples/churn/forge.yaml

test: setup
	$(PY) -m pytest -q -p no:cacheprovider --durations=25 tests

test-fast: setup
	$(PY) -m pytest -q -m "not integration" tests

bench: setup
	$(PY) -m bench

# ruff everywhere; mypy on the public API (pyproject's [tool.mypy]); bandit on forge/ with medium and high
# findings failing the build (each kept one carries a `# nosec` with its reason).
lint: setup
	$(VENV)/bin/ruff check forge tests jobs bench
	$(VENV)/bin/mypy
	$(VENV)/bin/bandit -q -c pyproject.toml -r forge --severity-level medium

clean:
	rm -rf .forge examples/churn/.forge examples/churn/data bench/out
