"""The lean tracer, instruments and logger (app/telemetry/lean_*.py) must emit what the SDK's own emit for the
same calls: compared through the SDK's data model, its OTLP encoder and a real OTLP/gRPC receiver."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    InMemoryLogRecordExporter,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased, TraceIdRatioBased
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from app.telemetry.lean_logs import LeanLoggerProvider
from app.telemetry.lean_metrics import CARDINALITY_LIMIT, LeanMeterProvider
from app.telemetry.lean_trace import LeanSpan, LeanTracerProvider
from app.telemetry.otlp_encode import FastOTLPLogExporter, FastOTLPSpanExporter, LogEncoder, SpanEncoder

ATTRS: dict[str, Any] = {
    "s": "plain",
    "unicode": "héllo ✓ 日本",
    "t": True,
    "zero": 0,
    "big": 2**62,
    "float": 0.25,
    "strs": ["stop", "length"],
    "ints": (1, 2, 3),
    "empty list": [],
    "bytes": b"\x00\x01",
    "none": None,
}
RESOURCE = Resource.create({"service.name": "lean", "deployment.environment.name": "t"})
REMOTE = SpanContext(
    0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(1), trace_state=TraceState([("k", "v")])
)


def _scenario(provider: trace.TracerProvider) -> None:
    """Every span API the gateway and instrumentation use."""
    server = provider.get_tracer("app.gateway.http_server", "1.0")
    client = provider.get_tracer("app.gateway", "1.0", schema_url="https://opentelemetry.io/schemas/1.44.0")
    with server.start_as_current_span(
        "POST /v1/chat/completions",
        kind=SpanKind.SERVER,
        context=trace.set_span_in_context(trace.NonRecordingSpan(REMOTE)),
        attributes={"http.request.method": "POST"},
    ):
        span = client.start_span("chat gpt-4o-mini", kind=SpanKind.CLIENT, attributes=ATTRS)
        span.add_event("gen_ai.upstream.retry", {"error.type": "429", "n": [1, 2]})
        span.set_attributes({"gen_ai.usage.input_tokens": 14, "gen_ai.response.finish_reasons": ["stop"]})
        span.set_attribute("late", "yes")
        span.update_name("chat gpt-4o-mini-2024")
        span.set_status(Status(StatusCode.ERROR, "upstream said no"))
        span.end()
        span.set_attribute("after end", "ignored")
        span.end()  # twice: once
        with client.start_as_current_span("feedback", links=[Link(REMOTE, {"x": 1})]) as fb:
            fb.set_status(StatusCode.OK)
            fb.set_status(Status(StatusCode.ERROR, "OK is final"))
            fb.add_link(SpanContext(0x1, 0x2, is_remote=False), {"y": "z"})
        with pytest.raises(ValueError), client.start_as_current_span("raises"):
            raise ValueError("boom")
    client.start_span("root without attributes").end()


def _normalised(request: ExportTraceServiceRequest) -> ExportTraceServiceRequest:
    """Ids and times vary per run; everything else must match."""
    for rs in request.resource_spans:
        for ss in rs.scope_spans:
            for span in ss.spans:
                span.trace_id = span.span_id = span.parent_span_id = b""
                span.start_time_unix_nano = span.end_time_unix_nano = 0
                for event in span.events:
                    event.time_unix_nano = 0
                    for attr in event.attributes:
                        if attr.key == "exception.stacktrace":
                            attr.value.string_value = ""
                for link in span.links:
                    if link.trace_id != REMOTE.trace_id.to_bytes(16, "big"):
                        link.trace_id = link.span_id = b""
    return request


def _run(wrap: Callable[[TracerProvider], trace.TracerProvider], **kwargs: Any) -> list[Any]:
    exporter = InMemorySpanExporter()
    sdk = TracerProvider(resource=RESOURCE, **kwargs)
    sdk.add_span_processor(SimpleSpanProcessor(exporter))
    _scenario(wrap(sdk))
    return list(exporter.get_finished_spans())


def test_lean_spans_carry_what_sdk_spans_carry() -> None:
    sdk_spans = _run(lambda p: p)
    lean_spans = _run(LeanTracerProvider)
    assert all(isinstance(s, LeanSpan) for s in lean_spans)
    assert [s.name for s in lean_spans] == [s.name for s in sdk_spans]
    assert _normalised(encode_spans(lean_spans)) == _normalised(encode_spans(sdk_spans))
    for lean, sdk in zip(lean_spans, sdk_spans, strict=True):
        assert dict(lean.attributes) == dict(sdk.attributes)
        assert lean.context.trace_flags == sdk.context.trace_flags  # sampled, random-trace-id
        assert lean.context.trace_state == sdk.context.trace_state
        assert lean.status.status_code == sdk.status.status_code
        assert lean.status.description == sdk.status.description
        assert (lean.parent is None) == (sdk.parent is None)
        assert lean.resource is RESOURCE or lean.resource == RESOURCE
    by_name = {s.name: s for s in lean_spans}
    server, chat = by_name["POST /v1/chat/completions"], by_name["chat gpt-4o-mini-2024"]
    assert server.context.trace_id == REMOTE.trace_id and server.parent.span_id == REMOTE.span_id
    assert chat.context.trace_id == REMOTE.trace_id and chat.parent.span_id == server.context.span_id
    assert chat.attributes["strs"] == ("stop", "length")
    assert "after end" not in chat.attributes
    root = by_name["root without attributes"]
    assert root.parent is None and root.context.trace_id != REMOTE.trace_id


def test_our_encoder_encodes_lean_spans_exactly_as_the_sdk() -> None:
    spans = _run(LeanTracerProvider)
    encoder = SpanEncoder()
    for _ in range(2):
        assert ExportTraceServiceRequest.FromString(encoder.encode(spans)) == encode_spans(spans)


@pytest.mark.parametrize(
    ("sampler", "parent_sampled", "recorded"),
    [
        (None, True, True),
        (None, False, False),  # the default parent-based sampler follows the parent
        (ALWAYS_OFF, True, False),
        (TraceIdRatioBased(0.0), None, False),
        (TraceIdRatioBased(1.0), None, True),
        (ParentBased(ALWAYS_OFF), True, True),
        (ParentBased(ALWAYS_OFF), None, False),
    ],
)
def test_sampling_decisions_match_the_sdk(sampler: Any, parent_sampled: bool | None, recorded: bool) -> None:
    for wrap in (lambda p: p, LeanTracerProvider):
        exporter = InMemorySpanExporter()
        sdk = TracerProvider(sampler=sampler) if sampler is not None else TracerProvider()
        sdk.add_span_processor(SimpleSpanProcessor(exporter))
        context = None
        if parent_sampled is not None:
            flags = TraceFlags(TraceFlags.SAMPLED if parent_sampled else TraceFlags.DEFAULT)
            parent = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=flags)
            context = trace.set_span_in_context(trace.NonRecordingSpan(parent))
        span = wrap(sdk).get_tracer("t").start_span("s", context=context)
        assert span.is_recording() is recorded
        assert span.get_span_context().is_valid
        span.end()
        assert len(exporter.get_finished_spans()) == (1 if recorded else 0)


def test_span_limits_are_applied() -> None:
    exporter = InMemorySpanExporter()
    sdk = TracerProvider(span_limits=SpanLimits(max_span_attributes=3, max_span_attribute_length=4))
    sdk.add_span_processor(SimpleSpanProcessor(exporter))
    span = (
        LeanTracerProvider(sdk).get_tracer("t").start_span("s", attributes={"a": "abcdefgh", "b": ["xyzxyz"]})
    )
    span.set_attributes({"c": 1, "d": 2})
    span.end()
    (finished,) = exporter.get_finished_spans()
    # As the SDK's BoundedAttributes: values truncated, the oldest one evicted for the one over the limit
    assert dict(finished.attributes or {}) == {"b": ("xyzx",), "c": 1, "d": 2}
    assert finished.dropped_attributes == 1


def test_lean_spans_go_through_the_batch_processor() -> None:
    exporter = InMemorySpanExporter()
    sdk = TracerProvider()
    sdk.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=60_000))
    tracer = LeanTracerProvider(sdk).get_tracer("t")
    for i in range(5):
        tracer.start_span(f"s{i}").end()
    assert exporter.get_finished_spans() == ()
    sdk.force_flush()
    assert [s.name for s in exporter.get_finished_spans()] == [f"s{i}" for i in range(5)]


# --- metrics ------------------------------------------------------------------------------------------------

BOUNDS = [0.01, 0.1, 1.0]


def _measure(provider: Any, span: Any) -> None:
    meter = provider.get_meter("app.gateway", "1.0")
    hist = meter.create_histogram(
        "d", unit="s", description="dur", explicit_bucket_boundaries_advisory=BOUNDS
    )
    counter = meter.create_counter("c", unit="{x}", description="count")
    updown = meter.create_up_down_counter("u", unit="{x}")
    default_bounds = meter.create_histogram("tokens")
    ctx = trace.set_span_in_context(span)
    a = {"model": "m", "tenant": "t"}
    for value in (0.005, 0.01, 0.05, 0.5, 5.0):
        hist.record(value, a, context=ctx)
    hist.record(0.2, {"tenant": "t", "model": "m"})  # same set, other key order: one point
    hist.record(0.3, {"model": "other"})
    default_bounds.record(7, {"k": "v"})
    counter.add(2, a, context=ctx)
    counter.add(-1, a)  # a counter cannot go down: ignored
    counter.add(3)
    updown.add(1, {"m": "POST"})
    updown.add(-1, {"m": "POST"})
    updown.add(1, {"m": "GET"})


def _collected(reader: InMemoryMetricReader) -> dict[str, Any]:
    data = reader.get_metrics_data()
    assert data is not None
    out: dict[str, Any] = {}
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                points = sorted(
                    (
                        (
                            tuple(sorted((p.attributes or {}).items())),
                            getattr(p, "value", None),
                            getattr(p, "count", None),
                            getattr(p, "sum", None),
                            tuple(getattr(p, "bucket_counts", ())),
                            tuple(getattr(p, "explicit_bounds", ())),
                            getattr(p, "min", None),
                            getattr(p, "max", None),
                            sorted((e.value, e.span_id, e.trace_id) for e in p.exemplars),
                        )
                        for p in metric.data.data_points
                    ),
                    key=repr,
                )
                temporality = getattr(metric.data, "aggregation_temporality", None)
                out[metric.name] = (metric.unit, metric.description, temporality, points, sm.scope.name)
    return out


def _metric_pair(temporality: AggregationTemporality) -> tuple[Any, ...]:
    from opentelemetry.sdk.metrics import Counter, Histogram

    preferred: dict[type, AggregationTemporality] = {Counter: temporality, Histogram: temporality}
    span = TracerProvider().get_tracer("t").start_span("parent")
    sdk_reader = InMemoryMetricReader(preferred_temporality=preferred)
    lean_reader = InMemoryMetricReader(preferred_temporality=preferred)
    sdk = MeterProvider(resource=RESOURCE, metric_readers=[sdk_reader])
    lean = LeanMeterProvider(MeterProvider(resource=RESOURCE, metric_readers=[lean_reader]), [lean_reader])
    return span, sdk, sdk_reader, lean, lean_reader


@pytest.mark.parametrize("temporality", [AggregationTemporality.CUMULATIVE, AggregationTemporality.DELTA])
def test_lean_instruments_collect_what_sdk_instruments_collect(temporality: AggregationTemporality) -> None:
    span, sdk, sdk_reader, lean, lean_reader = _metric_pair(temporality)
    _measure(sdk, span)
    _measure(lean, span)
    first_sdk, first_lean = _collected(sdk_reader), _collected(lean_reader)
    assert first_lean == first_sdk
    assert first_lean["d"][3][0][8], "histogram exemplars carry the span"
    # A second interval: cumulative sums grow, delta ones restart.
    _measure(sdk, span)
    _measure(lean, span)
    second_lean = _collected(lean_reader)
    assert second_lean == _collected(sdk_reader)
    if temporality is AggregationTemporality.DELTA:
        counts = [p[2] for p in second_lean["d"][3]]
        assert counts == [p[2] for p in first_lean["d"][3]]


def test_lean_points_share_the_sdk_readers_export() -> None:
    reader = InMemoryMetricReader()
    sdk = MeterProvider(resource=RESOURCE, metric_readers=[reader])
    lean = LeanMeterProvider(sdk, [reader])
    sdk.get_meter("sdk").create_observable_gauge("g", callbacks=[lambda _: []])
    sdk.get_meter("sdk").create_counter("sdk.counter").add(1)
    lean.get_meter("lean").create_counter("lean.counter").add(1)
    data = reader.get_metrics_data()
    assert data is not None and len(data.resource_metrics) == 1
    (rm,) = data.resource_metrics
    assert rm.resource == RESOURCE
    assert {m.name for sm in rm.scope_metrics for m in sm.metrics} == {"sdk.counter", "lean.counter"}


def test_cardinality_is_bounded_and_dropped_names_are_no_ops() -> None:
    reader = InMemoryMetricReader()
    lean = LeanMeterProvider(MeterProvider(metric_readers=[reader]), [reader], dropped=["dropped"])
    meter = lean.get_meter("m")
    counter = meter.create_counter("c")
    for i in range(CARDINALITY_LIMIT + 50):
        counter.add(1, {"id": i})
    meter.create_histogram("dropped").record(1.0)
    listed = meter.create_histogram("listed")
    listed.record(1.0, {"reasons": ["stop"]})  # unhashable as given: kept as a tuple, as the SDK keeps it
    listed.record(2.0, {"reasons": ("stop",)})
    assert meter.create_counter("c") is counter  # the same instrument again
    points = _collected(reader)["c"][3]
    assert len(points) == CARDINALITY_LIMIT
    overflow = [p for p in points if p[0] == (("otel.metric.overflow", True),)]
    assert overflow and overflow[0][1] == 51
    collected = _collected(reader)
    assert "dropped" not in collected
    assert [(p[0], p[2]) for p in collected["listed"][3]] == [((("reasons", ("stop",)),), 2)]


# --- logs ---------------------------------------------------------------------------------------------------


def _emit_logs(provider: Any) -> None:
    logger = provider.get_logger("app.gateway", "1.0")
    with TracerProvider().get_tracer("t").start_as_current_span("chat") as span:
        ctx = trace.set_span_in_context(span)
        logger.emit(
            timestamp=1_700_000_000_000_000_000,
            observed_timestamp=1_700_000_000_000_000_001,
            context=ctx,
            severity_number=SeverityNumber.INFO,
            severity_text="INFO",
            body="chat completion ok",
            attributes=ATTRS,
            event_name="llm_gateway.request",
        )
    logger.emit(body={"structured": [1, 2]}, attributes={"k": "v"}, observed_timestamp=5)
    logger.emit(body="with an exception", exception=ValueError("x"), observed_timestamp=6)


@pytest.mark.parametrize("batch", [False, True])
def test_lean_log_records_carry_what_sdk_records_carry(batch: bool) -> None:
    encoded = []
    for wrap in (lambda p: p, LeanLoggerProvider):
        exporter = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
        sdk = LoggerProvider(resource=RESOURCE)
        processor = BatchLogRecordProcessor(exporter) if batch else SimpleLogRecordProcessor(exporter)
        sdk.add_log_record_processor(processor)
        _emit_logs(wrap(sdk))
        sdk.force_flush()
        logs = list(exporter.get_finished_logs())
        assert len(logs) == 3
        request = encode_logs(logs)
        for rl in request.resource_logs:
            for sl in rl.scope_logs:
                for record in sl.log_records:
                    record.trace_id = record.span_id = b"" if record.trace_id else record.trace_id
        encoded.append(request)
        assert ExportLogsServiceRequest.FromString(LogEncoder().encode(logs)) == encode_logs(logs)
    assert encoded[0] == encoded[1]


# --- the real OTLP/gRPC path --------------------------------------------------------------------------------


def test_raw_stub_exporters_deliver_to_a_real_grpc_receiver() -> None:
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench" / "gateway"))
    from otlp_sink import OtlpSink

    sink = OtlpSink(keep=True).start()
    try:
        spans = _run(LeanTracerProvider)
        span_exporter = FastOTLPSpanExporter(endpoint=sink.endpoint, insecure=True)
        assert span_exporter.export(spans).name == "SUCCESS"
        logs_exporter = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
        sdk_logs = LoggerProvider(resource=RESOURCE)
        sdk_logs.add_log_record_processor(SimpleLogRecordProcessor(logs_exporter))
        _emit_logs(LeanLoggerProvider(sdk_logs))
        log_exporter = FastOTLPLogExporter(endpoint=sink.endpoint, insecure=True)
        assert log_exporter.export(logs_exporter.get_finished_logs()).name == "SUCCESS"
        deadline = time.monotonic() + 5
        while (sink.received.spans, sink.received.logs) != (len(spans), 3) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (sink.received.spans, sink.received.logs) == (len(spans), 3)
        (received,) = sink.received.trace_requests
        assert received == encode_spans(spans)
        span_exporter.shutdown()
        log_exporter.shutdown()
    finally:
        sink.stop()


def test_exemplars_follow_the_context_of_each_measurement() -> None:
    reader = InMemoryMetricReader()
    lean = LeanMeterProvider(MeterProvider(metric_readers=[reader]), [reader])
    hist = lean.get_meter("m").create_histogram("d", explicit_bucket_boundaries_advisory=[1.0])
    tracer = TracerProvider().get_tracer("t")
    a, b = tracer.start_span("a"), tracer.start_span("b")
    ctx_a, ctx_b = trace.set_span_in_context(a), trace.set_span_in_context(b)
    hist.record(0.5, context=ctx_a)
    hist.record(2.0, context=ctx_b)
    hist.record(0.7, context=ctx_a)
    hist.record(3.0, context=trace.set_span_in_context(trace.INVALID_SPAN))  # no span: keeps b's exemplar
    (point,) = _collected(reader)["d"][3]
    assert point[8] == sorted(
        [(0.7, a.get_span_context().span_id, a.get_span_context().trace_id),
         (2.0, b.get_span_context().span_id, b.get_span_context().trace_id)]
    )  # fmt: skip


# --- the request log's fast path ----------------------------------------------------------------------------

# What GenAICall._log hands over: values the gateway made (str, bool, int, float), for the fast path.
REQUEST_ATTRS: dict[str, Any] = {
    "llm_gateway.request.id": "req_0123456789",
    "llm_gateway.tenant": "acme",
    "gen_ai.request.model": "gpt-4o-mini",
    "llm_gateway.provider.simulated": False,
    "gen_ai.request.stream": True,
    "http.response.status_code": 200,
    "llm_gateway.duration_ms": 12.345,
    "gen_ai.usage.input_tokens": 12,
    "gen_ai.response.id": "chatcmpl-héllo ✓",
}


def _emit_plain(provider: Any, attrs: dict[str, Any], n: int = 3) -> None:
    """Request-log-like records, through ``emit`` (kwargs) and, for a lean logger, ``emit_owned``."""
    logger = provider.get_logger("app.gateway", "1.0")
    with TracerProvider().get_tracer("t").start_as_current_span("chat") as span:
        ctx = trace.set_span_in_context(span)
        for i in range(n):
            args = (
                1_700_000_000_000_000_000 + i,
                1_700_000_000_000_000_500 + i,
                ctx,
                SeverityNumber.WARN if i % 2 else SeverityNumber.INFO,
                "WARN" if i % 2 else "INFO",
                f"chat completion {i % 2}",
                {**attrs, "llm_gateway.request.id": f"req_{i}"},
                "llm_gateway.request",
            )
            emit_owned = getattr(logger, "emit_owned", None)
            if i % 2 and emit_owned is not None:
                if not emit_owned(*args, True):
                    logger.emit(**dict(zip(_EMIT_KEYS, args, strict=True)))
            else:
                logger.emit(**dict(zip(_EMIT_KEYS, args, strict=True)))
    logger.emit(body="outside any span", attributes={"k": "v"}, observed_timestamp=7)


_EMIT_KEYS = (
    "timestamp",
    "observed_timestamp",
    "context",
    "severity_number",
    "severity_text",
    "body",
    "attributes",
    "event_name",
)


def _exported_logs(wrap: Callable[[Any], Any], batch: bool, emit: Callable[[Any], None]) -> list[Any]:
    exporter = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
    sdk = LoggerProvider(resource=RESOURCE)
    sdk.add_log_record_processor(
        BatchLogRecordProcessor(exporter) if batch else SimpleLogRecordProcessor(exporter)
    )
    emit(wrap(sdk))
    sdk.force_flush()
    logs = list(exporter.get_finished_logs())
    sdk.shutdown()
    return logs


def _same_ids(request: ExportLogsServiceRequest) -> ExportLogsServiceRequest:
    """The trace/span ids of records made in a span (each run has its own span)."""
    for rl in request.resource_logs:
        for sl in rl.scope_logs:
            for record in sl.log_records:
                if record.trace_id:
                    record.trace_id, record.span_id = b"t" * 16, b"s" * 8
    return request


LIMITS = [
    {},
    {"OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT": "4"},
    {"OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT": "5"},
    {"OTEL_ATTRIBUTE_COUNT_LIMIT": "3", "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "200"},
    {"OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT": "0"},
    {"OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT": "9", "OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT": "64"},
]


@pytest.mark.filterwarnings("ignore:Log record attributes were dropped")  # the SDK warns, as it should
@pytest.mark.parametrize(
    "env", LIMITS, ids=lambda e: ",".join(f"{k[5:]}={v}" for k, v in e.items()) or "none"
)
@pytest.mark.parametrize("batch", [False, True])
def test_plain_records_and_limits_are_what_the_sdk_makes(
    batch: bool, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    attrs = {**REQUEST_ATTRS, "llm_gateway.long": "x" * 100}
    sdk_logs, lean_logs = (
        _exported_logs(wrap, batch, lambda p: _emit_plain(p, attrs))
        for wrap in (lambda p: p, LeanLoggerProvider)
    )
    assert len(sdk_logs) == len(lean_logs) == 4
    sdk_request, lean_request = encode_logs(sdk_logs), encode_logs(lean_logs)
    assert _same_ids(lean_request) == _same_ids(sdk_request)
    for sdk_record, lean_record in zip(sdk_logs, lean_logs, strict=True):
        assert lean_record.dropped_attributes == sdk_record.dropped_attributes
        assert dict(lean_record.log_record.attributes or {}) == dict(sdk_record.log_record.attributes or {})
        # Every field the SDK's record has, and no other (a new API field would show here).
        assert vars(lean_record.log_record).keys() == vars(sdk_record.log_record).keys()
        assert lean_record.instrumentation_scope == sdk_record.instrumentation_scope
        assert lean_record.limits == sdk_record.limits or (
            vars(lean_record.limits) == vars(sdk_record.limits)
        )
        if batch:  # what the batch processor keeps: no reference to the request's context
            assert lean_record.log_record.context == sdk_record.log_record.context == {}
    assert ExportLogsServiceRequest.FromString(LogEncoder().encode(lean_logs)) == encode_logs(lean_logs)


def test_a_plain_record_is_not_changed_by_its_caller_afterwards() -> None:
    attrs = dict(REQUEST_ATTRS)

    def emit(provider: Any) -> None:
        provider.get_logger("app.gateway").emit(body="b", attributes=attrs)
        attrs["llm_gateway.tenant"] = "changed"

    (record,) = _exported_logs(LeanLoggerProvider, True, emit)
    assert record.log_record.attributes["llm_gateway.tenant"] == "acme"


def test_the_request_log_emits_what_the_sdk_logger_emits() -> None:
    """GenAICall._log's record through RequestLog: the lean path vs the SDK's logger behind the handler."""
    import logging

    from app.genai_call import CallMeta, GenAICall
    from app.request_log import RequestLog, gateway_logger

    def emit(provider: Any) -> None:
        logger = gateway_logger(provider, True, stderr=False)
        meta = CallMeta("req_1", "acme", "u_hash", "alias", "gpt-4o-mini", True)
        with TracerProvider().get_tracer("t").start_as_current_span("chat") as span:
            call: Any = type("Call", (), {})()
            call.meta, call.provider_name, call.retries = meta, "openai", 1
            call.provider = type("P", (), {"simulated": False})()
            call.request_log, call.context = RequestLog(logger), trace.set_span_in_context(span)
            usage = {"gen_ai.usage.input_tokens": 3, "gen_ai.usage.output_tokens": 5}
            GenAICall._log(call, 200, 0.0123456, "chatcmpl-1", "gpt-4o-mini-2024", usage, None, 0.004)
            GenAICall._log(call, 429, 0.5, None, None, {}, "rate_limited", None)
            GenAICall._log(call, 200, 0.1, 12345, None, {}, None, None)  # an odd upstream id: cleaned
            GenAICall._log(call, 200, 0.1, ["a", 1], None, {}, None, None)
        for handler in logger.handlers:
            logger.removeHandler(handler)
        logging.getLogger(logger.name).handlers.clear()

    sdk_logs, lean_logs = (_exported_logs(wrap, True, emit) for wrap in (lambda p: p, LeanLoggerProvider))
    assert len(sdk_logs) == len(lean_logs) == 4
    for sdk_record, lean_record in zip(sdk_logs, lean_logs, strict=True):
        for record in (sdk_record.log_record, lean_record.log_record):
            record.timestamp = record.observed_timestamp = 1  # the clock's
    assert _same_ids(encode_logs(lean_logs)) == _same_ids(encode_logs(sdk_logs))
    assert ExportLogsServiceRequest.FromString(LogEncoder().encode(lean_logs)) == encode_logs(lean_logs)
    first = lean_logs[0].log_record
    assert first.event_name == "llm_gateway.request" and first.severity_text == "INFO" and first.trace_id


def test_plain_records_reach_a_real_grpc_receiver_as_the_sdk_encodes_them() -> None:
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench" / "gateway"))
    from otlp_sink import OtlpSink

    logs = _exported_logs(LeanLoggerProvider, True, lambda p: _emit_plain(p, REQUEST_ATTRS, n=600))
    sink = OtlpSink(keep=True).start()
    try:
        exporter = FastOTLPLogExporter(endpoint=sink.endpoint, insecure=True)
        for _ in range(2):  # the second time from the encoder's caches
            assert exporter.export(logs).name == "SUCCESS"
        deadline = time.monotonic() + 5
        while sink.received.logs != 2 * len(logs) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sink.received.logs == 2 * len(logs)
        assert sink.received.log_requests == [encode_logs(logs)] * 2
        exporter.shutdown()
    finally:
        sink.stop()
