"""A synthetic application built on the OpenTelemetry Python SDK, sending OTLP/gRPC to an endpoint."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field

from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind


@dataclass
class SyntheticApp:
    """Emits spans, one histogram point and one log record per request, all correlated."""

    endpoint: str
    service_name: str = "e2e-synthetic"
    headers: dict[str, str] | None = None
    span_ids: set[str] = field(default_factory=set)
    trace_ids: set[str] = field(default_factory=set)
    log_bodies: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        resource = Resource.create(
            {"service.name": self.service_name, "service.instance.id": str(uuid.uuid4())}
        )
        kw = {"endpoint": self.endpoint, "insecure": True, "headers": self.headers, "timeout": 10}
        self.tracer_provider = TracerProvider(resource=resource)
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(**kw)))  # type: ignore[arg-type]
        self.reader = PeriodicExportingMetricReader(OTLPMetricExporter(**kw), export_interval_millis=1000)  # type: ignore[arg-type]
        self.meter_provider = MeterProvider(resource=resource, metric_readers=[self.reader])
        self.logger_provider = LoggerProvider(resource=resource)
        self.logger_provider.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter(**kw)))  # type: ignore[arg-type]
        self.tracer = self.tracer_provider.get_tracer("e2e")
        meter = self.meter_provider.get_meter("e2e")
        self.duration = meter.create_histogram("e2e.request.duration", unit="s", description="synthetic")
        self.requests = meter.create_counter("e2e.requests", unit="{request}", description="synthetic")
        self.logger = logging.getLogger(f"e2e.{uuid.uuid4().hex[:8]}")
        self.logger.propagate = False
        self.logger.setLevel(logging.INFO)
        self.logger.addHandler(LoggingHandler(logger_provider=self.logger_provider))

    def request(self, i: int) -> None:
        with self.tracer.start_as_current_span(f"GET /item/{i % 5}", kind=SpanKind.SERVER) as span:
            ctx = span.get_span_context()
            self.span_ids.add(format(ctx.span_id, "016x"))
            self.trace_ids.add(format(ctx.trace_id, "032x"))
            span.set_attribute("http.route", f"/item/{i % 5}")
            self.duration.record(0.01 * (1 + i % 7), {"route": f"/item/{i % 5}"})
            self.requests.add(1, {"route": f"/item/{i % 5}"})
            body = f"handled synthetic request {i} id={uuid.uuid4()}"
            self.log_bodies.add(body)
            self.logger.info(body)

    def flush(self) -> None:
        self.tracer_provider.force_flush()
        self.logger_provider.force_flush()
        self.meter_provider.force_flush()

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.logger_provider.shutdown()
        self.meter_provider.shutdown()
