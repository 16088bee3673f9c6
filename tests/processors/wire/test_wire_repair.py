"""Wire-level repair of requests Python's protobuf refuses: invalid UTF-8 → U+FFFD, excessive nesting cut with
a marker, a malformed item removed — every other item kept as it was; only a broken request structure is
unparseable as a whole."""

from __future__ import annotations

import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from processors.config import SidecarConfig
from processors.forwarding import Rejected, parse_repairing
from processors.handlers import Pipeline
from processors.wire.index import WireError, encode_varint
from processors.wire.repair import INVALID_UTF8, MAX_VALUE_DEPTH, NESTING_DEPTH, repair
from tests.processors.helpers import plain, span, span_attrs, trace_request, value

TRACE = ExportTraceServiceRequest.DESCRIPTOR


def _field(number: int, content: bytes) -> bytes:
    return encode_varint(number << 3 | 2) + encode_varint(len(content)) + content


def _request_with_raw_span(raw_span: bytes, *others: bytes) -> bytes:
    """A request whose one scope holds the given serialized spans."""
    scope = b"".join(_field(2, s) for s in (raw_span, *others))
    resource = _field(2, scope)
    return _field(1, resource)


def _attr(key: bytes, raw_value: bytes) -> bytes:
    return _field(9, _field(1, key) + _field(2, raw_value))  # Span.attributes = 9: KeyValue{1 key, 2 value}


def _deep(levels: int) -> bytes:
    raw = _field(1, b"leaf")  # AnyValue.string_value
    for _ in range(levels):
        kv = _field(1, b"k") + _field(2, raw)
        raw = _field(6, _field(1, kv))  # AnyValue.kvlist_value{values: [kv]}
    return raw


GOOD = span("good", {"msg": "fine"}, i=3).SerializeToString()


def test_invalid_utf8_is_replaced_and_the_other_spans_are_untouched() -> None:
    bad = span("b", {}).SerializeToString() + _attr(b"note", _field(1, b"caf\xe9 \xff ok"))
    raw = _request_with_raw_span(bad, GOOD)
    with pytest.raises(DecodeError):
        ExportTraceServiceRequest.FromString(raw)
    fixed = repair(raw, TRACE)
    assert fixed.repaired == {INVALID_UTF8: 1} and not fixed.removed
    req = ExportTraceServiceRequest.FromString(fixed.payload)
    spans = req.resource_spans[0].scope_spans[0].spans
    assert span_attrs(spans[0])["note"] == "caf\ufffd \ufffd ok"
    assert spans[1].SerializeToString() == GOOD


def test_invalid_utf8_in_keys_names_resources_scopes_and_schema_urls() -> None:
    bad_span = _field(5, b"na\xffme") + _attr(b"k\xfe", _field(1, b"v"))  # Span.name = 5
    resource = _field(1, _field(1, _field(1, b"service.name") + _field(2, _field(1, b"sv\xffc"))))
    scope = _field(1, _field(1, b"sco\xffpe")) + _field(2, bad_span) + _field(3, b"https://s\xff")
    raw = _field(1, resource + _field(2, scope) + _field(3, b"https://r\xff"))
    fixed = repair(raw, TRACE)
    req = ExportTraceServiceRequest.FromString(fixed.payload)
    rs = req.resource_spans[0]
    assert rs.schema_url == "https://r\ufffd" and rs.scope_spans[0].schema_url == "https://s\ufffd"
    assert rs.resource.attributes[0].value.string_value == "sv\ufffdc"
    assert rs.scope_spans[0].scope.name == "sco\ufffdpe"
    sp = rs.scope_spans[0].spans[0]
    assert sp.name == "na\ufffdme" and sp.attributes[0].key == "k\ufffd"
    assert fixed.repaired[INVALID_UTF8] == 5  # resource, scope, span, two schema URLs


def test_deep_nesting_is_cut_with_a_marker_and_parses() -> None:
    deep = span("deep", {}).SerializeToString() + _attr(b"nested", _deep(60))
    raw = _request_with_raw_span(deep, GOOD)
    with pytest.raises(DecodeError):
        ExportTraceServiceRequest.FromString(raw)
    fixed = repair(raw, TRACE)
    assert fixed.repaired == {NESTING_DEPTH: 1}
    req = ExportTraceServiceRequest.FromString(fixed.payload)
    nested = plain(req.resource_spans[0].scope_spans[0].spans[0].attributes[0].value)
    depth = 0
    while isinstance(nested, dict):
        nested = nested["k"]
        depth += 1
    assert depth == MAX_VALUE_DEPTH
    assert isinstance(nested, str) and nested.startswith("[cut by llm-otel-sidecar: value nested deeper than")
    assert req.resource_spans[0].scope_spans[0].spans[1].SerializeToString() == GOOD


def test_a_malformed_item_is_removed_and_handed_back() -> None:
    broken = _field(5, b"x") + b"\x4a\x10\x0a"  # an attribute whose length runs past the span's end
    raw = _request_with_raw_span(GOOD, broken, GOOD)
    fixed = repair(raw, TRACE)
    assert [key[3] for key, _ in fixed.removed] == [1]
    assert fixed.repaired == {}
    spans = ExportTraceServiceRequest.FromString(fixed.payload).resource_spans[0].scope_spans[0].spans
    assert [s.SerializeToString() for s in spans] == [GOOD, GOOD]


def test_a_broken_request_structure_is_unparseable_as_a_whole() -> None:
    with pytest.raises(WireError):
        repair(b"\x0a\xff\xff\xff\xff\x0f", TRACE)
    with pytest.raises(Rejected):
        parse_repairing(ExportTraceServiceRequest, b"\x0a\x05\x0a\x03")


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(texts=st.lists(st.text(max_size=30), min_size=1, max_size=6), bad=st.data())
def test_only_the_corrupted_span_changes(texts: list[str], bad: st.DataObject) -> None:
    spans = [span(f"s{i}", {"t": t}, i=i).SerializeToString() for i, t in enumerate(texts)]
    victim = bad.draw(st.integers(0, len(spans) - 1))
    junk = bad.draw(st.binary(min_size=1, max_size=8).filter(lambda b: not _valid(b)))
    spans[victim] += _attr(b"junk", _field(1, junk))
    fixed = repair(_request_with_raw_span(*spans), TRACE)
    out = ExportTraceServiceRequest.FromString(fixed.payload).resource_spans[0].scope_spans[0].spans
    for i, sp in enumerate(out):
        if i != victim:
            assert sp.SerializeToString() == spans[i]
        else:
            assert span_attrs(sp)["junk"] == junk.decode("utf-8", "replace")


def _valid(b: bytes) -> bool:
    try:
        b.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def test_a_valid_request_is_left_byte_identical() -> None:
    raw = trace_request(span("a", {"x": [1, "two", {"three": 3.0}]}), span("b", {}, i=2)).SerializeToString()
    assert repair(raw, TRACE).payload == raw


def test_the_pipeline_repairs_then_redacts_and_prices_the_rest(pipeline: Pipeline) -> None:
    bad = span("bad", {}).SerializeToString() + _attr(b"note", _field(1, b"mail bob@example.com \xff"))
    pii = span("pii", {"msg": "call +1 415 555 2671"}, i=2).SerializeToString()
    raw = _request_with_raw_span(bad, pii, GOOD)
    processed = pipeline.process_traces(raw)
    out = ExportTraceServiceRequest.FromString(processed.payload).resource_spans[0].scope_spans[0].spans
    assert [s.name for s in out] == ["bad", "pii", "good"]
    assert span_attrs(out[0])["note"] == "mail <EMAIL> \ufffd"
    assert span_attrs(out[1])["msg"] == "call <PHONE>"
    assert processed.items == 3


def test_logs_with_invalid_utf8_bodies_are_repaired() -> None:
    good = LogRecord(body=value("all fine")).SerializeToString()
    bad = _field(5, _field(1, b"d\xe9j\xe0 vu"))  # LogRecord.body = 5
    scope = _field(2, good) + _field(2, bad)
    raw = _field(1, _field(2, scope))
    processed = Pipeline(SidecarConfig()).process_logs(raw)
    records = (
        ExportLogsServiceRequest.FromString(processed.payload).resource_logs[0].scope_logs[0].log_records
    )
    assert [r.body.string_value for r in records] == ["all fine", "d\ufffdj\ufffd vu"]
