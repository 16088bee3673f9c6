"""A lean tracer for the gateway's spans, behind the OpenTelemetry trace API, feeding the SDK's processors.

Why not the SDK's ``Tracer``: on this 2-core machine one SDK span (start, one ``set_attributes``, end) costs
~56 µs of CPU before export, and the gateway makes three per request — alone more than half of what the
bare forwarding path costs (bench/results/gateway.md). Most of that is generality the gateway does not
use per span: a lock and a validating ``BoundedAttributes`` per span, span limits applied per call, a second
``ReadableSpan`` copied at ``end()``. ``LeanSpan`` *is* a ``ReadableSpan`` (the SDK's own read-only view, so
every span processor and exporter takes it as it is) and a ``trace.Span``; it is handed to the SDK
provider's span processors (``BatchSpanProcessor``: its queue, batching, retries and env configuration are
the SDK's) at ``end()``. What stays the SDK's: the sampler (``OTEL_TRACES_SAMPLER``; the default
parent-based always-on decision is taken inline), the id generator, the resource, span processors, exporters.

Attribute values are cleaned as the SDK does (lists become tuples, other values through its own cleaning);
count and length limits (``OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT``, ``OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT``,
``OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT``) are applied once, at ``end()``. The gateway's own instrumentation
starts its spans with ``start_owned_span`` (attributes it built itself, taken without a cleaning copy). When
every processor is a ``BatchSpanProcessor`` (whose ``on_start`` does nothing and whose ``on_end`` queues a
sampled span), ended spans go straight to their queues (``LeanTracer.batch_queues``).
"""

from __future__ import annotations

import logging
import random
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from time import time_ns
from types import TracebackType
from typing import Any

from opentelemetry import trace as trace_api
from opentelemetry.attributes import _clean_attribute_value
from opentelemetry.context import _RUNTIME_CONTEXT, Context
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
from opentelemetry.sdk.trace import (
    Event,
    ReadableSpan,
    SpanProcessor,
    SynchronousMultiSpanProcessor,
    TracerProvider,
)
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, Decision, ParentBased
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.propagation import _SPAN_KEY
from opentelemetry.trace.span import DEFAULT_TRACE_STATE
from opentelemetry.util.types import Attributes, AttributeValue

_log = logging.getLogger(__name__)
# W3C trace context level 2: the random-trace-id flag is set on roots whose ids are random, then inherited.
_FLAGS = {
    (sampled, random): TraceFlags(
        (TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
        | (TraceFlags.RANDOM_TRACE_ID if random else 0)
    )
    for sampled in (False, True)
    for random in (False, True)
}
_SAMPLED = TraceFlags.SAMPLED
_SAME = object()  # start_owned_span: the sampler sees the span's own attributes
_MAX_TRACE_ID = (1 << 128) - 1
_MAX_SPAN_ID = (1 << 64) - 1
_RANDOM_TRACE_ID = TraceFlags.RANDOM_TRACE_ID
_UNSET = Status(StatusCode.UNSET)
_SCALARS = frozenset((str, bool, int, float))
_DEFAULT_SAMPLER: str = ParentBased(ALWAYS_ON).get_description()  # type: ignore[no-untyped-call]


def clean_attributes(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    """A copy with values as the SDK keeps them: scalars as they are, sequences as tuples, the rest cleaned as
    the SDK cleans them."""
    out: dict[str, Any] = {}
    if not attributes:
        return out
    for key, value in attributes.items():
        kind = value.__class__
        if kind in _SCALARS:
            out[key] = value
        elif (
            (kind is list or kind is tuple)
            and value
            and all(v.__class__ is value[0].__class__ for v in value)
        ):
            if value[0].__class__ in _SCALARS:
                out[key] = tuple(value)
            else:
                out[key] = _clean_attribute_value(value, None)
        else:  # the SDK's rules for the rest (None is kept, as the SDK keeps it)
            out[key] = _clean_attribute_value(value, None)
    return out


# The current context read and set through the runtime context's ContextVar (C calls) when the runtime is the
# API's default, contextvars one (OTEL_PYTHON_CONTEXT unset); through the runtime's methods otherwise.
if type(_RUNTIME_CONTEXT) is ContextVarsRuntimeContext:
    _get_current: Callable[[], Context] = _RUNTIME_CONTEXT._current_context.get
    attach_context: Callable[[Context], Any] = _RUNTIME_CONTEXT._current_context.set
    _reset: Callable[[Any], None] = _RUNTIME_CONTEXT._current_context.reset
else:  # pragma: no cover - another runtime context implementation
    _get_current = _RUNTIME_CONTEXT.get_current
    attach_context = _RUNTIME_CONTEXT.attach
    _reset = _RUNTIME_CONTEXT.detach


def detach_context(token: Any) -> None:
    """``opentelemetry.context.detach``: a failure is logged, not raised (as the API does)."""
    try:
        _reset(token)
    except Exception:
        _log.exception("Failed to detach context")


def current_span_context(context: Context | None = None) -> SpanContext | None:
    """``trace.get_current_span(context).get_span_context()``, None for no span: without the three calls of
    that chain (and its ABC ``isinstance`` check for a lean span); every span start and exemplar needs it."""
    span = (context if context is not None else _get_current()).get(_SPAN_KEY)
    if span is None:
        return None
    if span.__class__ is LeanSpan:
        return span._span_context
    if not isinstance(span, trace_api.Span):
        return None  # what get_current_span treats as no span
    return span.get_span_context()


def context_with_span(span: trace_api.Span, context: Context | None = None) -> Context:
    """``trace.set_span_in_context(span, context)`` (the same new ``Context``), in one call instead of two."""
    values = (context if context is not None else _get_current()).copy()
    values[_SPAN_KEY] = span
    return Context(values)


def enqueue(batch: Any, item: Any) -> None:
    """``BatchProcessor.emit`` (the SDK's batch queue behind its span and log record processors) without its
    per-item ``os.getpid()`` fork check, a system call per item: the processor re-initialises itself in a
    forked child through its ``os.register_at_fork`` hook. Shut down or full, the SDK's own ``emit`` takes the
    item (its log line, its dropped-items count)."""
    queue = batch._queue
    if batch._shutdown or len(queue) == batch._max_queue_size:
        batch.emit(item)
        return
    queue.appendleft(item)
    if len(queue) >= batch._max_export_batch_size and not batch._worker_awaken.is_set():
        batch._worker_awaken.set()


class _Limits:
    __slots__ = ("max_attributes", "max_length")

    def __init__(self, provider: TracerProvider) -> None:
        limits = getattr(provider, "_span_limits", None)
        self.max_attributes: int | None = getattr(limits, "max_span_attributes", None)
        self.max_length: int | None = getattr(limits, "max_span_attribute_length", None)

    def apply(self, attributes: dict[str, Any]) -> int:
        """Truncates long strings and, past the count limit, drops the oldest attributes (the SDK's
        ``BoundedAttributes`` evicts the first-set one for each new key over the limit); returns how many were
        dropped. One difference: a key set again keeps its first place here, where the SDK moves it last."""
        dropped = 0
        limit_count = self.max_attributes
        if limit_count is not None and len(attributes) > limit_count:
            keys = list(attributes)
            for key in keys[: len(keys) - limit_count]:
                del attributes[key]
                dropped += 1
        limit = self.max_length
        if limit is not None:
            for key, value in attributes.items():
                if value.__class__ is str and len(value) > limit:
                    attributes[key] = value[:limit]
                elif value.__class__ is tuple:
                    attributes[key] = tuple(v[:limit] if v.__class__ is str else v for v in value)
        return dropped


class LeanSpan(trace_api.Span, ReadableSpan):
    """A recording span that is its own ``ReadableSpan``; immutable once ended and handed to the processor."""

    # Slots, not an instance dict (its bases have none): ~660 spans wait in the export queue at 1,300
    # requests/s, each would carry an 18-key dict.
    __slots__ = (
        "_attributes",
        "_context",
        "_dropped_attributes",
        "_end_time",
        "_events",
        "_instrumentation_info",
        "_instrumentation_scope",
        "_kind",
        "_links",
        "_name",
        "_parent",
        "_resource",
        "_span_context",
        "_start_time",
        "_status",
        "_tracer",
        "_values",
    )

    def __init__(
        self,
        tracer: LeanTracer,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: dict[str, Any],
        links: Sequence[Link],
        start_time: int,
    ) -> None:
        # ReadableSpan's fields, set directly (its __init__ would build an empty Resource first).
        self._name = name
        self._context = context
        self._kind = kind
        self._instrumentation_info = None
        self._instrumentation_scope = tracer.scope
        self._parent = parent
        self._start_time = start_time
        self._end_time: int | None = None
        self._attributes = attributes
        self._values = attributes  # the same dict, typed for updates
        self._span_context = context
        self._events: list[Event] = []
        self._links = tuple(links)
        self._resource = tracer.resource
        self._status = _UNSET
        self._tracer = tracer
        self._dropped_attributes = 0

    # ReadableSpan: the SDK reads the dropped count from BoundedAttributes, which this span does not use.
    @property
    def dropped_attributes(self) -> int:
        return self._dropped_attributes

    def get_span_context(self) -> SpanContext:
        return self._span_context

    def is_recording(self) -> bool:
        return self._end_time is None

    def set_attributes(self, attributes: Mapping[str, AttributeValue]) -> None:
        if self._end_time is None:
            self._values.update(clean_attributes(attributes))

    def set_owned_attributes(self, attributes: Mapping[str, Any]) -> None:
        """``set_attributes`` for values that need no cleaning (see ``LeanTracer.start_owned_span``)."""
        if self._end_time is None:
            self._values.update(attributes)

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        if self._end_time is None:
            self._values.update(clean_attributes({key: value}))

    def add_event(self, name: str, attributes: Attributes = None, timestamp: int | None = None) -> None:
        if self._end_time is None:
            self._events.append(Event(name, clean_attributes(attributes), timestamp or time_ns()))

    def add_link(self, context: SpanContext, attributes: Attributes = None) -> None:
        if self._end_time is None and context.is_valid:
            self._links = (*self._links, Link(context, clean_attributes(attributes)))

    def update_name(self, name: str) -> None:
        if self._end_time is None:
            self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        # As the SDK: OK is final; a Status object wins over a separate description.
        if self._end_time is not None or self._status.status_code is StatusCode.OK:
            return
        if isinstance(status, Status):
            self._status = status
        else:
            self._status = Status(status, description)

    def record_exception(
        self,
        exception: BaseException,
        attributes: Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        stacktrace = "".join(traceback.format_exception(type(exception), exception, exception.__traceback__))
        event_attributes: dict[str, Any] = {
            "exception.type": type(exception).__qualname__,
            "exception.message": str(exception),
            "exception.stacktrace": stacktrace,
            "exception.escaped": str(escaped),
        }
        if attributes:
            event_attributes.update(attributes)
        self.add_event("exception", event_attributes, timestamp)

    def end(self, end_time: int | None = None) -> None:
        if self._end_time is not None:
            return
        tracer = self._tracer
        limits = tracer.limits
        values = self._values
        if limits.max_length is not None or (
            limits.max_attributes is not None and len(values) > limits.max_attributes
        ):
            self._dropped_attributes = limits.apply(values)
        self._end_time = end_time or time_ns()
        # batch_queues() without its call while the processor set is the one last seen
        queues = (
            tracer._queues
            if getattr(tracer.processor, "_span_processors", None) is tracer._seen_processors
            else tracer.batch_queues()
        )
        if queues is None:
            processor = tracer.processor
            on_ending = getattr(processor, "_on_ending", None)
            if on_ending is not None:
                on_ending(self)
            processor.on_end(self)
        elif self._span_context[3] & _SAMPLED:  # trace_flags.sampled: what BatchSpanProcessor.on_end checks
            for batch in queues:
                enqueue(batch, self)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        if exc_val is not None and self.is_recording():
            self.record_exception(exc_val, escaped=True)
            self.set_status(Status(StatusCode.ERROR, f"{type(exc_val).__name__}: {exc_val}"))
        self.end()


class LeanTracer(trace_api.Tracer):
    def __init__(self, provider: TracerProvider, scope: InstrumentationScope) -> None:
        self.scope = scope
        self.resource = provider.resource
        self.processor: SpanProcessor = provider._active_span_processor  # every processor added to it
        self._seen_processors: tuple[SpanProcessor, ...] | None = None
        self._queues: tuple[Any, ...] | None = None
        self.limits = _Limits(provider)
        self._sampler = provider.sampler
        self._default_sampler = self._sampler.get_description() == _DEFAULT_SAMPLER
        ids = provider.id_generator
        self._trace_id = ids.generate_trace_id
        self._span_id = ids.generate_span_id
        self._random_ids = ids.is_trace_id_random()
        # The SDK's default generator is random.getrandbits, redrawn on 0: drawn here without its method call.
        self._getrandbits = random.getrandbits if type(ids) is RandomIdGenerator else None

    def batch_queues(self) -> tuple[Any, ...] | None:
        """While every span processor is a ``BatchSpanProcessor`` (the OTLP setup): their batch processors
        (the SDK's queue and worker; ``enqueue`` puts a span in one).

        Such a processor does nothing at a span's start and only queues a sampled span at its end; the
        spans then go to the queues directly, without two processor calls per span. ``None`` for any other
        processor set (tests' ``SimpleSpanProcessor``, a user's own), which gets every call. Re-checked
        whenever a processor is added (the provider replaces its processor tuple)."""
        processors = getattr(self.processor, "_span_processors", None)
        if processors is not self._seen_processors:
            self._seen_processors = processors
            self._queues = (
                tuple(p._batch_processor for p in processors)
                if type(self.processor) is SynchronousMultiSpanProcessor
                and processors
                and all(type(p) is BatchSpanProcessor for p in processors)
                else None
            )
        return self._queues

    def start_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> trace_api.Span:
        return self.start_owned_span(
            name, context, kind, clean_attributes(attributes), attributes, links, start_time
        )

    def start_owned_span(
        self,
        name: str,
        context: Context | None,
        kind: SpanKind,
        attrs: dict[str, Any],
        attributes: Attributes | object = _SAME,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
    ) -> trace_api.Span:
        """``start_span`` for the gateway's own instrumentation: the span takes ``attrs`` as they are (no
        copy, no cleaning), so they must be what cleaning would keep — str, bool, int, float values or tuples
        of one of them — and the caller must not change the dict afterwards. ``start_span`` calls it with the
        cleaned copy and the caller's own ``attributes`` for the sampler (by default it sees ``attrs``)."""
        parent = current_span_context(context)
        # SpanContext is a tuple (trace_id, span_id, is_remote, trace_flags, trace_state, is_valid) and
        # TraceFlags an int: read by index and bit, as each named field and flag is a Python property.
        if parent is not None and not parent[5]:
            parent = None
        getrandbits = self._getrandbits
        if parent is None:
            trace_id = getrandbits(128) if getrandbits is not None else 0
            if not trace_id:
                trace_id = self._trace_id()
            random_id = self._random_ids
        else:
            trace_id, random_id = parent[0], parent[3] & _RANDOM_TRACE_ID != 0
        if self._default_sampler:  # ParentBased(ALWAYS_ON): the parent's decision, else sampled
            sampled = parent is None or parent[3] & _SAMPLED != 0
            recording = sampled
            trace_state = parent[4] if parent is not None else None
        else:
            sampled_attributes: Any = attrs if attributes is _SAME else attributes
            result = self._sampler.should_sample(context, trace_id, name, kind, sampled_attributes, links)
            sampled = result.decision is Decision.RECORD_AND_SAMPLE
            recording = result.decision is not Decision.DROP
            trace_state = result.trace_state
            if result.attributes:
                attrs.update(result.attributes)
        span_id = getrandbits(64) if getrandbits is not None else 0
        if not span_id:
            span_id = self._span_id()
        # SpanContext(trace_id, span_id, False, flags, trace_state): the same tuple, without its __new__
        span_context: SpanContext = tuple.__new__(
            SpanContext,
            (
                trace_id,
                span_id,
                False,
                _FLAGS[sampled, random_id],
                trace_state if trace_state is not None else DEFAULT_TRACE_STATE,
                0 < trace_id <= _MAX_TRACE_ID and 0 < span_id <= _MAX_SPAN_ID,
            ),
        )
        if not recording:
            return NonRecordingSpan(span_context)
        valid_links = [link for link in links if link.context.is_valid] if links else ()
        span = LeanSpan(self, name, span_context, parent, kind, attrs, valid_links, start_time or time_ns())
        if (
            getattr(self.processor, "_span_processors", None) is not self._seen_processors
            or self._queues is None
        ) and self.batch_queues() is None:
            self.processor.on_start(span, parent_context=context)  # type: ignore[arg-type]
        return span

    @contextmanager
    def start_as_current_span(  # type: ignore[override]
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> Iterator[trace_api.Span]:
        span = self.start_span(name, context, kind, attributes, links, start_time)
        with trace_api.use_span(
            span,
            end_on_exit=end_on_exit,
            record_exception=record_exception,
            set_status_on_exception=set_status_on_exception,
        ) as current:
            yield current


class LeanTracerProvider(trace_api.TracerProvider):
    """The SDK provider's configuration with lean tracers; processors, flush and shutdown are the SDK's."""

    def __init__(self, sdk: TracerProvider) -> None:
        self.sdk = sdk

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: Attributes = None,
    ) -> trace_api.Tracer:
        scope = InstrumentationScope(
            instrumenting_module_name, instrumenting_library_version, schema_url, attributes
        )
        return LeanTracer(self.sdk, scope)

    @property
    def resource(self) -> Any:
        return self.sdk.resource

    def add_span_processor(self, processor: SpanProcessor) -> None:
        self.sdk.add_span_processor(processor)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.sdk.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self.sdk.shutdown()


OwnedSpanStarter = Callable[[str, Context | None, SpanKind, dict[str, Any]], trace_api.Span]


def owned_span_starter(tracer: trace_api.Tracer) -> OwnedSpanStarter:
    """``start_owned_span`` of a lean tracer; for any other tracer its ``start_span`` (which copies and cleans
    the attributes itself)."""
    if isinstance(tracer, LeanTracer):
        return tracer.start_owned_span

    def start(
        name: str, context: Context | None, kind: SpanKind, attributes: dict[str, Any]
    ) -> trace_api.Span:
        return tracer.start_span(name, context, kind, attributes)

    return start


def set_owned_attributes(span: trace_api.Span, attributes: dict[str, Any]) -> None:
    """``span.set_attributes`` for values cleaning would keep unchanged (see ``start_owned_span``): a lean
    span takes them without a cleaning copy."""
    if span.__class__ is LeanSpan:
        if span._end_time is None:  # LeanSpan.set_owned_attributes, without its call
            span._values.update(attributes)
    else:
        span.set_attributes(attributes)
