"""The per-request record written directly equals what the logging path writes (OTLP record, JSON line)."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import TracerProvider

from app.request_log import ATTRS_KEY, RequestLog, close_logger, gateway_logger


def _setup() -> tuple[logging.Logger, InMemoryLogRecordExporter, io.StringIO]:
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = gateway_logger(provider, enabled=True, stderr=True)
    stream = io.StringIO()
    for handler in logger.handlers:
        if isinstance(handler, logging.StreamHandler) and handler.formatter is not None:
            handler.setStream(stream)
    return logger, exporter, stream


def test_direct_request_record_matches_the_logging_path() -> None:
    logger, exporter, stream = _setup()
    attrs: dict[str, Any] = {"llm_gateway.request.id": "req_1", "http.response.status_code": 429, "ok": False}
    span = TracerProvider().get_tracer("t").start_span("chat m")
    ctx = trace.set_span_in_context(span)
    try:
        with trace.use_span(span, end_on_exit=False):
            logger.warning(
                "chat completion %s", "rate_limited", extra={ATTRS_KEY: {"event.name": "e", **attrs}}
            )
        RequestLog(logger).emit(logging.WARNING, "chat completion rate_limited", "e", dict(attrs), ctx)
    finally:
        close_logger(logger)
    via_logging, direct = exporter.get_finished_logs()
    for field in (
        "body",
        "severity_text",
        "severity_number",
        "trace_id",
        "span_id",
        "trace_flags",
        "event_name",
    ):
        assert getattr(direct.log_record, field) == getattr(via_logging.log_record, field), field
    assert dict(direct.log_record.attributes or {}) == dict(via_logging.log_record.attributes or {})
    assert direct.instrumentation_scope == via_logging.instrumentation_scope
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    first.pop("ts")
    assert second.pop("ts").endswith("Z")
    assert first == second
    assert list(first) == list(second)


def test_direct_request_record_honours_the_logger_level() -> None:
    logger, exporter, stream = _setup()
    logger.setLevel(logging.ERROR)
    try:
        RequestLog(logger).emit(
            logging.INFO, "chat completion ok", "e", {}, trace.set_span_in_context(trace.INVALID_SPAN)
        )
    finally:
        close_logger(logger)
    assert not exporter.get_finished_logs() and stream.getvalue() == ""
