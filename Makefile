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
# Helm (deploy/helm/llm-otel-pipeline), installed from the Go module proxy like ocb; the Prometheus operator's
# Go module ships the ServiceMonitor/PrometheusRule CRDs the chart tests validate against.
HELM_VERSION  := v3.22.0
HELM          := $(GOBIN)/helm-$(HELM_VERSION)
CHART         := deploy/helm/llm-otel-pipeline
PROM_OPERATOR := github.com/prometheus-operator/prometheus-operator@v0.85.0
# What helm's own release build sets (its Makefile): its version, and the Kubernetes version it assumes
# without a cluster (that of the k8s.io modules it is built with, 1.37), instead of go install's 1.20.
HELM_LDFLAGS  := -X helm.sh/helm/v3/internal/version.version=$(HELM_VERSION) \
  -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=37 \
  -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=37
RUN_DIR     ?= $(CURDIR)/run
# Locked versions (`make venv` installs exactly these, hash-checked); refreshed by `make lock`.
LOCK        := requirements/dev.txt
BENCH_LOCK  := requirements/bench.txt
UV_VERSION  := 0.13.9

export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: help venv lock collector tools up down status demo test test-unit test-e2e lint bench bench-pipeline bench-gateway clean dashboards flavours helm chart-sync chart-test rules

help:
	@echo "make demo       set up everything, run the native stack, drive traffic, print a summary"
	@echo "make test       lint + unit + end-to-end tests (what CI runs)"
	@echo "make venv       create/refresh .venv with the project (editable) and the locked dev dependencies"
	@echo "make lock       re-resolve $(LOCK) and $(BENCH_LOCK) from pyproject.toml (LOCK_UPGRADE=1: newest allowed)"
	@echo "make collector  build build/otelcol-llm from $(MANIFEST) with ocb $(OCB_VERSION)"
	@echo "make tools      install Prometheus, promtool and Alertmanager (Debian packages)"
	@echo "make up / down  start / stop the native stack (RUN_DIR=$(RUN_DIR))"
	@echo "make bench      run every benchmark in bench/, tables in bench/results/"
	@echo "make dashboards regenerate compose/grafana/dashboards/ from compose/grafana/src/ (grafana-foundation-sdk)"
	@echo "make helm       install helm $(HELM_VERSION) (go install) and the chart tests' schema packages"
	@echo "make chart-sync copy rules, dashboards, datasources and Collector config into $(CHART)/files/"
	@echo "make chart-test helm lint + render/schema/otelcol-validate tests of $(CHART)"
	@echo "make rules      regenerate the SLO rules (rules/llm-slo.yml) from compose/prometheus/slo/*.yml"
	@echo "make bench-gateway  the gateway vs LiteLLM, FastAPI+openai-v2 and a bare forwarder (peers in own venvs); calls per request"

# --- Python --------------------------------------------------------------------------------------
$(VENV)/.installed: pyproject.toml $(LOCK)
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; Python >= 3.11 is required" >&2; exit 1; }
	@test -x $(VPY) || { echo "==> creating $(VENV)"; $(PYTHON) -m venv $(VENV); }
	@echo "==> installing the locked dependencies ($(LOCK)) and llm-otel-pipeline (editable) into $(VENV)"
	@$(VPY) -m pip install -q --upgrade pip
	@$(VPY) -m pip install -q --require-hashes -r $(LOCK)
	@$(VPY) -m pip install -q --no-deps -e .
	@touch $@

venv: $(VENV)/.installed

# The lock files: every package (transitively) pinned with hashes, for any platform and Python >= 3.11.
# Without LOCK_UPGRADE=1 existing pins are kept and only what pyproject.toml now asks for changes.
lock: venv
	@$(VPY) -m pip install -q uv==$(UV_VERSION)
	@echo "==> resolving $(LOCK) and $(BENCH_LOCK) with uv $(UV_VERSION)"
	@up=$$([ "$(LOCK_UPGRADE)" = 1 ] && echo --upgrade); \
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 --generate-hashes \
	  --quiet $$up -o $(LOCK) && \
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --extra bench --universal --python-version 3.11 \
	  --generate-hashes --quiet $$up -c $(LOCK) -o $(BENCH_LOCK)
	@echo "==> review the diff, run make test, commit $(LOCK) and $(BENCH_LOCK)"

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
	command -v prometheus-node-exporter >/dev/null || command -v node_exporter >/dev/null || missing="$$missing prometheus-node-exporter"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	if [ -z "$$missing" ]; then echo "==> prometheus, promtool, alertmanager, node-exporter and chromium are installed"; exit 0; fi; \
	command -v apt-get >/dev/null || { echo "error: need$$missing; install Prometheus and Alertmanager, or use Docker (compose/)" >&2; exit 1; }; \
	SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	echo "==> installing$$missing (apt-get)"; \
	$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null

# --- Helm chart (deploy/helm) --------------------------------------------------------------------
$(VENV)/.deploy-installed: $(VENV)/.installed
	@echo "==> installing kubernetes-validate (Kubernetes API schemas for the chart tests)"
	@$(VPY) -m pip install -q 'kubernetes-validate==1.37.0'
	@touch $@

helm: venv $(VENV)/.deploy-installed
	@command -v $(GO) >/dev/null || { echo "error: Go is needed to install helm $(HELM_VERSION) (go install)" >&2; exit 1; }
	@if [ ! -x $(HELM) ]; then echo "==> installing helm $(HELM_VERSION) (go install, a few minutes cold)"; \
	  GOFLAGS= $(GO) install -ldflags "$(HELM_LDFLAGS)" helm.sh/helm/v3/cmd/helm@$(HELM_VERSION) && mv $(GOBIN)/helm $(HELM) || exit 1; fi
	@cd / && GOFLAGS=-mod=mod $(GO) mod download $(PROM_OPERATOR)
	@echo "==> helm $(HELM_VERSION) at $(HELM)"

chart-sync:
	@$(PYTHON) deploy/helm/sync_chart_files.py

chart-test: helm collector
	@echo "==> helm lint"; $(HELM) lint $(CHART) --strict --kube-version 1.34.0 >/dev/null
	@$(PYTHON) deploy/helm/sync_chart_files.py --check
	@HELM_BIN=$(HELM) $(VPY) -m pytest tests/deploy -m "not e2e and not load" -q -p no:cacheprovider

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

# --- Grafana dashboards as code (compose/grafana/src/ -> compose/grafana/dashboards/) ---------------
dashboards: venv
	@$(VPY) compose/grafana/src/build.py

# --- quality -------------------------------------------------------------------------------------
lint: venv
	@echo "==> ruff"; $(VENV)/bin/ruff check app processors tests bench compose deploy
	@echo "==> mypy"; $(VENV)/bin/mypy app processors compose/native tests/e2e tests/instrumentations tests/stack_support.py tests/test_stack_settings.py tests/test_compose_files.py tests/dashboards tests/deploy deploy/helm
	@echo "==> mypy (dashboards)"; cd compose/grafana/src && $(CURDIR)/$(VENV)/bin/mypy --strict .
	@echo "==> mypy (alerting)"; $(VENV)/bin/mypy compose/prometheus/generate_slo_rules.py tests/alerting
	@echo "==> promtool"; promtool check config compose/prometheus/prometheus.yml >/dev/null && \
	  promtool check rules compose/prometheus/rules/*.yml >/dev/null && \
	  promtool test rules compose/prometheus/tests/*.yml
	@echo "==> chart files"; $(PYTHON) deploy/helm/sync_chart_files.py --check
	@echo "==> SLO rules are generated from the specs"; $(VPY) compose/prometheus/generate_slo_rules.py --check
	@echo "==> amtool"; amtool check-config compose/alertmanager/alertmanager.yml >/dev/null

# --- alerting ------------------------------------------------------------------------------------
# After editing compose/prometheus/slo/*.yml: regenerate, then commit both (lint fails on a stale file).
rules: venv
	@$(VPY) compose/prometheus/generate_slo_rules.py

test-unit: venv helm
	@echo "==> unit tests"; $(VPY) -m pytest -m "not e2e and not load" -q -p no:cacheprovider

test-e2e: venv collector tools flavours
	@echo "==> end-to-end and load tests (real Collector, Prometheus, sidecar, gateway)"; \
	  $(VPY) -m pytest -m "e2e or load" -q -p no:cacheprovider

# The GenAI instrumentation flavours the e2e tests run (each in its own venv under build/flavours/, from PyPI).
flavours: venv
	@$(VPY) tests/instrumentations/flavours.py >/dev/null

# Everything CI runs, in this order: lint, fast tests, then the end-to-end and load group.
test: venv collector tools helm lint test-unit test-e2e

$(VENV)/.bench-installed: $(VENV)/.installed $(BENCH_LOCK)
	@echo "==> installing the bench extra (presidio-analyzer, for the PII accuracy comparison; $(BENCH_LOCK))"
	@$(VPY) -m pip install -q --require-hashes -r $(BENCH_LOCK)
	@touch $@

bench: venv collector tools $(VENV)/.bench-installed
	@mkdir -p bench/results
	@for b in bench/bench_*.py; do echo "==> $$b"; $(VPY) $$b || exit 1; done
	@echo "==> tables in bench/results/"

# The whole pipeline (Collector + sidecar) under load, the anchor at the same load, freshness (~5 min).
bench-pipeline: venv collector tools
	@mkdir -p bench/results
	@$(VPY) bench/bench_pipeline.py

# The gateway against its peers (installed from PyPI into build/bench-peers/ by the bench) and a minimal
# forwarder; BENCH_GATEWAY_ARGS="--quick" for one short round; "--before REF" adds the gateway as of REF
# (needs the bench extra: pip install -e ".[bench]").
BENCH_GATEWAY_ARGS ?= --breakdown
bench-gateway: venv
	@mkdir -p bench/results
	@$(VPY) bench/bench_gateway.py $(BENCH_GATEWAY_ARGS)
	@$(VPY) bench/gateway/calls.py $(BENCH_CALLS_ARGS)

clean: down
	rm -rf build run .pytest_cache .mypy_cache .ruff_cache
