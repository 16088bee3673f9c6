"""Exporter selection from the standard OTEL_* variables."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter

from app.telemetry.setup import _otlp_exporters, build_resource, ensure_http_semconv, setup_telemetry


def _close(exporters: tuple[Any, Any, Any]) -> None:
    spans, reader, logs = exporters
    spans.shutdown()
    logs.shutdown()
    reader.shutdown()  # stops its export thread


def test_default_is_grpc_to_the_local_collector() -> None:
    exporters = _otlp_exporters({})
    try:
        spans, _, logs = exporters
        # The SDK's gRPC exporters (subclassed only for a cheaper encoder, see otlp_encode.py).
        assert isinstance(spans, GrpcSpanExporter)
        assert spans._endpoint == "127.0.0.1:4317"
        assert isinstance(logs, GrpcLogExporter)
    finally:
        _close(exporters)


def test_http_protobuf_uses_the_signal_paths() -> None:
    exporters = _otlp_exporters({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"})
    try:
        spans, _, logs = exporters
        assert spans._endpoint == "http://127.0.0.1:4318/v1/traces"
        assert logs._endpoint == "http://127.0.0.1:4318/v1/logs"
    finally:
        _close(exporters)


def test_unknown_protocol_is_an_error() -> None:
    with pytest.raises(ValueError, match="OTEL_EXPORTER_OTLP_PROTOCOL"):
        setup_telemetry({"OTEL_EXPORTER_OTLP_PROTOCOL": "carrier-pigeon"})


def test_http_semconv_opt_in_keeps_other_values() -> None:
    env = {"OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental"}
    ensure_http_semconv(env)
    assert env["OTEL_SEMCONV_STABILITY_OPT_IN"] == "gen_ai_latest_experimental,http"
    env = {"OTEL_SEMCONV_STABILITY_OPT_IN": "http/dup"}
    ensure_http_semconv(env)
    assert env["OTEL_SEMCONV_STABILITY_OPT_IN"] == "http/dup"


def test_resource_defaults_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    res = build_resource({})
    assert res.attributes["service.name"] == "llm-gateway"
    assert res.attributes["deployment.environment.name"] == "local"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "gw-7")
    assert build_resource({}).attributes["service.name"] == "gw-7"
