"""HTTP server telemetry as one pure ASGI middleware: a SERVER span per request (W3C context from the
client), ``http.server.request.duration`` and ``http.server.active_requests``, stable HTTP semconv.

It replaces opentelemetry-instrumentation-fastapi, which cost ~265-300 µs of CPU per request here (bench:
bench/results/gateway.md): that middleware wraps every ASGI ``receive``/``send`` in span logic, builds its
attributes through generic helpers per request and records body-size histograms. The gateway has a handful
of fixed routes, so the route is a dict lookup and the only per-``send`` work is noting the status code.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from opentelemetry import metrics, propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from app import __version__
from app.telemetry.lean_metrics import LeanMeterProvider, record_for_span
from app.telemetry.lean_trace import (
    attach_context,
    context_with_span,
    detach_context,
    owned_span_starter,
    set_owned_attributes,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Semconv advice for http.server.request.duration.
HTTP_DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0]


_PROPAGATION_HEADERS = frozenset((b"traceparent", b"tracestate", b"baggage"))


class ServerTelemetry:
    def __init__(
        self,
        app: ASGIApp,
        *,
        tracer_provider: trace.TracerProvider,
        meter_provider: metrics.MeterProvider,
        routes: Iterable[str],
        excluded_paths: Iterable[str] = (),
    ) -> None:
        self.app = app
        self._tracer = tracer_provider.get_tracer("app.gateway.http_server", __version__)
        self._start_span = owned_span_starter(self._tracer)
        meter = meter_provider.get_meter("app.gateway.http_server", __version__)
        self._duration = meter.create_histogram(
            "http.server.request.duration",
            unit="s",
            description="Duration of HTTP server requests.",
            explicit_bucket_boundaries_advisory=HTTP_DURATION_BUCKETS,
        )
        self._active: Any = meter.create_up_down_counter(
            "http.server.active_requests",
            unit="{request}",
            description="Number of active HTTP server requests.",
        )
        # The lean provider's instruments take prebuilt attribute tuples (app/telemetry/lean_metrics.py).
        self._lean = meter_provider if isinstance(meter_provider, LeanMeterProvider) else None
        self._routes = frozenset(routes)
        self._excluded = frozenset(excluded_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self._excluded:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        method: str = scope["method"]
        path: str = scope["path"]
        route = path if path in self._routes else None
        scheme: str = scope.get("scheme", "http")
        carrier: dict[str, str] = {}
        host = None
        user_agent = None
        for name, value in scope["headers"]:
            if name in _PROPAGATION_HEADERS:
                carrier[name.decode("latin-1")] = value.decode("latin-1")
            elif name == b"host":
                host = value.decode("latin-1")
            elif name == b"user-agent":
                user_agent = value.decode("latin-1")
        parent = propagate.extract(carrier) if carrier else None
        attrs: dict[str, Any] = {
            "http.request.method": method,
            "url.scheme": scheme,
            "url.path": path,
            "network.protocol.version": scope.get("http_version", "1.1"),
        }
        if route is not None:
            attrs["http.route"] = route
        if host:
            address, _, port = host.rpartition(":") if ":" in host else (host, "", "")
            attrs["server.address"] = address or host
            if port.isdigit():
                attrs["server.port"] = int(port)
        if user_agent:
            attrs["user_agent.original"] = user_agent
        span = self._start_span(f"{method} {route}" if route else method, parent, SpanKind.SERVER, attrs)
        lean = self._lean
        if lean is not None:
            # Measured in the context around this middleware (as add() without a context would), both times.
            active_key = (("http.request.method", method), ("url.scheme", scheme))
            outer_ids = lean.exemplars.ids(None)
            self._active.add_items(1, active_key, outer_ids)
        else:
            active_attrs = {"http.request.method": method, "url.scheme": scheme}
            self._active.add(1, active_attrs)
        status = 0

        def send_noting_status(message: Message) -> Awaitable[None]:
            # A plain function returning send's awaitable: no extra coroutine frame per message (a stream
            # sends one per chunk).
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            return send(message)

        ctx = context_with_span(span, parent)
        token = attach_context(ctx)
        error_type: str | None = None
        try:
            await self.app(scope, receive, send_noting_status)
        except BaseException as exc:
            error_type = type(exc).__qualname__
            raise
        finally:
            detach_context(token)
            if status >= 500 and error_type is None:
                error_type = str(status)
            metric_attrs: list[tuple[str, Any]] = [
                ("http.request.method", method),
                ("url.scheme", scheme),
                ("network.protocol.version", attrs["network.protocol.version"]),
            ]
            if route is not None:
                metric_attrs.append(("http.route", route))
            end_attrs: dict[str, Any] = {}
            if status:
                metric_attrs.append(("http.response.status_code", status))
                end_attrs["http.response.status_code"] = status
            if error_type is not None:
                metric_attrs.append(("error.type", error_type))
                end_attrs["error.type"] = error_type
                span.set_status(Status(StatusCode.ERROR))
            if end_attrs:
                set_owned_attributes(span, end_attrs)
            duration = time.perf_counter() - started
            record_for_span(self._duration, duration, metric_attrs, span, ctx)
            if lean is not None:
                self._active.add_items(-1, active_key, outer_ids)
            else:
                self._active.add(-1, active_attrs)
            span.end()
