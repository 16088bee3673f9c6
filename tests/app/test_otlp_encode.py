"""The gateway's span/log encoder must produce exactly what the SDK's OTLP encoder produces."""

from __future__ import annotations

import time
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from app.telemetry.lean_trace import LeanTracerProvider
from app.telemetry.otlp_encode import LogEncoder, SpanEncoder

ODD_VALUES: dict[str, Any] = {
    "s": "plain",
    "unicode": "héllo ✓ 日本",
    "empty": "",
    "t": True,
    "f": False,
    "zero": 0,
    "one": 1,
    "neg": -5,
    "big": 2**62,
    "float": 0.25,
    "nan-free float zero": 0.0,
    "strs": ["stop", "length"],
    "ints": [1, 2, 3],
    "bools": [True, False],
    "floats": [0.5],
    "empty list": [],
    "bytes": b"\x00\x01",
}


def _spans() -> list[Any]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create({"service.name": "enc", "deployment.environment.name": "t"})
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    a = provider.get_tracer("app.gateway", "1.0")
    b = provider.get_tracer("app.gateway", "1.0")  # same scope, another tracer object
    c = provider.get_tracer("fastapi", "0.1", schema_url="https://opentelemetry.io/schemas/1.44.0")
    remote = SpanContext(
        0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(1), trace_state=TraceState([("k", "v")])
    )
    with c.start_as_current_span(
        "POST /v1/chat/completions",
        kind=SpanKind.SERVER,
        context=trace.set_span_in_context(trace.NonRecordingSpan(remote)),
    ):
        with a.start_as_current_span("chat gpt-4o-mini", kind=SpanKind.CLIENT, attributes=ODD_VALUES) as span:
            span.add_event("gen_ai.upstream.retry", {"error.type": "429", "llm_gateway.retry.attempt": 1})
            span.set_status(Status(StatusCode.ERROR, "upstream said no"))
        with b.start_as_current_span("feedback", links=[Link(remote, {"x": 1})]) as span:
            span.set_attribute("gen_ai.evaluation.score.value", 0.5)
            span.set_status(Status(StatusCode.OK))
    a.start_span("no attributes").end()
    for i in range(3):  # repeated values come from the cache
        with a.start_as_current_span("chat gpt-4o-mini", attributes={"n": i % 2, "model": "gpt-4o-mini"}):
            pass
    return list(exporter.get_finished_spans())


def test_spans_encode_exactly_as_the_sdk() -> None:
    spans = _spans()
    encoder = SpanEncoder()
    for _ in range(2):  # the second pass is served from the caches
        ours = ExportTraceServiceRequest.FromString(encoder.encode(spans))
        assert ours == encode_spans(spans)
    assert encoder.encode([]) == b""


def test_spans_of_several_resources_and_scopes_interleaved_are_grouped_as_the_sdk_groups_them() -> None:
    """The encoder finds a span's group by its resource/scope objects: equal scopes of other tracers, other
    resources, lean and SDK spans, all interleaved, must still group (and order) as the SDK's encoder."""
    exporter = InMemorySpanExporter()
    providers = [TracerProvider(resource=Resource.create({"service.name": n})) for n in ("a", "b")]
    for provider in providers:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracers = [
        factory.get_tracer(name, "1", schema_url=schema)
        for provider in providers
        for factory in (provider, LeanTracerProvider(provider))
        for name, schema in (("x", None), ("y", "https://s"), ("x", None))
    ]
    kinds = list(SpanKind)
    for i in range(40):
        span = tracers[i * 7 % len(tracers)].start_span(f"s{i % 5}", kind=kinds[i % len(kinds)])
        span.set_attribute("i", i)
        if i % 3 == 0:
            span.set_status(Status(StatusCode.ERROR, f"failed {i}" if i % 2 else None))
        span.end()
    spans = exporter.get_finished_spans()
    scopes = {id(s.instrumentation_scope): s.instrumentation_scope for s in spans}.values()
    assert len(scopes) > len(set(scopes))  # equal scopes in distinct objects are among them
    assert ExportTraceServiceRequest.FromString(SpanEncoder().encode(spans)) == encode_spans(spans)


def test_span_attributes_equal_in_python_but_not_on_the_wire_encode_as_the_sdk() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    values: list[Any] = [
        (1, 0),
        (True, False),
        (1.0, 0.0),
        1,
        True,
        1.0,
        ("a",),
        2**63,
        -(2**63) - 1,
        2**63 - 1,
        0.0,
        -0.0,  # equal to 0.0 and of the same type: only its bytes differ
    ]
    for _ in range(2):  # the second round would come from the cache
        for value in values:
            tracer.start_span("s", attributes={"v": value}).end()
    spans = exporter.get_finished_spans()
    encoder = SpanEncoder()
    for _ in range(2):
        ours = ExportTraceServiceRequest.FromString(encoder.encode(spans))
        sdk = encode_spans(spans)
        assert ours == sdk
        # Message equality compares doubles by value (-0.0 == 0.0): the bytes tell them apart.
        assert ours.SerializeToString(deterministic=True) == sdk.SerializeToString(deterministic=True)


def _spans_with_ids(n: int) -> Any:
    """``n`` spans, each with a unique request id and one attribute that repeats."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    for i in range(n):
        tracer.start_span("s", attributes={"id": f"req_{i}", "same": "x"}).end()
    return exporter.get_finished_spans()


def test_span_attribute_cache_is_bounded(monkeypatch: Any) -> None:
    import app.telemetry.otlp_encode as mod

    monkeypatch.setattr(mod, "_CACHE_LIMIT", 4)
    spans = _spans_with_ids(20)
    encoder = SpanEncoder()
    assert ExportTraceServiceRequest.FromString(encoder.encode(spans)) == encode_spans(spans)
    assert encoder._attrs._size <= 4


def test_logs_encode_exactly_as_the_sdk() -> None:
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider(resource=Resource.create({"service.name": "enc"}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = provider.get_logger("app.gateway")
    tracer_provider = TracerProvider()
    with tracer_provider.get_tracer("t").start_as_current_span("chat") as span:
        ctx = trace.set_span_in_context(span)
        logger.emit(
            timestamp=time.time_ns(),
            context=ctx,
            severity_number=SeverityNumber.INFO,
            severity_text="INFO",
            body="chat completion ok",
            attributes={**ODD_VALUES, "llm_gateway.request.id": "req_1"},
            event_name="llm_gateway.request",
        )
    logger.emit(severity_number=SeverityNumber.WARN, severity_text="WARN", body=None)
    logger.emit(body={"structured": [1, 2]}, attributes={"k": "v"})
    logger.emit(body=["a", "b"])
    logger.emit(body=3)
    logs = exporter.get_finished_logs()
    encoder = LogEncoder()
    for _ in range(2):
        assert ExportLogsServiceRequest.FromString(encoder.encode(logs)) == encode_logs(logs)


def test_a_key_with_ever_new_values_stops_being_cached(monkeypatch: Any) -> None:
    import app.telemetry.otlp_encode as mod

    monkeypatch.setattr(mod, "_PER_KEY_LIMIT", 8)
    spans = _spans_with_ids(50)
    encoder = SpanEncoder()
    assert ExportTraceServiceRequest.FromString(encoder.encode(spans)) == encode_spans(spans)
    assert len(encoder._attrs._items["id"]) == 8 and encoder._attrs._size == 9  # "same" stays cached


def _log_records(attributes: list[dict[str, Any]]) -> Any:
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider(resource=Resource.create({"service.name": "enc"}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = provider.get_logger("app.gateway")
    for i, attrs in enumerate(attributes):
        logger.emit(
            timestamp=1_700_000_000_000_000_000 + i,
            severity_number=SeverityNumber.INFO,
            severity_text="INFO",
            body=f"body {i % 3}",
            attributes=attrs,
            event_name="llm_gateway.request",
        )
    return exporter.get_finished_logs()


@pytest.mark.filterwarnings("ignore:Log record attributes were dropped")  # the empty key, by the SDK
def test_log_attributes_encode_exactly_as_the_sdk_whatever_they_repeat(monkeypatch: Any) -> None:
    import app.telemetry.otlp_encode as mod

    monkeypatch.setattr(mod, "_PER_KEY_LIMIT", 8)
    records = [
        {
            "id": f"req_{i}",  # never repeats: stops being cached
            "same": "x",
            "n": i % 4,
            "flag": i % 2 == 0,  # True/False after 1/0 under another key: not mixed up
            "one": [1, True, 1.0][i % 3],
            "tuple": [(1, 2), (True, 2), (1.0, 2)][i % 3],
            "ms": i / 7,
            "signed zero": [0.0, -0.0][i % 2],  # equal, the same type, not the same bytes
            "big": 2**64 + i,  # beyond int64: skipped, as the SDK's encoder skips it
            "neg": -i,
            "unicode": "héllo ✓" * (i % 2),
            "": "empty key",
            **ODD_VALUES,
        }
        for i in range(40)
    ]
    logs = _log_records(records)
    encoder = LogEncoder()
    for _ in range(2):
        ours = ExportLogsServiceRequest.FromString(encoder.encode(logs))
        sdk = encode_logs(logs)
        assert ours == sdk
        assert ours.SerializeToString(deterministic=True) == sdk.SerializeToString(deterministic=True)
    assert encoder._attrs._values["id"] is mod._FULL and encoder._attrs._values["same"]


def test_log_attribute_cache_is_bounded(monkeypatch: Any) -> None:
    import app.telemetry.otlp_encode as mod

    monkeypatch.setattr(mod, "_CACHE_LIMIT", 4)
    logs = _log_records([{f"k{i % 7}": f"v{i}", "same": "x"} for i in range(30)])
    encoder = LogEncoder()
    assert ExportLogsServiceRequest.FromString(encoder.encode(logs)) == encode_logs(logs)
    assert encoder._attrs._size <= 4 and len(encoder._attrs._values) <= 4


def test_log_records_of_several_loggers_and_resources_are_grouped_as_the_sdk_groups_them() -> None:
    exporter = InMemoryLogRecordExporter()
    providers = [LoggerProvider(resource=Resource.create({"service.name": n})) for n in ("a", "b")]
    for provider in providers:
        provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    loggers = [p.get_logger(name, "1", schema_url="https://s") for p in providers for name in ("x", "y", "x")]
    for i in range(12):
        loggers[i * 5 % len(loggers)].emit(body=f"r{i}", attributes={"i": i})
    for severity in (SeverityNumber.INFO, SeverityNumber.WARN, None, SeverityNumber.INFO):  # one body, text
        loggers[0].emit(body="same", severity_text="X", severity_number=severity)
    logs = exporter.get_finished_logs()
    assert ExportLogsServiceRequest.FromString(LogEncoder().encode(logs)) == encode_logs(logs)


# Values that Python's == (and so a dict lookup) mixes up although their wire bytes differ, and neighbours.
_TRICKY_VALUES: list[Any] = [
    0,
    1,
    -1,
    0.0,
    -0.0,
    1.0,
    float("nan"),
    -float("nan"),
    float("inf"),
    False,
    True,
    "",
    "1",
    "0.0",
    "héllo ✓",
    2**63 - 1,
    -(2**63),
    2**63,  # beyond int64: skipped by both encoders
    ("a",),
    ("a", "b"),
    (0, 1),
    (False, True),
    (0.0, 1.0),
    (),
]


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_one_encoder_across_random_batches_sends_the_sdks_bytes(seed: int, monkeypatch: Any) -> None:
    """One span and one log encoder, as in the exporters, across batches of random attribute sets drawn from
    values that are equal in Python but not on the wire, with small cache limits so that entries are added,
    hit, stop being cached and are cleared: every batch's bytes are the SDK encoder's."""
    import random

    import app.telemetry.otlp_encode as mod

    monkeypatch.setattr(mod, "_PER_KEY_LIMIT", 6)
    monkeypatch.setattr(mod, "_CACHE_LIMIT", 40)
    rnd = random.Random(seed)
    keys = ["a", "b", "gen_ai.x", "k.with.dots", "ключ"]

    def attributes() -> dict[str, Any]:
        return {k: rnd.choice(_TRICKY_VALUES) for k in rnd.sample(keys, rnd.randrange(1, len(keys) + 1))}

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracers = [provider.get_tracer("t"), LeanTracerProvider(provider).get_tracer("t")]  # SDK and lean spans
    span_encoder, log_encoder = SpanEncoder(), LogEncoder()
    for _ in range(40):
        exporter.clear()
        for _ in range(rnd.randrange(1, 12)):
            rnd.choice(tracers).start_span("s", attributes=attributes()).end()
        spans = exporter.get_finished_spans()
        assert span_encoder.encode(spans) == encode_spans(spans).SerializeToString()
        logs = _log_records([attributes() for _ in range(rnd.randrange(1, 12))])
        assert log_encoder.encode(logs) == encode_logs(logs).SerializeToString()
