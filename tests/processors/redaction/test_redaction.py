"""Redaction: what is found, where, how it is replaced; property tests over generated PII and benign text."""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from processors.config import SidecarConfig
from processors.config_loader import build
from processors.handlers import Pipeline
from processors.redaction.config import RedactionConfig
from processors.redaction.scanner import PiiScanner
from processors.redaction.walk import redact_logs, redact_traces
from tests.processors.helpers import attrs, logs_request, span, span_attrs, trace_request, value
from tests.processors.redaction import pii_strategies as ps


def scan(text: str, config: RedactionConfig | None = None) -> str:
    scanner = PiiScanner(config or RedactionConfig())
    hits = scanner.candidates([text])
    if 0 not in hits:
        return text
    result = scanner.redact_text(text, hits[0])
    return text if result is None else result[0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to jane.doe+tag@mail.example.co.uk today", "write to <EMAIL> today"),
        ("card 4111-1111-1111-1111.", "card <CREDIT_CARD>."),
        ("amex 378282246310005", "amex <CREDIT_CARD>"),
        ("not a card 4111-1111-1111-1112", "not a card 4111-1111-1111-1112"),  # Luhn fails
        ("ssn: 078-05-1120", "ssn: <US_SSN>"),
        ("IBAN DE89 3704 0044 0532 0130 00", "IBAN <IBAN>"),
        ("IBAN DE89 3704 0044 0532 0130 01", "IBAN DE89 3704 0044 0532 0130 01"),  # mod-97 fails
        ("from 10.1.2.3:8080", "from <IPV4>:8080"),
        ("v6 [2001:db8::1]:443", "v6 [<IPV6>]:443"),
        ("key=AKIAIOSFODNN7EXAMPLE", "key=<AWS_ACCESS_KEY>"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----", "<PRIVATE_KEY>"),
        ("xoxb-123456789012-abcdefghijkl", "<SLACK_TOKEN>"),
        ("Stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc", "Stripe <STRIPE_KEY>"),
        ("redis://:hunter2@cache:6379", "redis://:<URL_PASSWORD>@cache:6379"),
        ('{"password": "hunter2"}', '{"password": "<PASSWORD_PAIR>"}'),
        ("call +49 30 123456789 now", "call <PHONE> now"),
        ("call (415) 555-2671 now", "call <PHONE> now"),
        ("Tel. 06 12 34 56 78", "Tel. <PHONE>"),
        ("my phone: 512 345 678", "my phone: <PHONE>"),  # ambiguous shape, context word
        ("WhatsApp 47034417 anytime", "WhatsApp <PHONE> anytime"),
        ("user.phone 3430770719", "user.phone <PHONE>"),
        ("512 345 678", "<PHONE>"),  # the whole value is the number
        ("Ring 03-1234-5678", "Ring <PHONE>"),
        ("reach me on 47 03 44 17", "reach me on <PHONE>"),
        ("8 912 345-67-89", "<PHONE>"),
        ("pid 1000 4000 0000 0000 6 card", "pid 1000 <CREDIT_CARD> card"),
        ("peer 192.168.1.20 via 127.0.0.1", "peer <IPV4> via 127.0.0.1"),
    ],
)
def test_detects_and_replaces(text: str, expected: str) -> None:
    assert scan(text) == expected


def test_invalid_ssn_is_not_labelled_ssn() -> None:
    assert "<US_SSN>" not in scan("ssn 000-12-3456 is invalid")  # area 000 is never issued


@pytest.mark.parametrize(
    "text",
    [
        "trace_id=4bf92f3577b34da6a3ce929d0e0e4736 span_id=00f067aa0ba902b7",
        "uuid 550e8400-e29b-41d4-a716-446655440000",
        "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "at 2024-05-01T12:34:56.789Z epoch 1714566896 ms 1714566896789",
        "released v2.14.3 (build 20240501.3)",
        "model gpt-4o-mini-2024-07-18 and claude-3-5-sonnet-20241022",
        "order ORD-2024-000123 shipped; invoice INV-88213",
        "see https://docs.example.com/path/to/page?q=1#frag",
        "std::vector<int> v; a::b::c(); x = 10:30:00",
        "handled synthetic request 60 698216",
        "took 12 345678 ns",
        "retry 3 of 5, 1700000000",
        "build 2024 11 21",
        "port 8080 pid 123456",
        "GET /items/123 200 5678 12ms",
        "price 1 299.00 EUR, total 12 345 678.90",
        "2 815 933 413 bytes in 120 345 rows",
        "[69557] 16050-97693 queued",
        "listening on 127.0.0.1:4319 and 0.0.0.0:8000, peer 127.10.0.3",
        "latency 1234.5678 ms, 3.14159, 42",
        "sum = 1234567890 + 987654321",
    ],
)
def test_benign_text_is_untouched(text: str) -> None:
    assert scan(text) == text


def test_json_in_string_stays_valid_json() -> None:
    messages = json.dumps([{"role": "user", "content": 'my email is "a@b.example" and pw\\"x'}])
    out = scan(messages)
    assert "a@b.example" not in out
    json.loads(out)


@pytest.mark.parametrize(
    "text",
    [
        "[" * 200_000 + "bob@example.com",  # not JSON, and too deep for the JSON parser to say so
        "[" * 900 + '"bob@example.com"' + "]" * 900,  # JSON the parser accepts but a walk would recurse into
    ],
    ids=["deep-not-json", "deep-json"],
)
def test_deeply_nested_json_looking_text_is_redacted_not_an_error(text: str) -> None:
    out = scan(text)
    assert "bob@example.com" not in out
    assert "<EMAIL>" in out


def test_key_rules_mask_whole_value_and_allow_list_keeps_only_look_alikes() -> None:
    config = RedactionConfig()
    scanner = PiiScanner(config)
    req = trace_request(
        span(
            "s",
            {
                "db.password": "correct horse",
                "http.request.header.x-api-key": ["k1", "k2"],
                "user.ssn": 123456789,
                "gen_ai.usage.input_tokens": 42,  # "token" rule must not hit usage counters
                "gen_ai.response.id": "resp 4155552671 10.1.2.3",  # allow-listed: phone/IP look-alikes stay
                "gen_ai.conversation.id": "bob@example.com",  # allow-listed, but an e-mail is certain PII
                "clientSecret": "s3",
                "apiKey": 7,
            },
        )
    )
    redact_traces(req, scanner, config)
    got = span_attrs(req.resource_spans[0].scope_spans[0].spans[0])
    assert got["db.password"] == "<SECRET>"
    assert got["http.request.header.x-api-key"] == "<SECRET>"
    assert got["user.ssn"] == "<SECRET>"
    assert got["gen_ai.usage.input_tokens"] == 42
    assert got["gen_ai.response.id"] == "resp 4155552671 10.1.2.3"
    assert got["gen_ai.conversation.id"] == "<EMAIL>"
    assert got["clientSecret"] == got["apiKey"] == "<SECRET>"
    assert got["pii.redacted.count"] == 6
    assert got["pii.redacted.types"] == ["email", "secret_key"]


def test_hmac_mode_correlates_equal_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_HMAC_KEY", "0123456789abcdef0123")
    config = build(RedactionConfig, {"mode": "hmac", "hmac_key_env": "TEST_HMAC_KEY"}, "redaction")
    a = scan("from bob@example.com", config)
    b = scan("to bob@example.com!", config)
    c = scan("to eve@example.com!", config)
    token = a.removeprefix("from ")
    assert token.startswith("<EMAIL:") and len(token) == len("<EMAIL:>") + 16
    assert b == f"to {token}!"
    assert c != f"to {token}!"
    monkeypatch.setenv("TEST_HMAC_KEY", "another-key-0123456789")
    other = scan(
        "from bob@example.com",
        build(RedactionConfig, {"mode": "hmac", "hmac_key_env": "TEST_HMAC_KEY"}, "redaction"),
    )
    assert other != a  # keyed: a different key gives a different token


def test_summary_off_and_fields_off() -> None:
    config = build(RedactionConfig, {"summary": False, "fields": {"span_status": False}}, "redaction")
    req = trace_request(span("s", {"m": "x a@b.example"}, status=Status(message="c@d.example")))
    redact_traces(req, PiiScanner(config), config)
    s = req.resource_spans[0].scope_spans[0].spans[0]
    assert span_attrs(s) == {"m": "x <EMAIL>"}
    assert s.status.message == "c@d.example"


def test_custom_pattern() -> None:
    config = build(
        RedactionConfig, {"custom_patterns": [{"name": "ticket", "regex": r"TCK-\d{5}"}]}, "redaction"
    )
    assert scan("see TCK-12345 now", config) == "see <TICKET> now"


def test_disabled_type_is_left() -> None:
    config = build(RedactionConfig, {"types": {"ipv4": False}}, "redaction")
    assert scan("host 10.0.0.1 mail a@b.example", config) == "host 10.0.0.1 mail <EMAIL>"


# --- properties -------------------------------------------------------------------------------------
PIPELINE = Pipeline(SidecarConfig())
SETTINGS = settings(
    max_examples=int(os.environ.get("PII_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _place(where: str, text: str) -> bytes:
    """Put ``text`` in one of the places the sidecar must scan; return the serialized request."""
    if where.startswith("log"):
        record = LogRecord()
        if where == "log_body":
            record.body.CopyFrom(value(text))
        elif where == "log_body_kvlist":
            record.body.CopyFrom(value({"msg": {"inner": [text]}}))
        else:
            record.attributes.extend(attrs({"log.attr": text}))
        return logs_request(record).SerializeToString()
    s = Span(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="op")
    if where == "attr":
        s.attributes.extend(attrs({"gen_ai.prompt": text}))
    elif where == "nested":
        s.attributes.extend(attrs({"outer": {"list": ["x", {"deep": text}]}}))
    elif where == "json":
        s.attributes.extend(attrs({"gen_ai.input.messages": json.dumps([{"role": "user", "content": text}])}))
    elif where == "event":
        s.events.append(Span.Event(name="e", attributes=attrs({"m": text})))
    elif where == "link":
        s.links.append(Span.Link(trace_id=b"\x03" * 16, span_id=b"\x04" * 8, attributes=attrs({"m": text})))
    elif where == "status":
        s.status.message = text
    elif where == "resource":
        return trace_request(s, resource={"host.note": text}).SerializeToString()
    return trace_request(s).SerializeToString()


PLACES = [
    "attr",
    "nested",
    "json",
    "event",
    "link",
    "status",
    "resource",
    "log_body",
    "log_body_kvlist",
    "log_attr",
]


def _process(where: str, raw: bytes) -> bytes:
    handler = PIPELINE.process_logs if where.startswith("log") else PIPELINE.process_traces
    return handler(raw).payload


@SETTINGS
@given(
    where=st.sampled_from(PLACES),
    before=ps.benign_texts,
    pii=ps.pii_values,
    after=ps.benign_texts,
    sep1=ps.separators,
    sep2=ps.separators,
)
def test_no_generated_pii_survives_anywhere(
    where: str, before: str, pii: str, after: str, sep1: str, sep2: str
) -> None:
    assume(pii not in before and pii not in after)
    out = _process(where, _place(where, before + sep1 + pii + sep2 + after))
    assert pii.encode() not in out
    if where == "json":
        json.loads(_json_attr(out))


@SETTINGS
@given(where=st.sampled_from(PLACES), before=ps.benign_texts, marked=ps.marked_secrets, sep=ps.separators)
def test_marked_secret_values_do_not_survive(
    where: str, before: str, marked: tuple[str, str], sep: str
) -> None:
    text, secret = marked
    assume(secret not in before)
    out = _process(where, _place(where, before + sep + text))
    assert secret.encode() not in out


@SETTINGS
@given(where=st.sampled_from(PLACES), text=ps.benign_texts)
def test_benign_batches_forwarded_byte_identical(where: str, text: str) -> None:
    raw = _place(where, text)
    assert _process(where, raw) == raw


def _json_attr(out: bytes) -> str:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    req = ExportTraceServiceRequest.FromString(out)
    return str(span_attrs(req.resource_spans[0].scope_spans[0].spans[0])["gen_ai.input.messages"])


def test_logs_body_and_summary() -> None:
    config = RedactionConfig()
    req = logs_request(LogRecord(body=value(["ok", {"k": "ip 192.0.2.1"}])))
    stats = redact_logs(req, PiiScanner(config), config)
    rec = req.resource_logs[0].scope_logs[0].log_records[0]
    assert rec.body.array_value.values[1].kvlist_value.values[0].value.string_value == "ip <IPV4>"
    assert stats.by_type == {"ipv4": 1}
    assert span_attrs(rec)["pii.redacted.count"] == 1  # type: ignore[arg-type]


_SCANNER = PiiScanner(RedactionConfig())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    before=ps.benign_texts,
    pii=st.lists(st.one_of(ps.pii_values, ps.marked_secrets.map(lambda m: m[0])), min_size=1, max_size=3),
    pad=st.integers(0, 1500),
    sep=ps.separators,
)
def test_search_near_trigger_hits_finds_what_a_whole_text_search_finds(
    before: str, pii: list[str], pad: int, sep: str
) -> None:
    # PII far apart in a long text: the windowed search (from the trigger hits) must find the same
    text = (("lorem ipsum " * (pad // 12)) + sep).join([before, *pii, before])
    hits = _SCANNER.candidate_hits([text])
    if 0 not in hits:
        return
    assert _SCANNER.redact_text(text, hits[0], hits[0]) == _SCANNER.redact_text(text, hits[0])


@settings(max_examples=200, deadline=None)
@given(
    rule=st.sampled_from(list(RedactionConfig().secret_keys)),
    shape=st.sampled_from(["{}", "{}", "db.{}", "http.request.header.{}", "my_{}", "X-{}", " {} ", "{}"]),
    upper=st.booleans(),
    nested=st.booleans(),
    where=st.sampled_from(["span", "log", "resource"]),
)
def test_a_batch_whose_only_finding_is_a_secret_key_is_masked(
    rule: str, shape: str, upper: bool, nested: bool, where: str
) -> None:
    """The raw-bytes scan must never wave through a batch whose only problem is a secret key name."""
    key = shape.format(rule.replace("_", "-") if shape.startswith("X-") else rule)
    key = key.upper() if upper else key
    secret = "hunter2-value"
    attributes = attrs({"outer": {key: secret}} if nested else {key: secret})
    if where == "log":
        record = LogRecord()
        record.attributes.extend(attributes)
        raw = logs_request(record).SerializeToString()
        out = PIPELINE.process_logs(raw).payload
    else:
        s = Span(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="op")
        if where == "span":
            s.attributes.extend(attributes)
            req = trace_request(s)
        else:
            req = trace_request(s)
            req.resource_spans[0].resource.attributes.extend(attributes)
        out = PIPELINE.process_traces(req.SerializeToString()).payload
    assert secret.encode() not in out, key


@pytest.mark.parametrize("length", [*range(48, 58), *range(65, 71), *range(97, 103)])
@pytest.mark.parametrize("pii", ["4111111111111111", "whatsapp 47034417", "4155552671", "13812345678"])
def test_digits_at_the_start_of_a_string_whose_length_byte_is_a_digit_or_hex_letter(
    pii: str, length: int
) -> None:
    """In the raw bytes the byte before a string is its length: 48-57 are '0'-'9', 65-70 / 97-102 are hex
    letters. The raw-batch scan must still see a number that starts the string."""
    text = (pii + " " + "z" * length)[:length]
    assert len(text.encode()) == length
    s = Span(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="op")
    s.attributes.extend(attrs({"note": text}))
    out = PIPELINE.process_traces(trace_request(s).SerializeToString()).payload
    assert pii.encode() not in out
    record = LogRecord()
    record.body.CopyFrom(value(text))
    out = PIPELINE.process_logs(logs_request(record).SerializeToString()).payload
    assert pii.encode() not in out


@settings(max_examples=300, deadline=None)
@given(
    prefix=st.text(alphabet='0123456789abcdefABCDEF-_ .:=\\nu"', max_size=6),
    pii=st.sampled_from(["4111111111111111", "4155552671", "13812345678", "+49 30 123456789", "0301234567"]),
    pad=st.integers(0, 300),
)
def test_raw_shortcut_sees_every_number_the_full_walk_redacts(prefix: str, pii: str, pad: int) -> None:
    """Skipping digit runs inside hex tokens must never skip one the full walk would redact."""
    text = prefix + pii + " " + "z" * pad
    s = Span(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="op")
    s.attributes.extend(attrs({"note": text}))
    raw = trace_request(s).SerializeToString()
    fast = PIPELINE.process_traces(raw).payload
    full = trace_request(s)
    redact_traces(full, PIPELINE.scanner, PIPELINE.config.redaction)
    assert fast == full.SerializeToString() or (fast == raw and full.SerializeToString() == raw)
