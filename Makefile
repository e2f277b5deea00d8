# distillguard: `make demo` and `make test` set up everything they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BROKER := infra/kafka/broker.sh
export DG_PYTHON := $(CURDIR)/$(PY)

.PHONY: help venv broker broker-stop demo test test-unit test-integration bench test-faults clean

help:
	@echo "make demo   - install, start the local Kafka broker, stream simulated traffic, print alerts"
	@echo "make test   - install and run the whole test suite (integration tests use the real broker)"
	@echo "make broker / make broker-stop - start / stop the local Kafka broker"

# setup.py builds the C extensions (models/_*.c, schemas/_*.c; optional: pure Python where they cannot build)
$(STAMP): pyproject.toml setup.py $(wildcard models/_*.c schemas/_*.c)
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "error: Python 3.11+ is needed (found $$($(PYTHON) --version 2>&1)); set PYTHON=python3.11"; exit 2; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

venv: $(STAMP)

broker: $(STAMP)
	$(BROKER) start
	$(VENV)/bin/distillguard topics

broker-stop:
	$(BROKER) stop

demo: $(STAMP)
	@set -e; \
	was_running=0; $(BROKER) status && was_running=1; \
	$(BROKER) start; \
	trap '[ $$was_running = 1 ] || $(BROKER) stop' EXIT; \
	$(VENV)/bin/distillguard demo

# Debian packages used by some tests (kcat, chromium); see infra/system-deps.sh.
.PHONY: system-deps
system-deps:
	@infra/system-deps.sh

test: $(STAMP) system-deps
	@set -e; \
	was_running=0; $(BROKER) status && was_running=1; \
	$(BROKER) start; \
	trap '[ $$was_running = 1 ] || $(BROKER) stop' EXIT; \
	DG_TEST_BROKER=1 $(PY) -m pytest -q $(PYTEST_ARGS)

test-unit: $(STAMP)
	$(PY) -m pytest -q -m "not integration" $(PYTEST_ARGS)

# Throughput, latency and memory on the real broker: var/bench/bench.{json,md}. The default run
# (50,000 events, one run each) takes a few minutes; BENCH_ARGS=--long is the 500,000-event form
# with three runs of everything; BENCH_EVENTS=N sets the events; BENCH_ARGS for more options.
bench: $(STAMP)
	@set -e; \
	was_running=0; $(BROKER) status && was_running=1; \
	$(BROKER) start; \
	trap '[ $$was_running = 1 ] || $(BROKER) stop' EXIT; \
	$(PY) -m distillguard.streams.bench $(BENCH_ARGS)

# The fault-injection suite in its full forms (make test runs the short forms).
test-faults: $(STAMP)
	@set -e; \
	was_running=0; $(BROKER) status && was_running=1; \
	$(BROKER) start; \
	trap '[ $$was_running = 1 ] || $(BROKER) stop' EXIT; \
	DG_TEST_BROKER=1 DG_FAULTS_FULL=1 $(PY) -m pytest -q -s -m faults $(PYTEST_ARGS)

# The cluster stage's ceiling (requests/s at which one core saturates), in process, no broker:
# CLUSTER_ACCOUNTS simulated accounts, CLUSTER_HOURS of event time (README, "Cross-account detection").
CLUSTER_ACCOUNTS ?= 100000
CLUSTER_HOURS ?= 3
.PHONY: bench-cluster
bench-cluster: $(STAMP)
	$(PY) -m distillguard.streams.cluster_ceiling --accounts $(CLUSTER_ACCOUNTS) --hours $(CLUSTER_HOURS) $(CLUSTER_ARGS)

clean:
	-$(BROKER) stop
	rm -rf var
