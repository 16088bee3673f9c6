"""A synthetic application built on the OpenTelemetry Python SDK, sending OTLP/gRPC to an endpoint."""

from __future__ import annotations

import uuid

from opentelemetry.trace import SpanKind

from tests.stack_support import SdkApp


class SyntheticApp(SdkApp):
    """Emits a server span, one histogram point, one counter increment and one log record per request, all
    correlated, and remembers the ids and bodies it sent."""

    def __init__(
        self, endpoint: str, service_name: str = "e2e-synthetic", headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(endpoint, service_name, headers)
        self.service_name = service_name
        self.span_ids: set[str] = set()
        self.trace_ids: set[str] = set()
        self.log_bodies: set[str] = set()
        self.duration = self.meter.create_histogram("e2e.request.duration", unit="s", description="synthetic")
        self.requests = self.meter.create_counter("e2e.requests", unit="{request}", description="synthetic")

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
