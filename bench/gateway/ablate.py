"""Run the gateway (``python -m app`` arguments) with parts of its instrumentation switched off.

For the benchmark's per-component breakdown only (``bench_gateway.py --breakdown``): the added CPU of a part
is the instrumented gateway's CPU per request minus that of a gateway without the part. ``ABLATE`` is a
comma-separated list of:

- ``http_server``: no HTTP server telemetry middleware (no server spans, no HTTP server metrics)
- ``http_client``: no HTTP client spans / ``http.client.request.duration`` for upstream calls
- ``genai_span``: the GenAI ``chat {model}`` span is a no-op span (metrics lose their exemplars)
- ``genai_metrics``: no GenAI call metrics (operation duration, token usage)
- ``request_log``: no per-request log record
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

PARTS = ("http_server", "http_client", "genai_span", "genai_metrics", "request_log")


def apply(parts: set[str]) -> None:
    unknown = parts - set(PARTS)
    if unknown:
        raise SystemExit(f"ABLATE: unknown part(s) {sorted(unknown)}; known: {', '.join(PARTS)}")
    if "http_server" in parts:
        import app.api
        from app.telemetry.http_server import ServerTelemetry

        class Passthrough(ServerTelemetry):
            async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
                await self.app(scope, receive, send)

        app.api.ServerTelemetry = Passthrough  # type: ignore[misc]
    if "http_client" in parts:
        import app.api

        app.api.HttpClientTelemetry = lambda *a, **k: None  # type: ignore[assignment,misc]
    if "genai_metrics" in parts:
        from app.telemetry.metrics import GatewayMetrics

        GatewayMetrics.record_call = lambda *a, **k: None  # type: ignore[method-assign]
    if "request_log" in parts:
        from app.request_log import RequestLog

        RequestLog.emit = lambda *a, **k: None  # type: ignore[method-assign]
    if "genai_span" in parts:
        from opentelemetry import trace

        import app.chat
        from app.telemetry.lean_trace import owned_span_starter

        init = app.chat.ChatService.__init__

        def without_span(self: Any, *args: Any, **kwargs: Any) -> None:
            init(self, *args, **kwargs)
            self.tracer = trace.NoOpTracer()
            self._start_span = owned_span_starter(self.tracer)

        app.chat.ChatService.__init__ = without_span  # type: ignore[method-assign]


if __name__ == "__main__":
    apply(set(filter(None, os.environ.get("ABLATE", "").split(","))))
    from app.__main__ import main

    sys.argv = ["python -m app", *sys.argv[1:]]
    sys.exit(main())
