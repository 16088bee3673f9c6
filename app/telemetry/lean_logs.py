"""A lean Logs API logger for the gateway's request records, feeding the SDK provider's processors.

Why not the SDK's ``Logger.emit``: it builds an API ``LogRecord`` (reading the span from the context), a
``ReadWriteLogRecord`` with a validating ``BoundedAttributes``, and the batch processor then copies it into a
``ReadableLogRecord`` — ~40 µs of CPU per record here, once per proxied request. For a record whose attributes
are plain (string keys; str, bool, int and float values) and within the provider's log record limits
(``OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT``, ``..._VALUE_LENGTH_LIMIT``), this logger builds the
``ReadableLogRecord`` directly and queues it in the SDK ``BatchLogRecordProcessor`` (its queue, batching,
export and ``OTEL_BLRP_*`` configuration); any other processor gets the SDK's own ``ReadWriteLogRecord``
through ``on_emit``. Anything else (values to clean, attributes to drop or truncate, an exception, a record
made elsewhere) is emitted by the SDK's own logger, so limits, dropped counts and warnings are the SDK's.
"""

from __future__ import annotations

from time import time_ns
from typing import Any

from opentelemetry._logs import Logger as APILogger
from opentelemetry._logs import LoggerProvider as APILoggerProvider
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.context import Context, get_current
from opentelemetry.sdk._logs import Logger as SDKLogger
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord, ReadWriteLogRecord
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, get_current_span
from opentelemetry.trace.propagation import _SPAN_KEY
from opentelemetry.util.types import AnyValue, Attributes

from app.telemetry.lean_trace import LeanSpan, enqueue

_DETACHED = Context()  # what the batch processor keeps instead of the request's context
_PLAIN = frozenset((str, bool, int, float))  # values the SDK keeps as they are
_new = object.__new__


def api_log_record(
    span_context: SpanContext,
    timestamp: int | None,
    observed_timestamp: int,
    context: Context,
    severity_number: SeverityNumber | None,
    severity_text: str | None,
    body: AnyValue,
    attributes: Attributes,
    event_name: str | None,
) -> LogRecord:
    """What ``LogRecord(...)`` makes from these (no exception; ``span_context`` that of the span in the
    context it was given), without its keyword-argument handling: the same attributes, set directly."""
    record: LogRecord = _new(LogRecord)
    record.__dict__ = {
        "timestamp": timestamp,
        "observed_timestamp": observed_timestamp,
        "context": context,
        # SpanContext by index (trace_id, span_id, is_remote, trace_flags, ...): its fields are properties
        "trace_id": span_context[0],
        "span_id": span_context[1],
        "trace_flags": span_context[3],
        "severity_text": severity_text,
        "severity_number": severity_number,
        "body": body,
        "attributes": attributes,
        "event_name": event_name,
        "exception": None,
    }
    return record


class LeanLogger(APILogger):
    def __init__(self, provider: LoggerProvider, scope: InstrumentationScope) -> None:
        super().__init__(scope.name, scope.version, scope.schema_url, scope.attributes)
        self._provider = provider
        self._scope = scope
        self._resource = provider.resource
        limits = provider._log_record_limits
        self._limits = limits
        # The limits the SDK applies to log records: the OTEL_LOGRECORD_* ones, else the global ones.
        self._max_attributes = limits.max_log_record_attributes
        self._max_length = limits.max_log_record_attribute_length
        self._sdk = provider.get_logger(scope.name, scope.version, scope.schema_url, scope.attributes)

    def enabled(
        self,
        *,
        context: Context | None = None,
        severity_number: SeverityNumber | None = None,
        event_name: str | None = None,
    ) -> bool:
        return self._sdk.enabled(context=context, severity_number=severity_number, event_name=event_name)

    def emit(
        self,
        record: LogRecord | None = None,
        *,
        timestamp: int | None = None,
        observed_timestamp: int | None = None,
        context: Context | None = None,
        severity_number: SeverityNumber | None = None,
        severity_text: str | None = None,
        body: AnyValue | None = None,
        attributes: Attributes = None,
        event_name: str | None = None,
        exception: BaseException | None = None,
    ) -> None:
        if record is None and exception is None:
            # A copy: the batch processor keeps the record's attributes, the caller keeps its mapping.
            attrs = dict(attributes) if attributes else {}
            if self.emit_owned(
                timestamp,
                observed_timestamp,
                context,
                severity_number,
                severity_text,
                body,
                attrs,
                event_name,
            ):
                return
        self._sdk.emit(  # type: ignore[call-overload,misc]
            record,
            timestamp=timestamp,
            observed_timestamp=observed_timestamp,
            context=context,
            severity_number=severity_number,
            severity_text=severity_text,
            body=body,
            attributes=attributes,
            event_name=event_name,
            exception=exception,
        )

    def emit_owned(
        self,
        timestamp: int | None,
        observed_timestamp: int | None,
        context: Context | None,
        severity_number: SeverityNumber | None,
        severity_text: str | None,
        body: AnyValue,
        attributes: dict[str, Any],
        event_name: str | None,
        plain: bool = False,
    ) -> bool:
        """``emit`` for a caller that hands over its ``attributes`` dict (no longer to change it); positional.
        ``plain``: the caller vouches that every key is a non-empty str and every value a str, bool, int or
        float (values it made itself), so they are not checked again.

        Returns False, having emitted nothing, when the record needs the SDK's logger (attributes to clean,
        drop or truncate); the caller then emits it with :meth:`emit`."""
        sdk = self._sdk
        if sdk.__class__ is not SDKLogger:
            return False
        if self._max_attributes is not None and len(attributes) > self._max_attributes:
            return False
        limit = self._max_length
        if not plain or limit is not None:
            for key, value in attributes.items():
                kind = value.__class__
                if kind not in _PLAIN or key.__class__ is not str or not key:
                    return False
                if limit is not None and kind is str and len(value) > limit:
                    return False
        if not sdk._is_enabled():  # a logger configurator disabled it: as the SDK's emit, nothing
            return True
        if not context:
            context = get_current()
        if observed_timestamp is None:
            observed_timestamp = time_ns()
        span = context.get(_SPAN_KEY)
        if span.__class__ is not LeanSpan:  # what get_current_span checks, for any other span (or none)
            span = get_current_span(context)
        span_context = span.get_span_context()
        sdk._logger_metrics.emit_log()
        processors = self._provider._multi_log_record_processor._log_record_processors
        for processor in processors:
            if type(processor) is BatchLogRecordProcessor:
                # What its on_emit queues: a copy of the API record, detached from the request's context.
                api_record = api_log_record(
                    span_context,
                    timestamp,
                    observed_timestamp,
                    _DETACHED,
                    severity_number,
                    severity_text,
                    body,
                    attributes,
                    event_name,
                )
                # ReadableLogRecord(api_record, resource, scope, limits), without the frozen dataclass's
                # four object.__setattr__ calls: the same instance.
                readable = _new(ReadableLogRecord)
                fields = readable.__dict__
                fields["log_record"] = api_record
                fields["resource"] = self._resource
                fields["instrumentation_scope"] = self._scope
                fields["limits"] = self._limits
                enqueue(processor._batch_processor, readable)
            else:
                api_record = api_log_record(
                    span_context,
                    timestamp,
                    observed_timestamp,
                    context,
                    severity_number,
                    severity_text,
                    body,
                    dict(attributes),
                    event_name,
                )
                processor.on_emit(
                    ReadWriteLogRecord._from_api_log_record(
                        record=api_record,
                        resource=self._resource,
                        instrumentation_scope=self._scope,
                        limits=self._limits,
                    )
                )
        return True


class LeanLoggerProvider(APILoggerProvider):
    """The SDK provider's resource, limits and processors, with lean loggers."""

    def __init__(self, sdk: LoggerProvider) -> None:
        self.sdk = sdk

    def get_logger(
        self,
        name: str,
        version: str | None = None,
        schema_url: str | None = None,
        attributes: Attributes = None,
    ) -> APILogger:
        return LeanLogger(self.sdk, InstrumentationScope(name, version, schema_url, attributes))

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.sdk.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self.sdk.shutdown()
