# llm-otel-pipeline — every setup step a fresh machine needs lives here.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON      ?= python3
VENV        := .venv
VPY         := $(VENV)/bin/python
GO          ?= go
OCB_VERSION := v0.145.0
GOBIN       := $(shell $(GO) env GOPATH 2>/dev/null)/bin
OCB         := $(GOBIN)/ocb-$(OCB_VERSION)
MANIFEST    := otel-collector/builder-config.yaml
COLLECTOR   := build/otelcol-llm
STAMP       := build/.collector-manifest.sha256
RUN_DIR     ?= $(CURDIR)/run

export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: help venv collector tools up down status demo test test-unit test-e2e lint bench bench-gateway clean

help:
	@echo "make demo       set up everything, run the native stack, drive traffic, print a summary"
	@echo "make test       lint + unit + end-to-end tests (what CI runs)"
	@echo "make venv       create/refresh .venv with the project (editable) and dev extras"
	@echo "make collector  build build/otelcol-llm from $(MANIFEST) with ocb $(OCB_VERSION)"
	@echo "make tools      install Prometheus, promtool and Alertmanager (Debian packages)"
	@echo "make up / down  start / stop the native stack (RUN_DIR=$(RUN_DIR))"
	@echo "make bench      run every benchmark in bench/, tables in bench/results/"
	@echo "make bench-gateway  the gateway vs LiteLLM, FastAPI+openai-v2 and a bare forwarder (peers in own venvs)"

# --- Python --------------------------------------------------------------------------------------
$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; Python >= 3.11 is required" >&2; exit 1; }
	@test -x $(VPY) || { echo "==> creating $(VENV)"; $(PYTHON) -m venv $(VENV); }
	@echo "==> installing llm-otel-pipeline (editable) + dev extras into $(VENV)"
	@$(VPY) -m pip install -q --upgrade pip
	@$(VPY) -m pip install -q -e '.[dev]'
	@touch $@

venv: $(VENV)/.installed

# --- Collector -----------------------------------------------------------------------------------
collector:
	@command -v $(GO) >/dev/null || { echo "error: Go is not installed, so the Collector cannot be built here." >&2; \
	  echo "       Install Go >= 1.24, or use Docker: docker compose -f compose/docker-compose.yaml up --build" >&2; \
	  echo "       builds the same manifest (compose/collector.Dockerfile)." >&2; exit 1; }
	@mkdir -p build
	@want="$$( (sha256sum $(MANIFEST); echo $(OCB_VERSION)) | sha256sum | cut -d' ' -f1)"; \
	if [ -x $(COLLECTOR) ] && [ "$$(cat $(STAMP) 2>/dev/null)" = "$$want" ]; then \
	  echo "==> $(COLLECTOR) is up to date (manifest hash $${want:0:12})"; exit 0; fi; \
	if [ ! -x $(OCB) ]; then echo "==> installing the Collector builder (ocb) $(OCB_VERSION)"; \
	  GOFLAGS= $(GO) install go.opentelemetry.io/collector/cmd/builder@$(OCB_VERSION) && mv $(GOBIN)/builder $(OCB) || exit 1; fi; \
	echo "==> building $(COLLECTOR) from $(MANIFEST) (cold builds take several minutes on 2 cores)"; \
	start=$$(date +%s); \
	$(OCB) --config $(MANIFEST) 2>&1 | grep -v '^go: downloading' || exit 1; \
	test -x build/otelcol-llm-src/otelcol-llm || { echo "error: ocb did not produce a binary" >&2; exit 1; }; \
	mv build/otelcol-llm-src/otelcol-llm $(COLLECTOR); \
	echo "$$want" > $(STAMP); \
	echo "==> built $(COLLECTOR) in $$(( $$(date +%s) - start ))s"

# --- Prometheus, promtool, Alertmanager (Debian packages) ----------------------------------------
tools:
	@missing=""; { command -v prometheus && command -v promtool; } >/dev/null || missing=" prometheus"; \
	command -v prometheus-alertmanager >/dev/null || command -v alertmanager >/dev/null || missing="$$missing prometheus-alertmanager"; \
	if [ -z "$$missing" ]; then echo "==> prometheus, promtool and alertmanager are installed"; exit 0; fi; \
	command -v apt-get >/dev/null || { echo "error: need$$missing; install Prometheus and Alertmanager, or use Docker (compose/)" >&2; exit 1; }; \
	SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	echo "==> installing$$missing (apt-get)"; \
	$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null

# --- the native stack ----------------------------------------------------------------------------
up: venv collector tools
	@RUN_DIR=$(RUN_DIR) $(VPY) compose/native/stack.py up

down:
	@if [ -x $(VPY) ]; then RUN_DIR=$(RUN_DIR) $(VPY) compose/native/stack.py down; \
	else echo "==> no .venv, so no stack was started from here"; fi

status:
	@RUN_DIR=$(RUN_DIR) $(VPY) compose/native/stack.py status

demo: venv collector tools
	@RUN_DIR=$(RUN_DIR) $(VPY) compose/native/demo.py

# --- quality -------------------------------------------------------------------------------------
lint: venv
	@echo "==> ruff"; $(VENV)/bin/ruff check app processors tests bench compose
	@echo "==> mypy"; $(VENV)/bin/mypy app processors compose/native tests/e2e tests/stack_support.py tests/test_stack_settings.py tests/test_compose_files.py
	@echo "==> promtool"; promtool check config compose/prometheus/prometheus.yml >/dev/null && \
	  promtool check rules compose/prometheus/rules/*.yml >/dev/null && \
	  promtool test rules compose/prometheus/tests/*.yml

test-unit: venv
	@echo "==> unit tests"; $(VPY) -m pytest -m "not e2e and not load" -q -p no:cacheprovider

test-e2e: venv collector tools
	@echo "==> end-to-end and load tests (real Collector, Prometheus, sidecar, gateway)"; \
	  $(VPY) -m pytest -m "e2e or load" -q -p no:cacheprovider

# Everything CI runs, in this order: lint, fast tests, then the end-to-end and load group.
test: venv collector tools lint test-unit test-e2e

$(VENV)/.bench-installed: $(VENV)/.installed
	@echo "==> installing the bench extra (presidio-analyzer, for the PII accuracy comparison)"
	@$(VPY) -m pip install -q -e '.[dev,bench]'
	@touch $@

bench: venv collector tools $(VENV)/.bench-installed
	@mkdir -p bench/results
	@for b in bench/bench_*.py; do echo "==> $$b"; $(VPY) $$b || exit 1; done
	@echo "==> tables in bench/results/"

# The gateway against its peers (installed from PyPI into build/bench-peers/ by the bench) and a minimal
# forwarder; BENCH_GATEWAY_ARGS="--quick" for one short round; "--before REF" adds the gateway as of REF
# (needs the bench extra: pip install -e ".[bench]").
BENCH_GATEWAY_ARGS ?= --breakdown
bench-gateway: venv
	@mkdir -p bench/results
	@$(VPY) bench/bench_gateway.py $(BENCH_GATEWAY_ARGS)

clean: down
	rm -rf build run .pytest_cache .mypy_cache .ruff_cache
