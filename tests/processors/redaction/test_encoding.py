"""The raw-bytes fast path (Hyperscan over the received bytes, the wire index, the field-level walk, the
splice) gives exactly the result of a full walk, for any valid encoding of the same batch: fields in number
order, reversed, shuffled or value-before-key (the Collector's order), repeated scalars packed or not,
singular messages split into occurrences the parser merges — for traces, logs and metrics."""

from __future__ import annotations

import os
from typing import Any

from google.protobuf.message import Message
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList

from processors.config import SidecarConfig
from processors.cost.config import CostConfig
from processors.handlers import Pipeline
from processors.redaction.walk import redact_logs, redact_metrics, redact_traces
from tests.processors.redaction import pii_strategies as ps
from tests.processors.wire_reencode import ORDERS, Style, reencode

PIPELINE = Pipeline(SidecarConfig(cost=CostConfig(enabled=False)))
SETTINGS = settings(
    max_examples=int(os.environ.get("ENCODING_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    phases=[Phase.explicit, Phase.reuse, Phase.generate]
    + ([] if os.environ.get("NO_SHRINK") else [Phase.shrink]),
)

texts = st.one_of(
    ps.benign_texts,
    ps.pii_values,
    ps.marked_secrets.map(lambda m: m[0]),
    st.tuples(ps.benign_texts, ps.separators, ps.pii_values).map("".join),
    st.text(max_size=12),
)
keys = st.one_of(
    st.sampled_from(["http.route", "note", "gen_ai.prompt", "db.statement", "user.id", "count"]),
    st.sampled_from(["password", "clientSecret", "http.request.header.x-api-key", "Authorization", "apiKey"]),
    st.sampled_from(["gen_ai.response.id", "service.name", "gen_ai.request.model"]),  # allow-listed
    ps.emails().map(lambda e: f"user.{e}"),  # PII in the key itself
)
numbers = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.sampled_from([4111111111111111, 5555555555554444, 4155552671, 13812345678, 20957351, 1733040000]),
)
scalars = st.one_of(
    texts.map(lambda t: AnyValue(string_value=t)),
    numbers.map(lambda n: AnyValue(int_value=n)),
    numbers.map(lambda n: AnyValue(double_value=float(n))),
    st.floats(allow_nan=False).map(lambda f: AnyValue(double_value=f)),
    st.booleans().map(lambda b: AnyValue(bool_value=b)),
)


def _kvs(value: st.SearchStrategy[AnyValue], max_size: int) -> st.SearchStrategy[list[KeyValue]]:
    return st.lists(
        st.tuples(keys, value).map(lambda kv: KeyValue(key=kv[0], value=kv[1])), max_size=max_size
    )


values = st.one_of(
    scalars,
    st.lists(scalars, max_size=3).map(lambda vs: AnyValue(array_value=ArrayValue(values=vs))),
    _kvs(scalars, 3).map(lambda kvs: AnyValue(kvlist_value=KeyValueList(values=kvs))),
)
attributes = _kvs(values, 4)


@st.composite
def resource_and_scope(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "resource": {"attributes": draw(attributes)},
        "scope": {"name": draw(texts), "attributes": draw(attributes)},
    }


@st.composite
def span(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "trace_id": b"\x01" * 16,
        "span_id": draw(st.binary(min_size=8, max_size=8)),
        "name": draw(texts),
        "kind": draw(st.integers(0, 5)),
        "start_time_unix_nano": draw(st.integers(0, 2**63)),
        "attributes": draw(attributes),
        "events": [
            {"name": draw(texts), "attributes": draw(attributes)} for _ in range(draw(st.integers(0, 2)))
        ],
        "links": [
            {"trace_id": b"\x02" * 16, "span_id": b"\x03" * 8, "attributes": draw(attributes)}
            for _ in range(draw(st.integers(0, 1)))
        ],
        "status": {"code": draw(st.integers(0, 2)), "message": draw(texts)},
    }


@st.composite
def log_record(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "time_unix_nano": draw(st.integers(0, 2**63)),
        "severity_number": draw(st.integers(0, 24)),
        "severity_text": draw(texts),
        "event_name": draw(texts),
        "body": draw(values),
        "attributes": draw(attributes),
    }


@st.composite
def metric(draw: st.DrawFn) -> dict[str, Any]:
    def exemplars() -> list[dict[str, Any]]:
        return [
            {"filtered_attributes": draw(attributes), "as_double": 1.5, "span_id": b"\x04" * 8}
            for _ in range(draw(st.integers(0, 1)))
        ]

    def points(extra: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            {"attributes": draw(attributes), "time_unix_nano": draw(st.integers(0, 2**63)), **extra}
            for _ in range(draw(st.integers(1, 2)))
        ]

    kind = draw(st.sampled_from(["gauge", "sum", "histogram", "exponential_histogram", "summary"]))
    data: dict[str, Any]
    if kind in ("gauge", "sum"):
        data = {"data_points": points({"as_int": draw(numbers), "exemplars": exemplars()})}
    elif kind == "histogram":
        data = {
            "data_points": points(
                {
                    "count": 3,
                    "bucket_counts": [1, 2, 0],
                    "explicit_bounds": [0.5, 1.0],
                    "exemplars": exemplars(),
                }
            )
        }
    elif kind == "exponential_histogram":
        data = {"data_points": points({"count": 2, "scale": 1, "positive": {"bucket_counts": [1, 1]}})}
    else:
        data = {"data_points": points({"count": 1, "quantile_values": [{"quantile": 0.5, "value": 2.0}]})}
    return {"name": draw(texts), "description": draw(texts), "metadata": draw(attributes), kind: data}


def _request(draw: st.DrawFn, cls: type[Message], names: tuple[str, str, str], item: Any) -> Message:
    resources = []
    for _ in range(draw(st.integers(1, 2))):
        rs = draw(resource_and_scope())
        scopes = [
            {"scope": rs["scope"], names[2]: draw(st.lists(item(), min_size=1, max_size=3))}
            for _ in range(draw(st.integers(1, 2)))
        ]
        resources.append({"resource": rs["resource"], names[1]: scopes})
    request = cls()
    _fill(request, {names[0]: resources})
    return request


def _fill(message: Message, data: dict[str, Any]) -> None:
    """Set fields from plain data; KeyValue / AnyValue messages are taken as they are."""
    for name, v in data.items():
        field = getattr(message, name)
        if isinstance(v, list):
            for x in v:
                if isinstance(x, Message):
                    field.add().CopyFrom(x)
                elif isinstance(x, dict):
                    _fill(field.add(), x)
                else:
                    field.append(x)
        elif isinstance(v, Message):
            field.CopyFrom(v)
        elif isinstance(v, dict):
            _fill(field, v)
        else:
            setattr(message, name, v)


SIGNALS: dict[str, tuple[type[Message], tuple[str, str, str], Any, Any, Any]] = {
    "traces": (
        ExportTraceServiceRequest,
        ("resource_spans", "scope_spans", "spans"),
        span,
        redact_traces,
        PIPELINE.process_traces,
    ),
    "logs": (
        ExportLogsServiceRequest,
        ("resource_logs", "scope_logs", "log_records"),
        log_record,
        redact_logs,
        PIPELINE.process_logs,
    ),
    "metrics": (
        ExportMetricsServiceRequest,
        ("resource_metrics", "scope_metrics", "metrics"),
        metric,
        redact_metrics,
        PIPELINE.process_metrics,
    ),
}

styles = st.builds(
    Style,
    order=st.sampled_from(ORDERS),
    packed=st.sampled_from([None, True, False]),
    split=st.booleans(),
    seed=st.integers(0, 10_000),
)


def fast_and_full(signal: str, encoded: bytes) -> tuple[Message, Message]:
    cls, _, _, redact, process = SIGNALS[signal]
    fast = cls.FromString(process(encoded).payload)
    full = cls.FromString(encoded)
    redact(full, PIPELINE.scanner, PIPELINE.config.redaction)  # every field of every item, no shortcut
    return fast, full


@SETTINGS
@given(signal=st.sampled_from(sorted(SIGNALS)), style=styles, data=st.data())
def test_fast_path_equals_full_walk_for_every_encoding(
    signal: str, style: Style, data: st.DataObject
) -> None:
    cls, names, item, _, _ = SIGNALS[signal]
    request = data.draw(st.composite(lambda d: _request(d, cls, names, item))())
    raw = request.SerializeToString()
    encoded = reencode(raw, cls.DESCRIPTOR, style)
    assert cls.FromString(encoded) == request  # the re-encoder wrote the same message
    fast, full = fast_and_full(signal, encoded)
    assert fast == full


def test_every_place_an_any_value_can_be_is_in_the_number_trigger() -> None:
    """The raw trigger for card/phone-sized numbers names the tags an AnyValue can be written under."""
    from google.protobuf.descriptor import FieldDescriptor

    tags: set[int] = set()
    seen: set[str] = set()
    todo: list[Any] = [
        c.DESCRIPTOR
        for c in (ExportTraceServiceRequest, ExportLogsServiceRequest, ExportMetricsServiceRequest)
    ]
    while todo:
        d = todo.pop()
        if d.full_name in seen:
            continue
        seen.add(d.full_name)
        for f in d.fields:
            if f.type == FieldDescriptor.TYPE_MESSAGE:
                todo.append(f.message_type)
                if f.message_type.full_name == "opentelemetry.proto.common.v1.AnyValue":
                    tags.add(f.number << 3 | 2)
    assert tags == {0x0A, 0x12, 0x2A}
