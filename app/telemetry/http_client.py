"""HTTP client telemetry for upstream calls: one CLIENT span per request, `http.client.request.duration`,
and W3C trace context on the outgoing request (stable HTTP semconv).

Written here rather than taken from an instrumentation package because the upstream client is aiohttp used
in one place: a span and a measurement around each request cost a fraction of the generic trace-signal
hooks, and the span ends when the body has been read (streams included), not at the response headers.
"""

from __future__ import annotations

import time
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode

from app import __version__
from app.telemetry.lean_metrics import record_for_span
from app.telemetry.lean_trace import context_with_span, owned_span_starter, set_owned_attributes
from app.telemetry.propagation import inject_trace_context

# Semconv advice for http.client.request.duration.
HTTP_DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0]


class HttpClientTelemetry:
    def __init__(self, tracer_provider: trace.TracerProvider, meter_provider: metrics.MeterProvider) -> None:
        self.tracer = tracer_provider.get_tracer("app.gateway.http_client", __version__)
        self._start_span = owned_span_starter(self.tracer)
        meter = meter_provider.get_meter("app.gateway.http_client", __version__)
        self.duration = meter.create_histogram(
            "http.client.request.duration",
            unit="s",
            description="Duration of HTTP client requests.",
            explicit_bucket_boundaries_advisory=HTTP_DURATION_BUCKETS,
        )

    def start(
        self, method: str, url: str, address: str | None, port: int | None, headers: dict[str, str]
    ) -> HttpCall:
        """A started request: its span is current-context's child; ``headers`` get its trace context."""
        base: dict[str, Any] = {"http.request.method": method}
        if address:
            base["server.address"] = address
        if port:
            base["server.port"] = port
        span = self._start_span(method, None, SpanKind.CLIENT, {**base, "url.full": url})
        context = context_with_span(span)
        inject_trace_context(headers, span.get_span_context(), context)
        return HttpCall(self, span, context, base)


class HttpCall:
    __slots__ = ("_base", "_context", "_ended", "_owner", "_started", "_status", "span")

    def __init__(
        self, owner: HttpClientTelemetry, span: trace.Span, context: Context, base: dict[str, Any]
    ) -> None:
        self._owner = owner
        self.span = span
        self._context = context
        self._base = base
        self._started = time.perf_counter()
        self._status: int | None = None
        self._ended = False

    def status(self, code: int) -> None:
        self._status = code

    def end(self, error_type: str | None = None) -> None:
        if self._ended:
            return
        self._ended = True
        attrs = list(self._base.items())
        end_attrs: dict[str, Any] = {}
        if self._status is not None:
            attrs.append(("http.response.status_code", self._status))
            end_attrs["http.response.status_code"] = self._status
            if error_type is None and self._status >= 400:
                error_type = str(self._status)
        if error_type is not None:
            attrs.append(("error.type", error_type))
            end_attrs["error.type"] = error_type
            self.span.set_status(Status(StatusCode.ERROR))
        if end_attrs:
            set_owned_attributes(self.span, end_attrs)
        duration = time.perf_counter() - self._started
        record_for_span(self._owner.duration, duration, attrs, self.span, self._context)
        self.span.end()
