"""Splitting a request by resource, scope and item: every part fits, parts together mean the original,
nothing is left out but what was asked to be skipped; and truncating one item until it fits."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from processors.wire.index import ITEM, index
from processors.wire.split import split
from processors.wire.truncate import fit
from tests.processors.helpers import attrs, value


def _batch(sizes: list[list[list[int]]]) -> ExportTraceServiceRequest:
    """sizes[r][s][i] = bytes of the attribute of span i of scope s of resource r."""
    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(attributes=attrs({"service.name": f"svc{r}"})),
                schema_url=f"https://schema/{r}",
                scope_spans=[
                    ScopeSpans(
                        scope=InstrumentationScope(name=f"scope{r}.{s}"),
                        schema_url=f"https://scope-schema/{r}.{s}",
                        spans=[
                            Span(name=f"span{r}.{s}.{i}", attributes=attrs({"blob": "x" * n}))
                            for i, n in enumerate(scope)
                        ],
                    )
                    for s, scope in enumerate(resource)
                ],
            )
            for r, resource in enumerate(sizes)
        ]
    )


def _flat(req: ExportTraceServiceRequest) -> list[tuple[bytes, bytes, bytes]]:
    """(resource+schema, scope+schema, span) of every span: what a split must keep together."""
    out = []
    for rs in req.resource_spans:
        head = rs.resource.SerializeToString() + rs.schema_url.encode()
        for ss in rs.scope_spans:
            scope = ss.scope.SerializeToString() + ss.schema_url.encode()
            out += [(head, scope, sp.SerializeToString()) for sp in ss.spans]
    return out


sizes = st.lists(
    st.lists(st.lists(st.integers(0, 3000), max_size=6), min_size=1, max_size=3), min_size=1, max_size=3
)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(shape=sizes, limit=st.integers(2000, 12000), data=st.data())
def test_parts_fit_and_together_are_the_original(
    shape: list[list[list[int]]], limit: int, data: st.DataObject
) -> None:
    req = _batch(shape)
    raw = req.SerializeToString()
    keys = [r for r in index(raw).regions if r.kind == ITEM]
    skip = data.draw(st.sets(st.sampled_from(keys)) if keys else st.just(set()))
    parts = split(raw, limit, skip)
    got: list[tuple[bytes, bytes, bytes]] = []
    for part in parts:
        if not part.oversize:
            assert len(part.payload) <= limit
        else:
            assert len(part.items) == 1
        got += _flat(ExportTraceServiceRequest.FromString(part.payload))
    expected = [f for f, key in zip(_flat(req), keys, strict=True) if key not in skip]
    assert got == expected
    assert [k for p in parts for k in p.items] == [k for k in keys if k not in skip]


def test_logs_split_the_same_way() -> None:
    req = ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                resource=Resource(attributes=attrs({"service.name": "x"})),
                scope_logs=[ScopeLogs(log_records=[LogRecord(body=value("y" * 1000)) for _ in range(10)])],
            )
        ]
    )
    parts = split(req.SerializeToString(), 3000, ())
    assert len(parts) == 5 and all(len(p.payload) <= 3000 for p in parts)
    records = [
        r
        for p in parts
        for rl in ExportLogsServiceRequest.FromString(p.payload).resource_logs
        for sl in rl.scope_logs
        for r in sl.log_records
    ]
    assert records == list(req.resource_logs[0].scope_logs[0].log_records)


def test_one_big_item_is_truncated_field_by_field_with_a_marker() -> None:
    big = "é" * 3_000_000  # 6 MB of two-byte characters: truncation must not split one
    req = _batch([[[0]]])
    sp = req.resource_spans[0].scope_spans[0].spans[0]
    sp.attributes.add(key="gen_ai.input.messages").value.string_value = big
    sp.attributes.add(key="small").value.string_value = "kept as is"
    sp.events.add(name="e").attributes.add(key="payload").value.string_value = "z" * 2_000_000
    done = fit(req, 1_000_000)
    assert req.ByteSize() <= 1_000_000
    assert done.fields >= 1 and done.entries_dropped == 0
    values = {kv.key: kv.value.string_value for kv in sp.attributes}
    assert values["small"] == "kept as is"
    assert "truncated by llm-otel-sidecar" in values["gen_ai.input.messages"]
    assert values["gen_ai.input.messages"].startswith("é" * 100)
    assert sp.name == "span0.0.0"


def test_many_small_attributes_are_dropped_from_the_end_and_counted() -> None:
    req = _batch([[[0]]])
    sp = req.resource_spans[0].scope_spans[0].spans[0]
    for i in range(20_000):
        sp.attributes.add(key=f"k{i}").value.string_value = "v" * 50
    done = fit(req, 200_000)
    assert req.ByteSize() <= 200_000
    assert done.entries_dropped > 0
    assert sp.dropped_attributes_count == done.entries_dropped
    assert [kv.key for kv in sp.attributes[:2]] == ["blob", "k0"]
    assert len(req.resource_spans) == 1 and len(req.resource_spans[0].scope_spans[0].spans) == 1
