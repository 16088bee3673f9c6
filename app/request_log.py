"""Structured request logs: OTLP log records (carrying trace/span ids) plus readable JSON lines on stderr.

The stderr stream bypasses the Collector and its redacting sidecar (whatever collects a container's stderr
ships it as is), so a JSON line carries only the attributes in ``STDERR_FIELDS`` (ids, names, numbers the
gateway validated or made itself; never message content, whatever a caller passes) and an exception only as
its type and stack, without its message.
"""

from __future__ import annotations

import itertools
import json
import logging
import sys
import time
import traceback
from types import TracebackType
from typing import Any

from opentelemetry import trace
from opentelemetry._logs import LoggerProvider, SeverityNumber
from opentelemetry.context import Context, get_current

from app.telemetry.lean_logs import LeanLogger

_SEVERITY = {
    logging.DEBUG: SeverityNumber.DEBUG,
    logging.INFO: SeverityNumber.INFO,
    logging.WARNING: SeverityNumber.WARN,
    logging.ERROR: SeverityNumber.ERROR,
    logging.CRITICAL: SeverityNumber.FATAL,
}
_SEVERITY_TEXT = {"WARNING": "WARN", "CRITICAL": "FATAL"}
_instance_ids = itertools.count(1)
_LEVELS: dict[int, tuple[str, SeverityNumber, str]] = {}


def _levels(level: int) -> tuple[str, SeverityNumber, str]:
    """A logging level's name and its OTLP severity number and text, as the OTLP log handler maps them."""
    known = _LEVELS.get(level)
    if known is None:
        name = logging.getLevelName(level)
        known = _LEVELS[level] = (
            name,
            _SEVERITY.get(level, SeverityNumber.INFO),
            _SEVERITY_TEXT.get(name, name),
        )
    return known


ATTRS_KEY = "otel_attributes"  # `extra={ATTRS_KEY: {...}}` on a logging call

# What a stderr JSON line may carry besides ts/level/logger/msg/trace_id/span_id. Everything else an OTLP
# record has (message content such as a feedback comment, anything added later) stays off stderr.
STDERR_FIELDS = frozenset(
    {
        "event.name",
        "llm_gateway.request.id",
        "llm_gateway.tenant",
        "llm_gateway.provider.simulated",
        "llm_gateway.requested_model",
        "llm_gateway.duration_ms",
        "llm_gateway.ttft_ms",
        "llm_gateway.upstream.retries",
        "gen_ai.request.model",
        "gen_ai.request.stream",
        "gen_ai.response.model",
        "gen_ai.response.id",
        "gen_ai.provider.name",
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.output_tokens",
        "gen_ai.usage.cache_read.input_tokens",
        "gen_ai.usage.reasoning.output_tokens",
        "gen_ai.evaluation.name",
        "gen_ai.evaluation.score.value",
        "http.response.status_code",
        "error.type",
        "enduser.pseudo.id",
    }
)


def stderr_fields(attrs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in attrs.items() if k in STDERR_FIELDS}


ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]


def exception_without_message(exc_info: ExcInfo) -> str:
    """The traceback's frames and the exception's type: its message may quote a prompt or a response."""
    exc = exc_info[1]
    if exc is None:
        return ""
    frames = "".join(traceback.format_tb(exc.__traceback__))
    return f"Traceback (most recent call last):\n{frames}{type(exc).__qualname__} (message not logged)"


class OtlpLogHandler(logging.Handler):
    """Python logging → OTel Logs API; the current context supplies trace_id/span_id."""

    def __init__(self, provider: LoggerProvider) -> None:
        super().__init__()
        self._logger = provider.get_logger("app.gateway")

    def emit(self, record: logging.LogRecord) -> None:
        attrs = dict(getattr(record, ATTRS_KEY, None) or {})
        event_name = attrs.pop("event.name", None)
        self._logger.emit(
            timestamp=int(record.created * 1e9),
            context=get_current(),
            severity_number=_SEVERITY.get(record.levelno, SeverityNumber.INFO),
            severity_text=_SEVERITY_TEXT.get(record.levelname, record.levelname),
            body=record.getMessage(),
            attributes=attrs,
            event_name=event_name,
        )


def _iso_ts(created: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{int(created * 1000) % 1000:03d}Z"


def _json_head(created: float, level: str, logger: str, msg: str, span: trace.Span) -> dict[str, Any]:
    """The leading fields of a JSON log line: time, level, logger, message and the span's ids."""
    out: dict[str, Any] = {"ts": _iso_ts(created), "level": level, "logger": logger, "msg": msg}
    ctx = span.get_span_context()
    if ctx.is_valid:
        out["trace_id"] = format(ctx.trace_id, "032x")
        out["span_id"] = format(ctx.span_id, "016x")
    return out


class JsonLineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = _json_head(
            record.created, record.levelname, record.name, record.getMessage(), trace.get_current_span()
        )
        out.update(stderr_fields(getattr(record, ATTRS_KEY, None) or {}))
        if record.exc_info:
            out["exception"] = exception_without_message(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def gateway_logger(provider: LoggerProvider, enabled: bool, stderr: bool = True) -> logging.Logger:
    """A logger private to one gateway instance (several can live in one test process)."""
    logger = logging.getLogger(f"app.gateway.{next(_instance_ids)}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(logging.NullHandler())  # with no other handler, logging's last resort would print
    if enabled:
        logger.addHandler(OtlpLogHandler(provider))
    if stderr:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonLineFormatter())
        logger.addHandler(handler)
    return logger


def close_logger(logger: logging.Logger) -> None:
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()


class RequestLog:
    """The per-request record, written like a ``logger.log(level, body, extra={ATTRS_KEY: attrs})`` call.

    It takes the same route as the gateway logger's handlers (the OTLP handler's Logs API logger, the JSON
    stderr handler's stream) and produces the same OTLP record and JSON line, without building a
    ``logging.LogRecord`` and passing it through the logging machinery on every request, and with the
    model call's span context passed explicitly instead of attached around the call.
    """

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger
        self._otlp = next((h._logger for h in logger.handlers if isinstance(h, OtlpLogHandler)), None)
        self._lean = self._otlp if isinstance(self._otlp, LeanLogger) else None
        self._stderr = next(
            (
                h
                for h in logger.handlers
                if isinstance(h, logging.StreamHandler) and isinstance(h.formatter, JsonLineFormatter)
            ),
            None,
        )

    def emit(
        self,
        level: int,
        body: str,
        event_name: str,
        attrs: dict[str, Any],
        context: Context,
        plain: bool = False,
    ) -> None:
        """Emits the record; ``attrs`` is the caller's no more (the OTLP record may keep it as it is).
        ``plain``: every key is a non-empty str and every value a str, bool, int or float (see
        :meth:`LeanLogger.emit_owned`)."""
        if not self._logger.isEnabledFor(level):
            return
        now_ns = time.time_ns()
        level_name, severity_number, severity_text = _levels(level)
        if self._otlp is not None:
            lean = self._lean
            if lean is None or not lean.emit_owned(
                now_ns, None, context, severity_number, severity_text, body, attrs, event_name, plain
            ):
                self._otlp.emit(
                    timestamp=now_ns,
                    context=context,
                    severity_number=severity_number,
                    severity_text=severity_text,
                    body=body,
                    attributes=attrs,
                    event_name=event_name,
                )
        handler = self._stderr
        if handler is not None:
            out = _json_head(
                now_ns / 1e9, level_name, self._logger.name, body, trace.get_current_span(context)
            )
            out["event.name"] = event_name
            out.update(stderr_fields(attrs))
            line = json.dumps(out, default=str, ensure_ascii=False) + "\n"
            handler.acquire()
            try:
                handler.stream.write(line)
                handler.flush()
            except Exception:  # as logging does: a broken stderr must not fail the request
                handler.handleError(logging.makeLogRecord({"msg": body}))
            finally:
                handler.release()
