#!/bin/sh
# Starts the llm-otel-pipeline Collector with the right set of configuration files:
#   config.yaml                 always (the production topology)
#   config.native.yaml          when COLLECTOR_NATIVE=1 (file exporters instead of Tempo/Loki)
#   config.ingest-auth.yaml     when OTLP_INGEST_TOKEN is non-empty (bearer token required on ingest)
#   config.tail-sampling.yaml   when COLLECTOR_TAIL_SAMPLING=1 (LLM-aware tail sampling of stored traces)
# and derives OTELCOL_MAX_MESSAGE_BYTES from SIDECAR_MAX_MESSAGE_MIB (default 16).
# `run.sh validate` validates that same set of files instead of running.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
bin=${OTELCOL_BIN:-$here/../build/otelcol-llm}
if [ ! -x "$bin" ]; then
  echo "error: Collector binary not found at $bin — run 'make collector' (or set OTELCOL_BIN)" >&2
  exit 1
fi
# One value sets every message limit of the sidecar loop (docs/collector.md, "Message size limits"): the
# ingest and internal receivers accept, and the exporters' batches hold, at most SIDECAR_MAX_MESSAGE_MIB MiB;
# the sidecar reads the same variable. Bytes for the fields that take bytes are derived here, never set apart.
mib=${SIDECAR_MAX_MESSAGE_MIB:-16}
case $mib in
  '' | *[!0-9]* | 0*) echo "error: SIDECAR_MAX_MESSAGE_MIB=$mib: expected a whole number of MiB, 1-2047" >&2; exit 1 ;;
esac
if [ "$mib" -gt 2047 ]; then
  echo "error: SIDECAR_MAX_MESSAGE_MIB=$mib: at most 2047 (gRPC message sizes are 31-bit)" >&2
  exit 1
fi
export SIDECAR_MAX_MESSAGE_MIB="$mib"
export OTELCOL_MAX_MESSAGE_BYTES=$((mib * 1048576))
sub=
if [ "${1:-}" = "validate" ]; then sub=validate; shift; fi
set -- --config "$here/config.yaml" "$@"
if [ "${COLLECTOR_NATIVE:-0}" = "1" ]; then
  : "${RUN_DIR:?COLLECTOR_NATIVE=1 needs RUN_DIR (where traces/logs files are written)}"
  set -- "$@" --config "$here/config.native.yaml"
fi
if [ -n "${OTLP_INGEST_TOKEN:-}" ]; then
  set -- "$@" --config "$here/config.ingest-auth.yaml"
fi
if [ "${COLLECTOR_TAIL_SAMPLING:-0}" = "1" ]; then
  set -- "$@" --config "$here/config.tail-sampling.yaml"
fi
# $sub is empty or "validate": unquoted on purpose, so that empty adds no argument
exec "$bin" $sub "$@"
