"""The per-request shortcuts of the gateway's own instrumentation must emit what the general paths emit:
spans handed straight to BatchSpanProcessor queues, owned (uncleaned) span attributes, the traceparent
written without ``propagate.inject``, a model call's measurements under one lock, the upstream step run with
the GenAI span current."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from opentelemetry import baggage, context, propagate, trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags, TraceState
from opentelemetry.trace.propagation import _SPAN_KEY
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from app.chat import _in_span
from app.telemetry.lean_metrics import LeanMeterProvider
from app.telemetry.lean_trace import (
    LeanTracer,
    LeanTracerProvider,
    attach_context,
    context_with_span,
    current_span_context,
    detach_context,
    owned_span_starter,
)
from app.telemetry.metrics import GatewayMetrics
from app.telemetry.propagation import inject_trace_context
from tests.app.test_lean_telemetry import RESOURCE, _collected, _normalised, _scenario


def _batched(wrap: Any) -> list[Any]:
    exporter = InMemorySpanExporter()
    sdk = TracerProvider(resource=RESOURCE)
    sdk.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=60_000))
    _scenario(wrap(sdk))
    sdk.force_flush()
    return list(exporter.get_finished_spans())


def test_spans_queued_directly_export_as_the_sdk_batch_processor_exports_them() -> None:
    lean, sdk = _batched(LeanTracerProvider), _batched(lambda p: p)
    assert [s.name for s in lean] == [s.name for s in sdk]
    assert _normalised(encode_spans(lean)) == _normalised(encode_spans(sdk))


class _Recording(SpanProcessor):
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def on_start(self, span: Span, parent_context: context.Context | None = None) -> None:
        self.calls.append(("start", span.name))

    def _on_ending(self, span: Span) -> None:
        self.calls.append(("ending", span.name))

    def on_end(self, span: ReadableSpan) -> None:
        self.calls.append(("end", span.name))


class _RecordOnly(Sampler):
    def should_sample(self, *args: Any, **kwargs: Any) -> SamplingResult:
        return SamplingResult(Decision.RECORD_ONLY)

    def get_description(self) -> str:
        return "record only"


def test_a_processor_added_later_gets_every_call_and_the_batch_processor_still_its_spans() -> None:
    exporter = InMemorySpanExporter()
    sdk = TracerProvider()
    sdk.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=60_000))
    tracer = LeanTracerProvider(sdk).get_tracer("t")
    assert isinstance(tracer, LeanTracer)
    tracer.start_span("before").end()
    assert tracer.batch_queues() is not None
    recording = _Recording()
    sdk.add_span_processor(recording)
    tracer.start_span("after").end()
    assert tracer.batch_queues() is None
    assert recording.calls == [("start", "after"), ("ending", "after"), ("end", "after")]
    # Recorded but not sampled: the batch processor does not export it, nor do its queues get it.
    sampled_out = TracerProvider(sampler=_RecordOnly())
    sampled_out.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=60_000))
    recorded = LeanTracerProvider(sampled_out).get_tracer("t").start_span("dropped")
    assert recorded.is_recording()
    recorded.end()
    sdk.force_flush()
    sampled_out.force_flush()
    assert [s.name for s in exporter.get_finished_spans()] == ["before", "after"]


def test_owned_attributes_give_the_span_start_span_gives() -> None:
    attrs: dict[str, Any] = {"s": "x", "b": True, "i": 7, "f": 0.5, "stop": ("a", "b"), "ints": (1, 2)}
    out: dict[str, list[Any]] = {}
    for how in ("owned", "start_span"):
        exporter = InMemorySpanExporter()
        sdk = TracerProvider(resource=RESOURCE)
        sdk.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = LeanTracerProvider(sdk).get_tracer("t")
        parent = trace.set_span_in_context(
            NonRecordingSpan(SpanContext(0xA, 0xB, is_remote=True, trace_flags=TraceFlags(1)))
        )
        if how == "owned":
            span = owned_span_starter(tracer)("chat m", parent, SpanKind.CLIENT, dict(attrs))
        else:
            span = tracer.start_span("chat m", parent, SpanKind.CLIENT, {**attrs, "stop": ["a", "b"]})
        span.end()
        out[how] = list(exporter.get_finished_spans())
    assert _normalised(encode_spans(out["owned"])) == _normalised(encode_spans(out["start_span"]))
    # Any other tracer: the starter falls back to its start_span.
    sdk_tracer = TracerProvider().get_tracer("t")
    fallback: Any = owned_span_starter(sdk_tracer)("x", None, SpanKind.INTERNAL, dict(attrs))
    assert fallback.attributes == attrs


SPAN_CONTEXTS = [
    SpanContext(0x1234, 0xABC, is_remote=False, trace_flags=TraceFlags(flags), trace_state=state)
    for flags in (0, 1, 3)
    for state in (None, TraceState([("vendor", "1"), ("b", "x y")]))
]


@pytest.mark.parametrize("span_context", [*SPAN_CONTEXTS, trace.INVALID_SPAN_CONTEXT])
@pytest.mark.parametrize("with_baggage", [False, True])
def test_trace_context_headers_are_what_propagate_inject_writes(
    span_context: SpanContext, with_baggage: bool
) -> None:
    ctx = trace.set_span_in_context(NonRecordingSpan(span_context))
    if with_baggage:
        ctx = baggage.set_baggage("tenant", "a b,c", ctx)
    expected: dict[str, str] = {"x-request-id": "r"}
    ours: dict[str, str] = {"x-request-id": "r"}
    propagate.inject(expected, context=ctx)
    inject_trace_context(ours, span_context, ctx)
    assert ours == expected


class _Marker(TraceContextTextMapPropagator):
    def inject(self, carrier: Any, context: Any = None, setter: Any = None) -> None:
        carrier["x-marker"] = "custom"


@pytest.mark.parametrize("propagator", [TraceContextTextMapPropagator(), CompositePropagator([_Marker()])])
def test_any_other_propagator_is_used_as_configured(propagator: Any) -> None:
    span_context = SPAN_CONTEXTS[1]
    ctx = trace.set_span_in_context(NonRecordingSpan(span_context))
    before = propagate.get_global_textmap()
    propagate.set_global_textmap(propagator)
    try:
        expected: dict[str, str] = {}
        ours: dict[str, str] = {}
        propagate.inject(expected, context=ctx)
        inject_trace_context(ours, span_context, ctx)
    finally:
        propagate.set_global_textmap(before)
    assert ours == expected


@pytest.mark.parametrize("latest", [False, True])
def test_a_calls_measurements_under_one_lock_collect_what_the_api_records(latest: bool) -> None:
    span = TracerProvider().get_tracer("t").start_span("chat")
    ctx = trace.set_span_in_context(span)
    readers = {}
    for kind in ("lean", "api"):
        reader = InMemoryMetricReader()
        sdk = MeterProvider(resource=RESOURCE, metric_readers=[reader])
        provider: Any = LeanMeterProvider(sdk, [reader]) if kind == "lean" else sdk
        metrics = GatewayMetrics(provider, latest)
        assert (metrics._lean is not None) == (kind == "lean")
        attrs = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m", "llm_gateway.tenant": "t"}
        usage = {
            "gen_ai.usage.input_tokens": 14,
            "gen_ai.usage.output_tokens": 8,
            "gen_ai.usage.cache_read.input_tokens": 4,
        }
        metrics.record_call(attrs, 0.25, usage, None, ctx)
        metrics.record_call(attrs, 0.5, usage, None, ctx, 0.05, 0.01)
        metrics.record_call(attrs, 0.5, {"gen_ai.usage.input_tokens": 3}, None, ctx, 0.05, None)
        metrics.record_call(attrs, 1.5, {}, "timeout", ctx)
        metrics.record_call(attrs, 0.1, usage, None, None)
        readers[kind] = reader
    lean, api = _collected(readers["lean"]), _collected(readers["api"])
    assert lean == api
    assert "gen_ai.server.time_to_first_token" in lean
    assert ("gen_ai.client.inference.duration" in lean) == latest


def test_the_upstream_step_runs_with_the_span_current_and_records_its_exception() -> None:
    exporter = InMemorySpanExporter()
    sdk = TracerProvider()
    sdk.add_span_processor(SimpleSpanProcessor(exporter))
    span = LeanTracerProvider(sdk).get_tracer("t").start_span("chat m")

    class Call:
        pass

    call: Any = Call()
    call.span, call.context = span, trace.set_span_in_context(span)

    async def step(fail: bool) -> SpanContext:
        if fail:
            raise ValueError("upstream said no")
        return trace.get_current_span().get_span_context()

    async def run() -> None:
        outside = trace.get_current_span()
        assert await _in_span(call, step(False)) == span.get_span_context()
        assert trace.get_current_span() is outside
        with pytest.raises(ValueError):
            await _in_span(call, step(True))
        assert trace.get_current_span() is outside

    asyncio.run(run())
    span.end()
    (finished,) = exporter.get_finished_spans()
    (event,) = finished.events
    assert event.name == "exception" and event.attributes is not None
    assert event.attributes["exception.type"] == "ValueError"
    assert event.attributes["exception.message"] == "upstream said no"


def _providers(kind: str) -> tuple[Any, Any, InMemorySpanExporter, InMemoryMetricReader]:
    exporter = InMemorySpanExporter()
    tracer_sdk = TracerProvider(resource=RESOURCE)
    tracer_sdk.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_sdk = MeterProvider(resource=RESOURCE, metric_readers=[reader])
    if kind == "lean":
        return LeanTracerProvider(tracer_sdk), LeanMeterProvider(meter_sdk, [reader]), exporter, reader
    return tracer_sdk, meter_sdk, exporter, reader


def _http_round(kind: str) -> tuple[dict[str, Any], list[Any]]:
    """Two server requests (200, 503) each with one upstream call (200, 429) through both telemetry
    middlewares; the metrics collected (exemplar ids replaced by the span names they point at)."""
    from app.telemetry.http_client import HttpClientTelemetry
    from app.telemetry.http_server import ServerTelemetry

    tracer_provider, meter_provider, exporter, reader = _providers(kind)
    client = HttpClientTelemetry(tracer_provider, meter_provider)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        status = 200 if scope["path"] == "/ok" else 503
        call = client.start("POST", "http://up/v1/chat/completions", "up", 8080, {})
        call.status(200 if status == 200 else 429)
        call.end()
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    server = ServerTelemetry(
        app, tracer_provider=tracer_provider, meter_provider=meter_provider, routes=["/ok", "/fail"]
    )

    async def run() -> None:
        for path in ("/ok", "/fail"):
            scope = {
                "type": "http",
                "method": "POST",
                "path": path,
                "scheme": "http",
                "http_version": "1.1",
                "headers": [(b"host", b"gw:8000")],
            }

            async def send(message: Any) -> None:
                pass

            async def receive() -> Any:
                return {"type": "http.request", "body": b"", "more_body": False}

            await server(scope, receive, send)

    asyncio.run(run())
    spans = list(exporter.get_finished_spans())
    names = {s.context.span_id: s.name for s in spans}
    collected = _collected(reader)
    for name, (unit, description, temporality, points, scope) in collected.items():
        collected[name] = (
            unit,
            description,
            temporality,
            # durations differ between runs: count, buckets, attributes and exemplar targets must not
            [
                (p[0], p[1], p[2], p[4], p[5], sorted(names.get(sid, "") for _, sid, _ in p[8]))
                for p in points
            ],
            scope,
        )
    return collected, spans


def test_http_server_and_client_metrics_are_what_the_api_records() -> None:
    lean, lean_spans = _http_round("lean")
    api, api_spans = _http_round("api")
    assert lean == api
    assert [s.name for s in lean_spans] == [s.name for s in api_spans]
    duration_points = lean["http.server.request.duration"][3]
    assert sorted(e for p in duration_points for e in p[5]) == ["POST /fail", "POST /ok"]
    assert [e for p in lean["http.client.request.duration"][3] for e in p[5]] == ["POST", "POST"]


class _CountingIds(IdGenerator):
    """Deterministic ids, including the invalid ones a faulty generator may produce."""

    def __init__(self, ids: list[int]) -> None:
        self._ids = iter(ids)

    def generate_span_id(self) -> int:
        return next(self._ids)

    def generate_trace_id(self) -> int:
        return next(self._ids)


def test_span_ids_are_the_id_generators_as_the_sdk_takes_them() -> None:
    ids = [7, 11, 13, 0, 1 << 64, 17]  # root trace/span, child span, then invalid span ids
    contexts = []
    for wrap in (LeanTracerProvider, lambda p: p):
        tracer = wrap(TracerProvider(id_generator=_CountingIds(ids))).get_tracer("t")
        root = tracer.start_span("root")
        spans = [root] + [tracer.start_span(f"c{i}", trace.set_span_in_context(root)) for i in range(4)]
        contexts.append([tuple(s.get_span_context()) for s in spans if s is not None])
    assert contexts[0] == contexts[1]
    assert [c[5] for c in contexts[0]] == [True, True, False, False, True]


def test_a_random_span_id_of_zero_is_drawn_again(monkeypatch: pytest.MonkeyPatch) -> None:
    draws = iter([0x1234, 0, 0, 0x99])  # trace id, then span ids 0, 0 (drawn again), 0x99
    monkeypatch.setattr(random, "getrandbits", lambda bits: next(draws))
    tracer = LeanTracerProvider(TracerProvider()).get_tracer("t")
    assert isinstance(tracer, LeanTracer)
    context = tracer.start_span("s").get_span_context()
    assert (context.trace_id, context.span_id, context.is_valid) == (0x1234, 0x99, True)


def test_the_attribute_count_limit_alone_drops_as_the_sdk_drops() -> None:
    results = []
    for wrap in (LeanTracerProvider, lambda p: p):
        exporter = InMemorySpanExporter()
        sdk = TracerProvider(span_limits=SpanLimits(max_span_attributes=2))
        sdk.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = wrap(sdk).get_tracer("t")
        tracer.start_span("two", attributes={"a": "x" * 500, "b": 2}).end()
        tracer.start_span("three", attributes={"a": 1, "b": 2, "c": 3}).end()
        results.append(
            [(s.name, dict(s.attributes or {}), s.dropped_attributes) for s in exporter.get_finished_spans()]
        )
    assert results[0] == results[1]
    assert results[0][1][2] == 1


def test_a_full_or_shut_down_batch_queue_takes_spans_as_the_sdk_queue_does() -> None:
    exported, dropped = [], []
    for wrap in (LeanTracerProvider, lambda p: p):
        drops: list[tuple[int, str]] = []
        exporter = InMemorySpanExporter()
        sdk = TracerProvider()
        processor = BatchSpanProcessor(
            exporter, max_queue_size=3, max_export_batch_size=3, schedule_delay_millis=60_000
        )
        sdk.add_span_processor(processor)
        processor._batch_processor._metrics.drop_items = lambda n, error_type="queue_full", drops=drops: (
            drops.append((n, error_type))
        )
        tracer = wrap(sdk).get_tracer("t")
        with processor._batch_processor._export_lock:  # the worker cannot drain the queue meanwhile
            for i in range(5):  # two more than the queue holds: the SDK drops the oldest
                tracer.start_span(f"s{i}").end()
        sdk.force_flush()
        sdk.shutdown()
        tracer.start_span("after shutdown").end()
        exported.append([s.name for s in exporter.get_finished_spans()])
        dropped.append(drops)
    assert exported[0] == exported[1] == ["s2", "s3", "s4"]
    # the SDK's own emit took the spans over the limit (counted), and the one after shutdown
    assert dropped[0] == dropped[1] and dropped[0][:2] == [(1, "queue_full"), (1, "queue_full")]


def test_the_current_span_context_is_what_get_current_span_finds() -> None:
    sdk = TracerProvider()
    lean_span = LeanTracerProvider(sdk).get_tracer("t").start_span("lean")
    remote = NonRecordingSpan(SpanContext(5, 6, is_remote=True, trace_flags=TraceFlags(1)))
    contexts = [
        None,
        context.Context(),
        trace.set_span_in_context(trace.INVALID_SPAN),
        trace.set_span_in_context(remote),
        trace.set_span_in_context(lean_span),
        trace.set_span_in_context(sdk.get_tracer("t").start_span("sdk")),
        context.set_value(_SPAN_KEY, "not a span"),
    ]
    for ctx in contexts:
        expected = trace.get_current_span(ctx).get_span_context()
        found = current_span_context(ctx)
        assert (found if found is not None else trace.INVALID_SPAN_CONTEXT) == expected
        assert context_with_span(lean_span, ctx) == trace.set_span_in_context(lean_span, ctx)
    token = attach_context(trace.set_span_in_context(remote))
    try:
        assert current_span_context() == remote.get_span_context()
        assert context_with_span(lean_span) == trace.set_span_in_context(lean_span)
    finally:
        detach_context(token)
    assert current_span_context() is None


def test_detaching_a_context_twice_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    token = attach_context(context.Context())
    detach_context(token)
    detach_context(token)  # as opentelemetry.context.detach: logged
    assert "Failed to detach context" in caplog.text
