# Two entry points: `make run` (the whole stack, Ctrl-C stops it) and `make test`.
# Both install what they need on a fresh Debian machine (as root): system packages,
# a virtualenv with the project, the configurable-http-proxy from npm.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RUN_PACKAGES := rabbitmq-server python3 python3-venv
TEST_PACKAGES := $(RUN_PACKAGES) chromium postgresql docker-compose prometheus
STATE ?= .state/dev
# make run NODES=3 GATEWAYS=2 POSTGRES=1 HUBS=2: a RabbitMQ cluster, two gateways,
# PostgreSQL, two JupyterHubs; CROSS_SITE=1: the demo app on another site (HTTPS)
NODES ?= 1
GATEWAYS ?= 1
HUBS ?= 1
POSTGRES ?=
CROSS_SITE ?=
# devstack/ (dev stack, demo, fault proxy) is not installed: benchmarks find it here.
BENCH := PYTHONPATH=$(CURDIR) $(PY)

.PHONY: run test install install-test system-node system-run system-test lint typecheck pytest bench clean

run: install
	$(PY) -m devstack --state-dir $(STATE) --broker-nodes $(NODES) --gateways $(GATEWAYS) --hubs $(HUBS) $(if $(POSTGRES),--postgres) $(if $(CROSS_SITE),--cross-site)

test: install-test lint typecheck pytest

# Node.js may come from Debian or elsewhere (its npm bundled): install it only if absent.
system-node:
	@command -v npm >/dev/null || scripts/ensure-system-packages.sh nodejs npm

system-run: system-node
	@scripts/ensure-system-packages.sh $(RUN_PACKAGES) $(if $(POSTGRES),postgresql)

system-test: system-node
	@scripts/ensure-system-packages.sh $(TEST_PACKAGES)

# Single-user servers run as one system account per workspace: their Python must be one
# those accounts can execute (the system's), in a world-readable place.
SINGLEUSER_VENV := .cache/singleuser-venv
$(SINGLEUSER_VENV)/.installed: devstack/singleuser-requirements.txt
	@test -x $(SINGLEUSER_VENV)/bin/python || /usr/bin/python3 -m venv $(SINGLEUSER_VENV)
	$(SINGLEUSER_VENV)/bin/python -m pip install -q -r devstack/singleuser-requirements.txt
	@chmod -R a+rX $(SINGLEUSER_VENV)
	@touch $@

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

.cache/.frontend: $(VENV)/.installed $(wildcard hub_service/labextension/*.json hub_service/labextension/src/*)
	$(PY) -c "from devstack.proxy_install import install_proxy; install_proxy()"
	@if [ -x scripts/build-labextension.sh ]; then scripts/build-labextension.sh; fi
	@mkdir -p .cache && touch $@

install: system-run $(VENV)/.installed .cache/.frontend $(SINGLEUSER_VENV)/.installed

install-test: system-test $(VENV)/.installed .cache/.frontend $(SINGLEUSER_VENV)/.installed

lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check orchestrator runtime consumers schemas hub_service devstack tests bench

typecheck:
	$(VENV)/bin/mypy

# two lanes side by side (tests/conftest.py --lane): about half the wall time of one
pytest:
	scripts/run-tests.sh $(PY)

bench: install-test
	@scripts/ensure-system-packages.sh wrk
	$(BENCH) bench/gateway_throughput.py
	$(BENCH) bench/burst.py
	$(BENCH) bench/burst.py --hubs 2
	$(BENCH) bench/save_latency.py
	$(BENCH) bench/outage_refusals.py
	$(BENCH) bench/reliability/run_all.py

clean:
	rm -rf .state .cache .mypy_cache .ruff_cache test-artifacts
