"""An OpenTelemetry SDK application in a box: tracer, meter and logger providers that export OTLP/gRPC to one
endpoint, and a `logging.Logger` wired to the logger provider. The demo's synthetic traffic (when there is no
gateway) and the end-to-end tests' synthetic app both stand on it."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor


class SdkApp:
    """`batch=False` exports every span and log record as it ends (tests count them right after);
    `batch=True` is what a real service does."""

    def __init__(
        self,
        endpoint: str,
        service_name: str,
        headers: dict[str, str] | None = None,
        export_interval_ms: int = 1000,
        batch: bool = False,
    ) -> None:
        resource = Resource.create({"service.name": service_name, "service.instance.id": str(uuid.uuid4())})
        kw: dict[str, Any] = {"endpoint": endpoint, "insecure": True, "headers": headers, "timeout": 10}
        span_processor = BatchSpanProcessor if batch else SimpleSpanProcessor
        log_processor = BatchLogRecordProcessor if batch else SimpleLogRecordProcessor
        self.tracer_provider = TracerProvider(resource=resource)
        self.tracer_provider.add_span_processor(span_processor(OTLPSpanExporter(**kw)))
        reader = PeriodicExportingMetricReader(
            OTLPMetricExporter(**kw), export_interval_millis=export_interval_ms
        )
        self.meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
        self.logger_provider = LoggerProvider(resource=resource)
        self.logger_provider.add_log_record_processor(log_processor(OTLPLogExporter(**kw)))
        self.tracer = self.tracer_provider.get_tracer(service_name)
        self.meter = self.meter_provider.get_meter(service_name)
        self.logger = logging.getLogger(f"{service_name}.{uuid.uuid4().hex[:8]}")
        self.logger.propagate = False
        self.logger.setLevel(logging.INFO)
        self.logger.addHandler(LoggingHandler(logger_provider=self.logger_provider))

    def flush(self) -> None:
        self.tracer_provider.force_flush()
        self.logger_provider.force_flush()
        self.meter_provider.force_flush()

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.logger_provider.shutdown()
        self.meter_provider.shutdown()
