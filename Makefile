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

.PHONY: help venv collector tools up down demo test test-unit test-e2e lint bench clean

help:
	@echo "make demo       set up everything, run the native stack, drive traffic, print a summary"
	@echo "make test       lint + unit + end-to-end tests (what CI runs)"
	@echo "make venv       create/refresh .venv with the project (editable) and dev extras"
	@echo "make collector  build build/otelcol-llm from $(MANIFEST) with ocb $(OCB_VERSION)"
	@echo "make tools      install Prometheus, promtool and Alertmanager (Debian packages)"
	@echo "make up / down  start / stop the native stack (RUN_DIR=$(RUN_DIR))"
	@echo "make bench      run every benchmark in bench/, tables in bench/results/"

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
	  echo "       Install Go >= 1.24, or use Docker: compose/ builds the same manifest (make -C compose up)." >&2; exit 1; }
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
