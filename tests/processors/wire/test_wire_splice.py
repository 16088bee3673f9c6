"""Splicing changed messages into the received bytes must parse to the same message as changing the parsed
request and re-serialising it, and must refuse what it cannot do exactly."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from processors.handlers import Pipeline
from processors.wire.index import ITEM, RESOURCE, SCOPE, WireError, encode_varint, index
from processors.wire.splice import splice
from tests.processors.helpers import attrs, value


def _batch(shape: list[list[int]], text: str = "x") -> ExportTraceServiceRequest:
    """shape[r][s] = number of spans in scope s of resource r."""
    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(attributes=attrs({"r": f"{text}{r}"})),
                scope_spans=[
                    ScopeSpans(
                        scope=InstrumentationScope(name=f"scope{r}.{s}"),
                        spans=[
                            Span(name=f"span{r}.{s}.{i}", attributes=attrs({"a": text * 3})) for i in range(n)
                        ],
                    )
                    for s, n in enumerate(scopes)
                ],
            )
            for r, scopes in enumerate(shape)
        ]
    )


shapes = st.lists(st.lists(st.integers(0, 4), min_size=0, max_size=3), min_size=1, max_size=3)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(shape=shapes, data=st.data())
def test_splice_equals_changing_the_parsed_request(shape: list[list[int]], data: st.DataObject) -> None:
    batch = _batch(shape)
    raw = batch.SerializeToString()
    idx = index(raw)
    keys = [(r.kind, r.resource, r.scope, r.item) for r in idx.regions]
    items = [k for k in keys if k[0] == ITEM]
    replaced = data.draw(st.sets(st.sampled_from(keys)) if keys else st.just(set()))
    extended = data.draw(st.sets(st.sampled_from(items)) if items else st.just(set()))
    expected = ExportTraceServiceRequest.FromString(raw)
    new: dict[tuple[int, int, int, int], bytes] = {}
    appended: dict[tuple[int, int, int, int], bytes] = {}
    for kind, r, s, i in sorted(replaced | extended):
        rs = expected.resource_spans[r]
        if kind == RESOURCE:
            longer = "a much longer value than before " * 9
            rs.resource.attributes.add(key="changed").value.string_value = longer
            new[(kind, r, s, i)] = rs.resource.SerializeToString()
        elif kind == SCOPE:
            rs.scope_spans[s].scope.name = ""
            new[(kind, r, s, i)] = rs.scope_spans[s].scope.SerializeToString()
        else:
            span = rs.scope_spans[s].spans[i]
            if (kind, r, s, i) in replaced:
                span.name = "renamed " * 40
                new[(kind, r, s, i)] = span.SerializeToString()
            else:
                extra = attrs({"cost": 1.5, "long": "y" * 300})
                wire = [b"\x4a" + encode_varint(kv.ByteSize()) + kv.SerializeToString() for kv in extra]
                appended[(kind, r, s, i)] = b"".join(wire)
                span.attributes.extend(extra)
    out = splice(raw, idx, new, appended)
    assert ExportTraceServiceRequest.FromString(out) == expected
    if not new and not appended:
        assert out is raw


def test_unchanged_bytes_are_copied_as_received() -> None:
    raw = _batch([[3, 2], [1]]).SerializeToString()
    idx = index(raw)
    out = splice(raw, idx, {}, {(ITEM, 1, 0, 0): b""})
    assert out == raw  # appending nothing re-encodes the same lengths


def test_a_resource_that_occurs_twice_is_refused() -> None:
    # protobuf merges repeated occurrences of a singular message field: replacing one occurrence would keep
    # the other's (unredacted) attributes, so the splice refuses and the caller re-serialises
    rs = ResourceSpans(
        resource=Resource(attributes=attrs({"r": "first"})), scope_spans=[ScopeSpans(spans=[Span()])]
    )
    second = ResourceSpans(resource=Resource(attributes=attrs({"r2": "second"}))).SerializeToString()
    raw = ExportTraceServiceRequest(resource_spans=[rs]).SerializeToString()
    inner = rs.SerializeToString() + second  # one ResourceSpans holding two `resource` fields
    raw = b"\x0a" + encode_varint(len(inner)) + inner
    idx = index(raw)
    assert idx.repeated_singular
    with pytest.raises(WireError):
        splice(raw, idx, {(RESOURCE, 0, -1, -1): b""})
    # items can still be spliced
    assert splice(raw, idx, {(ITEM, 0, 0, 0): Span(name="n").SerializeToString()}) != raw


def test_unknown_region_is_refused() -> None:
    raw = _batch([[1]]).SerializeToString()
    with pytest.raises(WireError):
        splice(raw, index(raw), {(ITEM, 0, 0, 5): b""})


def test_pipeline_falls_back_to_reserialising_a_repeated_resource(pipeline: Pipeline) -> None:
    rs = ResourceSpans(
        resource=Resource(attributes=attrs({"owner": "mail alice@example.com"})),
        scope_spans=[ScopeSpans(spans=[Span(name="s", attributes=attrs({"m": "call +1 415 555 2671"}))])],
    )
    second = ResourceSpans(
        resource=Resource(attributes=attrs({"also": "bob@example.org"}))
    ).SerializeToString()
    inner = rs.SerializeToString() + second
    raw = b"\x0a" + encode_varint(len(inner)) + inner
    out = pipeline.process_traces(raw).payload
    assert b"alice@example.com" not in out and b"bob@example.org" not in out and b"555 2671" not in out
    parsed = ExportTraceServiceRequest.FromString(out)
    assert len(parsed.resource_spans) == 1


def test_log_records_and_resources_are_spliced(pipeline: Pipeline) -> None:
    batch = ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                resource=Resource(attributes=attrs({"host.owner": "carol@example.com"})),
                scope_logs=[
                    ScopeLogs(
                        log_records=[
                            LogRecord(body=value("plain")),
                            LogRecord(body=value("dave@example.com")),
                        ]
                    )
                ],
            ),
            ResourceLogs(scope_logs=[ScopeLogs(log_records=[LogRecord(body=value("nothing here"))])]),
        ]
    )
    raw = batch.SerializeToString()
    out = pipeline.process_logs(raw).payload
    parsed = ExportLogsServiceRequest.FromString(out)
    records = parsed.resource_logs[0].scope_logs[0].log_records
    assert parsed.resource_logs[0].resource.attributes[0].value.string_value == "<EMAIL>"
    assert records[0].body.string_value == "plain" and records[1].body.string_value == "<EMAIL>"
    assert parsed.resource_logs[1] == batch.resource_logs[1]
    # the untouched second resource is copied byte for byte
    assert batch.resource_logs[1].SerializeToString() in out
