"""Every field that can carry text is scanned: names, keys, severity text, numbers that are cards or
phones, allow-listed keys for high-confidence types, and metric labels of every metric type."""

from __future__ import annotations

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from processors.config import SidecarConfig
from processors.handlers import Pipeline
from processors.redaction.config import RedactionConfig
from processors.redaction.scanner import PiiScanner
from processors.redaction.walk import redact_logs, redact_metrics, redact_traces
from tests.processors.helpers import attrs, logs_request, plain, span_attrs, trace_request, value

CONFIG = RedactionConfig()
SCANNER = PiiScanner(CONFIG)


def test_span_names_events_status_and_keys() -> None:
    s = Span(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="GET /users/jane@example.com")
    s.attributes.extend(
        attrs({"jane@example.com": "a", "bob@example.com": "b", "<EMAIL>": "c", "http.route": "/u"})
    )
    s.events.add(name="sent to jane@example.com")
    s.status.message = "no card 4111 1111 1111 1111"
    req = trace_request(s)
    redact_traces(req, SCANNER, CONFIG)
    out = req.resource_spans[0].scope_spans[0].spans[0]
    assert out.name == "GET /users/<EMAIL>"  # the span stays usable: only the address is replaced
    assert out.events[0].name == "sent to <EMAIL>"
    assert out.status.message == "no card <CREDIT_CARD>"
    got = span_attrs(out)
    # replaced key texts stay unique within their list
    assert {k: got[k] for k in ("<EMAIL>", "<EMAIL>_2", "<EMAIL>_3", "http.route")} == {
        "<EMAIL>": "c",
        "<EMAIL>_2": "a",
        "<EMAIL>_3": "b",
        "http.route": "/u",
    }


def test_numbers_that_are_cards_or_phones_and_numbers_that_are_not() -> None:
    values: dict[str, object] = {
        "card": 4111111111111111,
        "card.double": 4111111111111111.0,
        "user.phone": 20957351,  # the key is the context word
        "nanp": 4155552671,
        "db.rows": 20957351,  # a counter: no context, ambiguous shape
        "epoch_ms": 1733040000000,
        "small": 42,
        "ratio": 4111111111111111.5,
    }
    s = Span(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="op", attributes=attrs(values))
    req = trace_request(s)
    redact_traces(req, SCANNER, CONFIG)
    got = span_attrs(req.resource_spans[0].scope_spans[0].spans[0])
    assert got["card"] == got["card.double"] == "<CREDIT_CARD>"
    assert got["user.phone"] == got["nanp"] == "<PHONE>"
    for key in ("db.rows", "epoch_ms", "small", "ratio"):
        assert got[key] == values[key], key


def test_allow_listed_keys_keep_look_alikes_but_not_certain_pii() -> None:
    s = Span(
        trace_id=b"\x01" * 16,
        span_id=b"\x02" * 8,
        name="op",
        attributes=attrs(
            {
                "service.instance.id": "host-4155552671",
                "gen_ai.response.id": "chatcmpl-4111111111111111",
                "gen_ai.request.model": "gpt-4o jane@example.com",
                "gen_ai.conversation.id": "sk-proj-Gd7Qm2Vx9Lk4Pw8Rt6Zy3Hb5Nc1Jf0Ks",
            }
        ),
    )
    req = trace_request(s)
    redact_traces(req, SCANNER, CONFIG)
    got = span_attrs(req.resource_spans[0].scope_spans[0].spans[0])
    assert got["service.instance.id"] == "host-4155552671"
    assert got["gen_ai.request.model"] == "gpt-4o <EMAIL>"
    assert got["gen_ai.conversation.id"] == "<OPENAI_KEY>"


def test_log_event_name_severity_text_and_body_keys() -> None:
    record = LogRecord(severity_text="INFO jane@example.com", event_name="login jane@example.com")
    record.body.CopyFrom(value({"jane@example.com": {"password": "hunter2"}, "ok": "fine"}))
    req = logs_request(record)
    redact_logs(req, SCANNER, CONFIG)
    out = req.resource_logs[0].scope_logs[0].log_records[0]
    assert out.severity_text == "INFO <EMAIL>"
    assert out.event_name == "login <EMAIL>"
    assert plain(out.body) == {"<EMAIL>": {"password": "<SECRET>"}, "ok": "fine"}


def _metrics_request() -> ExportMetricsServiceRequest:
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.extend(attrs({"service.name": "svc", "host.owner": "jane@example.com"}))
    sm = rm.scope_metrics.add()
    labels = attrs({"user": "jane@example.com", "route": "/users/{id}", "request.id": "9f1c2a7e-4d1b"})
    g = sm.metrics.add(name="g")
    g.gauge.data_points.add(as_int=1).attributes.extend(labels)
    s = sm.metrics.add(name="s")
    p = s.sum.data_points.add(as_int=1)
    p.attributes.extend(labels)
    p.exemplars.add(as_int=1).filtered_attributes.extend(attrs({"client.address": "203.0.113.7"}))
    h = sm.metrics.add(name="h")
    h.histogram.data_points.add(count=1).attributes.extend(labels)
    e = sm.metrics.add(name="e")
    e.exponential_histogram.data_points.add(count=1).attributes.extend(labels)
    q = sm.metrics.add(name="q", description="owner jane@example.com")
    q.summary.data_points.add(count=1).attributes.extend(labels)
    return req


def test_metric_labels_of_every_type_and_exemplars() -> None:
    req = _metrics_request()
    stats = redact_metrics(req, SCANNER, CONFIG)
    rm = req.resource_metrics[0]
    assert {kv.key: plain(kv.value) for kv in rm.resource.attributes} == {
        "service.name": "svc",
        "host.owner": "<EMAIL>",
    }
    metrics = rm.scope_metrics[0].metrics
    for m in metrics:
        point = getattr(m, str(m.WhichOneof("data"))).data_points[0]
        got = {kv.key: plain(kv.value) for kv in point.attributes}
        # high-cardinality labels that are not PII stay as they are; no summary attribute becomes a label
        assert got == {"user": "<EMAIL>", "route": "/users/{id}", "request.id": "9f1c2a7e-4d1b"}, m.name
    assert plain(metrics[1].sum.data_points[0].exemplars[0].filtered_attributes[0].value) == "<IPV4>"
    assert metrics[4].description == "owner <EMAIL>"
    assert stats.by_type == {"email": 7, "ipv4": 1}


def test_metrics_through_the_pipeline_are_redacted_and_benign_ones_forwarded_as_received() -> None:
    pipeline = Pipeline(SidecarConfig())
    raw = _metrics_request().SerializeToString()
    out = pipeline.process_metrics(raw)
    assert b"jane@example.com" not in out.payload and b"203.0.113.7" not in out.payload
    assert out.items == 5
    benign = ExportMetricsServiceRequest()
    benign.resource_metrics.add().scope_metrics.add().metrics.add(name="ok").gauge.data_points.add(as_int=3)
    raw = benign.SerializeToString()
    assert pipeline.process_metrics(raw).payload == raw
