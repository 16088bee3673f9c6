"""Build the tracer, meter and logger providers from the standard OTEL_* environment variables.

Everything leaves as OTLP (gRPC by default, to the Collector on 127.0.0.1:4317). ``OTEL_SDK_DISABLED=true``
yields no-op providers and no auto-instrumentation at all, which is the benchmark's uninstrumented baseline.
Tests pass in-memory exporters/readers instead.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field

from opentelemetry import metrics, trace
from opentelemetry._logs import LoggerProvider as APILoggerProvider
from opentelemetry._logs import NoOpLoggerProvider
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    LogRecordExporter,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import DropAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter

from app import __version__
from app.telemetry.lean_logs import LeanLoggerProvider
from app.telemetry.lean_metrics import LeanMeterProvider
from app.telemetry.lean_trace import LeanTracerProvider

DEFAULT_SERVICE_NAME = "llm-gateway"
DEFAULT_GRPC_ENDPOINT = "http://127.0.0.1:4317"
DEFAULT_HTTP_ENDPOINT = "http://127.0.0.1:4318"
CAPTURE_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
STABILITY_ENV = "OTEL_SEMCONV_STABILITY_OPT_IN"

# Body sizes of JSON requests say nothing the token metrics do not. The gateway's own HTTP server telemetry
# (app/telemetry/http_server.py) never records them; these views drop them should anything else.
DROPPED_METRICS = frozenset(("http.server.request.body.size", "http.server.response.body.size"))
DROPPED_METRIC_VIEWS = [
    View(instrument_name=name, aggregation=DropAggregation()) for name in sorted(DROPPED_METRICS)
]


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


@dataclass
class Telemetry:
    enabled: bool
    tracer_provider: trace.TracerProvider
    meter_provider: metrics.MeterProvider
    logger_provider: APILoggerProvider
    capture_content: bool = False
    latest_experimental: bool = False  # OTEL_SEMCONV_STABILITY_OPT_IN has gen_ai_latest_experimental
    _sdk: list[TracerProvider | MeterProvider | LoggerProvider] = field(default_factory=list)

    def force_flush(self) -> None:
        for provider in self._sdk:
            provider.force_flush()

    def shutdown(self) -> None:
        for provider in self._sdk:
            provider.shutdown()
        self._sdk.clear()


def ensure_http_semconv(env: MutableMapping[str, str]) -> None:
    """Ask the HTTP instrumentations for stable semconv (http.server.request.duration in seconds).

    Must run before the first instrumentor initialises; other opt-in values (gen_ai_latest_experimental)
    are kept.
    """
    values = [v.strip() for v in env.get(STABILITY_ENV, "").split(",") if v.strip()]
    if "http" not in values and "http/dup" not in values:
        env[STABILITY_ENV] = ",".join([*values, "http"])


def build_resource(env: Mapping[str, str]) -> Resource:
    resource = Resource.create({"service.version": __version__})
    defaults: dict[str, str] = {}
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        defaults["service.name"] = DEFAULT_SERVICE_NAME
    if "deployment.environment.name" not in resource.attributes:
        defaults["deployment.environment.name"] = env.get("DEPLOYMENT_ENVIRONMENT", "local")
    return resource.merge(Resource(defaults)) if defaults else resource


def _otlp_exporters(env: Mapping[str, str]) -> tuple[SpanExporter, MetricReader, LogRecordExporter]:
    protocol = env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc").strip()
    base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT")

    def endpoint(signal: str, path: str) -> str | None:
        # Only when nothing is configured: the exporters read OTEL_EXPORTER_OTLP_[SIGNAL_]ENDPOINT themselves.
        if base or env.get(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT"):
            return None
        return DEFAULT_GRPC_ENDPOINT if protocol == "grpc" else f"{DEFAULT_HTTP_ENDPOINT}{path}"

    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        # The SDK's gRPC exporters with a cheaper span/log encoder (app/telemetry/otlp_encode.py).
        from app.telemetry.otlp_encode import FastOTLPLogExporter as OTLPLogExporter
        from app.telemetry.otlp_encode import FastOTLPSpanExporter as OTLPSpanExporter
    elif protocol in ("http/protobuf", "http"):
        from opentelemetry.exporter.otlp.proto.http._log_exporter import (  # type: ignore[assignment]
            OTLPLogExporter,
        )
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import (  # type: ignore[assignment]
            OTLPMetricExporter,
        )
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[assignment]
            OTLPSpanExporter,
        )
    else:
        raise ValueError(f"OTEL_EXPORTER_OTLP_PROTOCOL: unsupported value {protocol!r} (grpc, http/protobuf)")
    spans = OTLPSpanExporter(endpoint=endpoint("TRACES", "/v1/traces"))
    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=endpoint("METRICS", "/v1/metrics")))
    logs = OTLPLogExporter(endpoint=endpoint("LOGS", "/v1/logs"))
    return spans, reader, logs


def setup_telemetry(
    env: MutableMapping[str, str] | None = None,
    *,
    span_exporter: SpanExporter | None = None,
    metric_reader: MetricReader | None = None,
    log_exporter: LogRecordExporter | None = None,
) -> Telemetry:
    """Providers for one gateway instance; with exporters given (tests), spans/logs export synchronously.

    The providers handed out are lean ones (app/telemetry/lean_*.py) over the SDK's: spans, measurements and
    log records are made cheaply and then go through the SDK's processors, readers and exporters.
    """
    env = os.environ if env is None else env
    capture = _truthy(env.get(CAPTURE_CONTENT_ENV))
    opt_in = {v.strip() for v in env.get(STABILITY_ENV, "").split(",")}
    latest = "gen_ai_latest_experimental" in opt_in
    if _truthy(env.get("OTEL_SDK_DISABLED")):
        return Telemetry(
            False,
            trace.NoOpTracerProvider(),
            metrics.NoOpMeterProvider(),
            NoOpLoggerProvider(),
            capture,
            latest,
        )
    ensure_http_semconv(os.environ)  # the HTTP instrumentations read the process environment
    resource = build_resource(env)
    injected = span_exporter is not None or metric_reader is not None or log_exporter is not None
    if injected:
        assert span_exporter is not None and metric_reader is not None and log_exporter is not None
        span_processor: SimpleSpanProcessor | BatchSpanProcessor = SimpleSpanProcessor(span_exporter)
        log_processor: SimpleLogRecordProcessor | BatchLogRecordProcessor = SimpleLogRecordProcessor(
            log_exporter
        )
        reader = metric_reader
    else:
        spans, reader, logs = _otlp_exporters(env)
        span_processor = BatchSpanProcessor(spans)
        log_processor = BatchLogRecordProcessor(logs)
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(span_processor)
    # The exemplar filter comes from OTEL_METRICS_EXEMPLAR_FILTER, default trace_based: a measurement
    # taken inside a sampled span carries that span's trace id, so histogram buckets link to traces.
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader], views=DROPPED_METRIC_VIEWS)
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(log_processor)
    return Telemetry(
        True,
        LeanTracerProvider(tracer_provider),
        LeanMeterProvider(meter_provider, [reader], dropped=DROPPED_METRICS),
        LeanLoggerProvider(logger_provider),
        capture,
        latest,
        [tracer_provider, meter_provider, logger_provider],
    )
