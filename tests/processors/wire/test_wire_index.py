"""The raw-bytes shortcut (scan the serialized batch, walk only the spans/logs that were hit) must give the
same result as walking everything."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from processors.cost.enrichment import enrich_costs
from processors.handlers import Pipeline
from processors.redaction.walk import redact_logs, redact_traces
from processors.wire.index import ITEM, RESOURCE, SCOPE, index
from tests.processors.helpers import attrs, value
from tests.processors.redaction import pii_strategies as ps

texts = st.one_of(ps.benign_texts, ps.pii_values, st.tuples(ps.benign_texts, ps.pii_values).map(" ".join))
usage = st.fixed_dictionaries(
    {
        "gen_ai.request.model": st.sampled_from(["gpt-4o", "nope-model"]),
        "gen_ai.usage.input_tokens": st.integers(0, 10_000),
    }
)


@st.composite
def trace_batches(draw: st.DrawFn) -> ExportTraceServiceRequest:
    resources = []
    for _ in range(draw(st.integers(1, 3))):
        scopes = []
        for _ in range(draw(st.integers(1, 3))):
            spans = []
            for j in range(draw(st.integers(0, 4))):
                a: dict[str, object] = {"msg": draw(texts)}
                if draw(st.booleans()):
                    a.update(draw(usage))
                spans.append(
                    Span(trace_id=b"\x01" * 16, span_id=bytes([j + 1]) * 8, name="s", attributes=attrs(a))
                )
            scopes.append(
                ScopeSpans(
                    scope=InstrumentationScope(name="x", attributes=attrs({"s": draw(texts)})), spans=spans
                )
            )
        resources.append(
            ResourceSpans(resource=Resource(attributes=attrs({"r": draw(texts)})), scope_spans=scopes)
        )
    return ExportTraceServiceRequest(resource_spans=resources)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(batch=trace_batches())
def test_traces_shortcut_equals_full_walk(pipeline: Pipeline, batch: ExportTraceServiceRequest) -> None:
    raw = batch.SerializeToString()
    fast = pipeline.process_traces(raw).payload
    full = ExportTraceServiceRequest.FromString(raw)
    enrich_costs(full, pipeline.prices)
    redact_traces(full, pipeline.scanner, pipeline.config.redaction)
    assert ExportTraceServiceRequest.FromString(fast) == full


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(bodies=st.lists(texts, min_size=1, max_size=6), resource_text=texts)
def test_logs_shortcut_equals_full_walk(pipeline: Pipeline, bodies: list[str], resource_text: str) -> None:
    batch = ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                resource=Resource(attributes=attrs({"r": resource_text})),
                scope_logs=[ScopeLogs(log_records=[LogRecord(body=value(b)) for b in bodies])],
            )
        ]
    )
    raw = batch.SerializeToString()
    fast = pipeline.process_logs(raw).payload
    full = ExportLogsServiceRequest.FromString(raw)
    redact_logs(full, pipeline.scanner, pipeline.config.redaction)
    assert ExportLogsServiceRequest.FromString(fast) == full


def test_index_regions_point_at_the_right_messages() -> None:
    batch = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(attributes=attrs({"r": "R0"})),
                scope_spans=[ScopeSpans(spans=[Span(name="A"), Span(name="B")])],
            ),
            ResourceSpans(
                resource=Resource(attributes=attrs({"r": "R1"})),
                scope_spans=[ScopeSpans(scope=InstrumentationScope(name="SC"), spans=[Span(name="span-C")])],
            ),
        ]
    )
    raw = batch.SerializeToString()
    idx = index(raw)

    def at(needle: bytes) -> tuple[int, int, int, int]:
        region = idx.region_at(raw.index(needle))
        assert region is not None
        return (region.kind, region.resource, region.scope, region.item)

    assert at(b"R0") == (RESOURCE, 0, -1, -1)
    assert at(b"B") == (ITEM, 0, 0, 1)
    assert at(b"SC") == (SCOPE, 1, 0, -1)
    assert at(b"span-C") == (ITEM, 1, 0, 0)


def test_unindexable_bytes_fall_back_to_walking_everything(pipeline: Pipeline) -> None:
    # an unknown group field (wire type 3/4) parses fine but the wire index refuses it: the handler must then
    # walk every span rather than none
    from tests.processors.helpers import span, trace_request

    raw = (
        trace_request(
            span(
                "s",
                {
                    "m": "mail bob@example.com",
                    "gen_ai.request.model": "gpt-4o",
                    "gen_ai.usage.input_tokens": 10,
                },
            )
        ).SerializeToString()
        + b"\x1b\x1c"
    )
    out = pipeline.process_traces(raw).payload
    assert b"bob@example.com" not in out
    assert b"gen_ai.usage.cost" in out


def test_item_parts_names_the_attribute_event_or_link_holding_an_offset() -> None:
    from opentelemetry.proto.trace.v1.trace_pb2 import Span as SpanMsg

    from processors.wire.index import item_parts

    span = SpanMsg(
        name="n",
        attributes=attrs({"a": "first", "b": "second", "c": "third"}),
        events=[SpanMsg.Event(name="e0"), SpanMsg.Event(name="e1", attributes=attrs({"x": "in-event"}))],
        links=[SpanMsg.Link(attributes=attrs({"y": "in-link"}))],
    )
    raw = span.SerializeToString()
    fields = SpanMsg.DESCRIPTOR.fields_by_name

    def at(needle: bytes) -> set[tuple[int, int]]:
        return item_parts(raw, 0, len(raw), [raw.index(needle)])

    assert at(b"second") == {(fields["attributes"].number, 1)}
    assert at(b"third") == {(fields["attributes"].number, 2)}
    assert at(b"in-event") == {(fields["events"].number, 1)}
    assert at(b"in-link") == {(fields["links"].number, 0)}
    assert item_parts(raw, 0, len(raw), [raw.index(b"first"), raw.index(b"in-link")]) == {
        (fields["attributes"].number, 0),
        (fields["links"].number, 0),
    }
