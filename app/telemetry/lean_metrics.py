"""Lean synchronous instruments for the gateway, collected by the SDK's own metric readers.

Why not the SDK's instruments: one SDK histogram measurement with the gateway's 6-8 attributes and a sampled
span in the context costs ~28 µs of CPU here (a ``Measurement`` object, a sorted frozenset key per call,
a lock and an exemplar reservoir per view match), and a proxied request takes 7-11 of them
(bench/results/gateway.md). Here a measurement is a dict lookup on the attribute tuple (keys in the order
the caller built them), a ``bisect`` and a few additions under one lock; the last exemplar per bucket is kept
as the SDK's aligned-bucket reservoir does.

What stays the SDK's: the ``MeterProvider``, its readers (``PeriodicExportingMetricReader`` and its OTLP
exporter, or a test's ``InMemoryMetricReader``), temporality preference per reader, the exemplar filter
(``OTEL_METRICS_EXEMPLAR_FILTER``) and the data model. Each reader's collection is extended with these
instruments' points (``attach``), so one export carries both. Observable and gauge instruments are the SDK's.

Semantics as the SDK's defaults: explicit-bucket histograms (the advisory boundaries, else the SDK's
default ones), monotonic counters ignore negative amounts, 2,000 attribute sets per instrument then one
``otel.metric.overflow`` set. Delta temporality (``OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE``) is
computed per reader from the cumulative state; a delta histogram point's min/max are those since start.
"""

from __future__ import annotations

import logging
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from time import time_ns
from typing import Any

from opentelemetry import metrics as metrics_api
from opentelemetry import trace as trace_api
from opentelemetry.context import Context
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics._internal.exemplar import (
    AlwaysOffExemplarFilter,
    AlwaysOnExemplarFilter,
    Exemplar,
)
from opentelemetry.sdk.metrics._internal.instrument import _Counter, _Histogram, _UpDownCounter
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricReader,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import INVALID_SPAN_CONTEXT
from opentelemetry.util.types import Attributes

from app.telemetry.lean_trace import LeanSpan, current_span_context

_log = logging.getLogger(__name__)
DEFAULT_BOUNDARIES = (0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2500.0, 5000.0,
                      7500.0, 10000.0)  # fmt: skip
CARDINALITY_LIMIT = 2000
_OVERFLOW_KEY = (("otel.metric.overflow", True),)
_Key = tuple[tuple[str, Any], ...]
# (value, time, span_id, trace_id)
_RawExemplar = tuple[float, int, int | None, int | None]
# (span_id, trace_id) of a measurement's exemplar, (None, None) for one without a span, None for none
_Ids = tuple[int | None, int | None] | None


def _key(attributes: Attributes) -> _Key:
    return tuple(attributes.items()) if attributes else ()


def _hashable(key: _Key) -> _Key:
    """A key with list values (unhashable) as tuples, as the SDK keeps them."""
    return tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in key)


class _Exemplars:
    """The exemplar filter as a function of the measurement's context: (span_id, trace_id) or None."""

    def __init__(self, provider: MeterProvider) -> None:
        config = getattr(provider, "_sdk_config", None)
        chosen = getattr(config, "exemplar_filter", None)
        self.off = isinstance(chosen, AlwaysOffExemplarFilter)
        self.always = isinstance(chosen, AlwaysOnExemplarFilter)

        # A request records several measurements with one context: the last answer is kept (contexts are
        # immutable, so the same object means the same span).
        self._last: tuple[Context | None, _Ids] = (None, None)

    def ids(self, context: Context | None) -> _Ids:
        if self.off:
            return None
        last = self._last
        if context is not None and last[0] is context:
            return last[1]
        span_context = current_span_context(context)
        ids = self.for_span(span_context if span_context is not None else INVALID_SPAN_CONTEXT)
        if context is not None:
            self._last = (context, ids)
        return ids

    def for_span(self, span_context: trace_api.SpanContext) -> _Ids:
        """``ids`` for measurements whose context holds a span with this context (no context lookup)."""
        if self.off:
            return None
        # By index: (trace_id, span_id, is_remote, trace_flags, trace_state, is_valid); the named fields and
        # TraceFlags.sampled are Python properties.
        if span_context[5] and (self.always or span_context[3] & 1):
            return (span_context[1], span_context[0])
        return (None, None) if self.always else None


class _Instrument:
    sdk_class: type = _Counter

    def __init__(
        self, name: str, unit: str, description: str, exemplars: _Exemplars, lock: threading.Lock
    ) -> None:
        self.name = name
        self.unit = unit
        self.description = description
        self._exemplars = exemplars
        self._lock = lock  # the provider's: one acquisition covers a request's several measurements
        self._points: dict[_Key, Any] = {}
        self._sets = 0
        # reader → {attribute set → cumulative state at its last collection}, for delta readers
        self._last: dict[int, tuple[int, dict[frozenset[tuple[str, Any]], Any]]] = {}
        self._created = time_ns()

    def _point(self, key: _Key) -> Any:
        """The point of an attribute tuple (call under the lock): a new one per new set, the overflow set's
        once the limit is reached."""
        try:
            point = self._points.get(key)
        except TypeError:
            key = _hashable(key)
            point = self._points.get(key)
        if point is None:
            if self._sets >= CARDINALITY_LIMIT - 1:
                key = _OVERFLOW_KEY
            else:
                self._sets += 1
            point = self._points.get(key)
            if point is None:
                point = self._points[key] = self._new_point(time_ns())
        return point

    def _new_point(self, start: int) -> Any:
        raise NotImplementedError

    def _merged(self) -> dict[frozenset[tuple[str, Any]], Any]:
        """Points by attribute *set* (one set may have been recorded with keys in two orders)."""
        raise NotImplementedError

    def collect(self, reader: MetricReader, now: int) -> Metric | None:
        raise NotImplementedError

    def _temporality(self, reader: MetricReader) -> AggregationTemporality:
        table = getattr(reader, "_instrument_class_temporality", {})
        return table.get(self.sdk_class, AggregationTemporality.CUMULATIVE)  # type: ignore[no-any-return]


class _SumPoint:
    __slots__ = ("exemplar", "start", "value")

    def __init__(self, start: int) -> None:
        self.start = start
        self.value: int | float = 0
        self.exemplar: _RawExemplar | None = None


class _Sum(_Instrument):
    monotonic = True

    def _new_point(self, start: int) -> _SumPoint:
        return _SumPoint(start)

    def add(self, amount: int | float, attributes: Attributes = None, context: Context | None = None) -> None:
        self.add_items(amount, _key(attributes), self._exemplars.ids(context))

    def add_items(self, amount: int | float, key: _Key, ids: _Ids) -> None:
        """``add`` with the attributes as an items tuple and the exemplar ids resolved (``for_span``)."""
        with self._lock:
            self.add_locked(amount, key, ids, time_ns())

    def add_locked(self, amount: int | float, key: _Key, ids: _Ids, now: int) -> None:
        """``add`` with the attributes as an items tuple and the exemplar ids resolved, under the
        provider's ``lock`` (held by the caller): the path of the gateway's own per-request measurements."""
        if self.monotonic and amount < 0:
            _log.warning("%s: a counter cannot be decremented (amount %s ignored)", self.name, amount)
            return
        try:  # the common case inline: an attribute set seen before
            point = self._points.get(key)
        except TypeError:
            point = None
        if point is None:
            point = self._point(key)
        point.value += amount
        if ids is not None:
            point.exemplar = (amount, now, ids[0], ids[1])

    def _merged(self) -> dict[frozenset[tuple[str, Any]], Any]:
        out: dict[frozenset[tuple[str, Any]], list[Any]] = {}
        with self._lock:
            for key, point in self._points.items():
                entry = out.setdefault(frozenset(key), [point.start, 0, []])
                entry[0] = min(entry[0], point.start)
                entry[1] += point.value
                if point.exemplar is not None:
                    entry[2].append(point.exemplar)
                    point.exemplar = None
        return out

    def collect(self, reader: MetricReader, now: int) -> Metric | None:
        merged = self._merged()
        if not merged:
            return None
        temporality = (
            self._temporality(reader) if self.monotonic else AggregationTemporality.CUMULATIVE
        )  # an up-down counter is reported cumulatively under either preference, as the SDK does
        last_time, last = self._last.get(id(reader), (self._created, {}))
        points = []
        for attrs, (start, value, exemplars) in merged.items():
            if temporality is AggregationTemporality.DELTA:
                previous = last.get(attrs, 0)
                last[attrs] = value
                start, value = last_time, value - previous
            points.append(
                NumberDataPoint(
                    attributes=dict(attrs),
                    start_time_unix_nano=start,
                    time_unix_nano=now,
                    value=value,
                    exemplars=[_exemplar(e) for e in exemplars[-1:]],
                )
            )
        if temporality is AggregationTemporality.DELTA:
            self._last[id(reader)] = (now, last)
        return Metric(
            name=self.name,
            description=self.description,
            unit=self.unit,
            data=Sum(data_points=points, aggregation_temporality=temporality, is_monotonic=self.monotonic),
        )


class LeanCounter(_Sum, metrics_api.Counter):
    sdk_class = _Counter


class LeanUpDownCounter(_Sum, metrics_api.UpDownCounter):
    sdk_class = _UpDownCounter
    monotonic = False


class _HistogramPoint:
    __slots__ = ("buckets", "count", "exemplars", "max", "min", "start", "sum")

    def __init__(self, start: int, buckets: int) -> None:
        self.start = start
        self.count = 0
        self.sum: int | float = 0
        self.min = float("inf")
        self.max = float("-inf")
        self.buckets = [0] * buckets
        self.exemplars: list[_RawExemplar | None] = [None] * buckets


class LeanHistogram(_Instrument, metrics_api.Histogram):
    sdk_class = _Histogram

    def __init__(
        self,
        name: str,
        unit: str,
        description: str,
        exemplars: _Exemplars,
        lock: threading.Lock,
        boundaries: Sequence[float],
    ) -> None:
        super().__init__(name, unit, description, exemplars, lock)
        self.boundaries = tuple(float(b) for b in boundaries)

    def _new_point(self, start: int) -> _HistogramPoint:
        return _HistogramPoint(start, len(self.boundaries) + 1)

    def record(
        self, amount: int | float, attributes: Attributes = None, context: Context | None = None
    ) -> None:
        self.record_items(amount, _key(attributes), self._exemplars.ids(context))

    def record_items(self, amount: int | float, key: _Key, ids: _Ids) -> None:
        """``record`` with the attributes as an items tuple and the exemplar ids resolved (``for_span``)."""
        with self._lock:
            self.record_locked(amount, key, ids, time_ns())

    def record_locked(self, amount: int | float, key: _Key, ids: _Ids, now: int) -> None:
        """``record`` with the attributes as an items tuple and the exemplar ids resolved, under the
        provider's ``lock`` (held by the caller)."""
        bucket = bisect_left(self.boundaries, amount)
        try:  # the common case inline: an attribute set seen before
            point = self._points.get(key)
        except TypeError:
            point = None
        if point is None:
            point = self._point(key)
        point.count += 1
        point.sum += amount
        point.buckets[bucket] += 1
        if amount < point.min:
            point.min = amount
        if amount > point.max:
            point.max = amount
        if ids is not None:
            point.exemplars[bucket] = (amount, now, ids[0], ids[1])

    def _merged(self) -> dict[frozenset[tuple[str, Any]], Any]:
        out: dict[frozenset[tuple[str, Any]], list[Any]] = {}
        with self._lock:
            for key, point in self._points.items():
                attrs = frozenset(key)
                entry = out.get(attrs)
                if entry is None:
                    entry = out[attrs] = [
                        point.start,
                        0,
                        0,
                        point.min,
                        point.max,
                        [0] * len(point.buckets),
                        [],
                    ]
                entry[0] = min(entry[0], point.start)
                entry[1] += point.count
                entry[2] += point.sum
                entry[3] = min(entry[3], point.min)
                entry[4] = max(entry[4], point.max)
                entry[5] = [a + b for a, b in zip(entry[5], point.buckets, strict=True)]
                entry[6].extend(e for e in point.exemplars if e is not None)
                point.exemplars = [None] * len(point.buckets)  # reported once, as the SDK's reservoir
        return out

    def collect(self, reader: MetricReader, now: int) -> Metric | None:
        merged = self._merged()
        if not merged:
            return None
        temporality = self._temporality(reader)
        last_time, last = self._last.get(id(reader), (self._created, {}))
        points = []
        for attrs, (start, count, total, low, high, buckets, exemplars) in merged.items():
            if temporality is AggregationTemporality.DELTA:
                prev_count, prev_sum, prev_buckets = last.get(attrs, (0, 0, [0] * len(buckets)))
                last[attrs] = (count, total, buckets)
                start = last_time
                count, total = count - prev_count, total - prev_sum
                buckets = [a - b for a, b in zip(buckets, prev_buckets, strict=True)]
                if count == 0:
                    continue
            points.append(
                HistogramDataPoint(
                    attributes=dict(attrs),
                    start_time_unix_nano=start,
                    time_unix_nano=now,
                    count=count,
                    sum=total,
                    bucket_counts=buckets,
                    explicit_bounds=self.boundaries,
                    min=low,
                    max=high,
                    exemplars=[_exemplar(e) for e in exemplars],
                )
            )
        if temporality is AggregationTemporality.DELTA:
            self._last[id(reader)] = (now, last)
        if not points:
            return None
        return Metric(
            name=self.name,
            description=self.description,
            unit=self.unit,
            data=Histogram(data_points=points, aggregation_temporality=temporality),
        )


def _exemplar(raw: _RawExemplar) -> Exemplar:
    value, when, span_id, trace_id = raw
    return Exemplar({}, value, when, span_id, trace_id)


_NOOP: dict[type, Callable[[str], Any]] = {
    LeanCounter: metrics_api.NoOpCounter,
    LeanUpDownCounter: metrics_api.NoOpUpDownCounter,
    LeanHistogram: metrics_api.NoOpHistogram,
}


class LeanMeter(metrics_api.Meter):
    """Counters, up-down counters and histograms are lean; every other instrument is the SDK meter's."""

    def __init__(self, owner: LeanMeterProvider, sdk: metrics_api.Meter, scope: InstrumentationScope) -> None:
        super().__init__(scope.name, scope.version, scope.schema_url)
        self._owner = owner
        self._sdk = sdk
        self.scope = scope
        self.instruments: list[_Instrument] = []

    def _add(self, instrument: _Instrument) -> Any:
        if instrument.name in self._owner.dropped:
            return _NOOP[type(instrument)](instrument.name)
        for existing in self.instruments:
            if existing.name == instrument.name and type(existing) is type(instrument):
                return existing  # as the SDK: the same instrument again
        self.instruments.append(instrument)
        return instrument

    def create_counter(self, name: str, unit: str = "", description: str = "") -> metrics_api.Counter:
        return self._add(LeanCounter(name, unit, description, self._owner.exemplars, self._owner.lock))  # type: ignore[no-any-return]

    def create_up_down_counter(
        self, name: str, unit: str = "", description: str = ""
    ) -> metrics_api.UpDownCounter:
        return self._add(LeanUpDownCounter(name, unit, description, self._owner.exemplars, self._owner.lock))  # type: ignore[no-any-return]

    def create_histogram(
        self,
        name: str,
        unit: str = "",
        description: str = "",
        *,
        explicit_bucket_boundaries_advisory: Sequence[float] | None = None,
    ) -> metrics_api.Histogram:
        boundaries = explicit_bucket_boundaries_advisory or DEFAULT_BOUNDARIES
        return self._add(  # type: ignore[no-any-return]
            LeanHistogram(name, unit, description, self._owner.exemplars, self._owner.lock, boundaries)
        )

    def create_gauge(self, name: str, unit: str = "", description: str = "") -> Any:
        return self._sdk.create_gauge(name, unit, description)

    def create_observable_counter(
        self, name: str, callbacks: Sequence[Any] | None = None, unit: str = "", description: str = ""
    ) -> metrics_api.ObservableCounter:
        return self._sdk.create_observable_counter(name, callbacks, unit, description)

    def create_observable_up_down_counter(
        self, name: str, callbacks: Sequence[Any] | None = None, unit: str = "", description: str = ""
    ) -> metrics_api.ObservableUpDownCounter:
        return self._sdk.create_observable_up_down_counter(name, callbacks, unit, description)

    def create_observable_gauge(
        self, name: str, callbacks: Sequence[Any] | None = None, unit: str = "", description: str = ""
    ) -> metrics_api.ObservableGauge:
        return self._sdk.create_observable_gauge(name, callbacks, unit, description)

    def collect(self, reader: MetricReader, now: int) -> ScopeMetrics | None:
        collected = [m for m in (i.collect(reader, now) for i in self.instruments) if m is not None]
        if not collected:
            return None
        return ScopeMetrics(scope=self.scope, metrics=collected, schema_url=self.scope.schema_url or "")


class LeanMeterProvider(metrics_api.MeterProvider):
    """The SDK provider with lean synchronous instruments, whose points every one of its readers collects."""

    def __init__(
        self, sdk: MeterProvider, readers: Iterable[MetricReader], dropped: Iterable[str] = ()
    ) -> None:
        self.sdk = sdk
        self.dropped = frozenset(dropped)
        self.exemplars = _Exemplars(sdk)
        # Guards every lean instrument's points: a request's measurements take it once (``*_locked``).
        self.lock = threading.Lock()
        self._meters: dict[InstrumentationScope, LeanMeter] = {}
        self._lock = threading.Lock()
        for reader in readers:
            attach(reader, self)

    def get_meter(
        self,
        name: str,
        version: str | None = None,
        schema_url: str | None = None,
        attributes: Attributes = None,
    ) -> metrics_api.Meter:
        scope = InstrumentationScope(name, version, schema_url, attributes)
        with self._lock:
            meter = self._meters.get(scope)
            if meter is None:
                sdk_meter = self.sdk.get_meter(name, version, schema_url, attributes)
                meter = self._meters[scope] = LeanMeter(self, sdk_meter, scope)
            return meter

    def collect(self, reader: MetricReader) -> list[ScopeMetrics]:
        now = time_ns()
        with self._lock:
            meters = list(self._meters.values())
        return [s for s in (m.collect(reader, now) for m in meters) if s is not None]

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self.sdk.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self.sdk.shutdown()


def attach(reader: MetricReader, provider: LeanMeterProvider) -> None:
    """Extend ``reader``'s collection (set by the SDK ``MeterProvider`` it is registered with) with the lean
    instruments' points, under the same resource."""
    sdk_collect: Callable[..., MetricsData | None] | None = getattr(reader, "_collect", None)
    if sdk_collect is None:
        raise ValueError("the metric reader must be registered with the SDK MeterProvider first")

    def collect(metric_reader: MetricReader, timeout_millis: float = 10_000) -> MetricsData | None:
        data = sdk_collect(metric_reader, timeout_millis=timeout_millis)
        lean = provider.collect(metric_reader)
        if not lean:
            return data
        resource = provider.sdk._sdk_config.resource
        if data is None or not data.resource_metrics:
            return MetricsData(
                resource_metrics=[ResourceMetrics(resource=resource, scope_metrics=lean, schema_url="")]
            )
        first, *rest = data.resource_metrics
        merged = ResourceMetrics(
            resource=first.resource,
            scope_metrics=[*first.scope_metrics, *lean],
            schema_url=first.schema_url,
        )
        return MetricsData(resource_metrics=[merged, *rest])

    reader._set_collect_callback(collect)  # type: ignore[arg-type]


def record_for_span(
    histogram: Any, amount: float, items: Sequence[tuple[str, Any]], span: trace_api.Span, context: Context
) -> None:
    """``histogram.record(amount, dict(items), context=context)`` where ``context`` holds ``span``: for a lean
    histogram without the dict, the key building and the context lookup (the exemplar is ``span``'s)."""
    if isinstance(histogram, LeanHistogram):
        span_context = span._span_context if span.__class__ is LeanSpan else span.get_span_context()
        ids = histogram._exemplars.for_span(span_context)
        histogram.record_items(amount, tuple(items), ids)
    else:
        histogram.record(amount, dict(items), context=context)
