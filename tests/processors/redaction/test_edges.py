"""Validated numbers right after a path or key separator ("/", "." or "_" after a letter): cards (Luhn), SSNs,
IPv4 and international phone numbers are PII there too; versions, decimals, dates, hex fragments and REST ids
that are no card stay. Checked on text and on span names and attribute keys through the whole Pipeline."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from processors.config import SidecarConfig
from processors.handlers import Pipeline
from processors.redaction.config import RedactionConfig
from processors.redaction.scanner import PiiScanner
from processors.redaction.validators import luhn_ok
from tests.processors.helpers import span, trace_request

SCANNER = PiiScanner(RedactionConfig())
PIPELINE = Pipeline(SidecarConfig())


def scan(text: str) -> str:
    hits = SCANNER.candidate_hits([text])
    if 0 not in hits:
        return text
    result = SCANNER.redact_text(text, hits[0], hits[0])
    return text if result is None else result[0]


def through_pipeline(name: str, key: str) -> tuple[str, str]:
    """(span name, attribute key) after Pipeline.trace_parts on the serialized batch."""
    raw = trace_request(span(name, {key: "x"})).SerializeToString()
    out = ExportTraceServiceRequest.FromString(PIPELINE.process_traces(raw).payload)
    s = out.resource_spans[0].scope_spans[0].spans[0]
    return s.name, s.attributes[0].key


POSITIVE = [
    ("GET /cards/4111111111111111", "GET /cards/<CREDIT_CARD>"),
    ("/v1/4111111111111111/charge", "/v1/<CREDIT_CARD>/charge"),
    ("card.5555555555554444", "card.<CREDIT_CARD>"),
    ("card_378282246310005", "card_<CREDIT_CARD>"),
    ("/users/123-45-6789/profile", "/users/<US_SSN>/profile"),
    ("ssn.123-45-6789", "ssn.<US_SSN>"),
    ("/v1/users/+14155550123/calls", "/v1/users/<PHONE>/calls"),
    ("phone.+447911123456", "phone.<PHONE>"),
    ("user.203.0.113.7", "user.<IPV4>"),
    ("client_198.51.100.23", "client_<IPV4>"),
    ("GET /hosts/203.0.113.7/status", "GET /hosts/<IPV4>/status"),
    ("POST /cards=4111111111111111", "POST /cards=<CREDIT_CARD>"),
    ("ref:4111111111111111", "ref:<CREDIT_CARD>"),
]

NEGATIVE = [
    "GET /orders/12345678",
    "GET /orders/1234567890123",  # 13 digits, not Luhn-valid
    "/api/v2/items/987654321/reviews",
    "/v1.2.3.4/download",
    "release v1.2.3.4",
    "pkg-v10.2.0.1",
    "ratio 3.4111111111111111",  # a decimal (Luhn-valid digits after the point)
    "0.5488135039273248",
    "oid 1.3.6.1.4.1.311.21",
    "/archive/2024/01/15/index.html",
    "/2024-01-15/report",
    "1234/4111111111111111",  # a slash-grouped number, not a card after a path separator
    "/objects/550e8400-e29b-41d4-a716-446655440000",
    "/blobs/3a7bd3e2360a3d29eea436fcfb7e44c735d117c4",
    "/sessions/14155550123",  # a bare digit run after "/" is an id, not a phone number
    "ts=2024-01-15T10:00:00+0100",
    "lib.so.6.0.30",
    "python3.11.2.1",
]


@pytest.mark.parametrize(("text", "expected"), POSITIVE)
def test_validated_numbers_after_separators_are_redacted(text: str, expected: str) -> None:
    assert scan(text) == expected


@pytest.mark.parametrize("text", NEGATIVE)
def test_versions_decimals_dates_hex_and_ids_after_separators_stay(text: str) -> None:
    assert scan(text) == text


@pytest.mark.parametrize(("text", "expected"), POSITIVE)
def test_span_names_and_attribute_keys_through_the_pipeline(text: str, expected: str) -> None:
    name, key = through_pipeline(text, text)
    assert name == expected
    assert key == expected


@pytest.mark.parametrize("text", NEGATIVE)
def test_benign_span_names_and_keys_pass_the_pipeline_unchanged(text: str) -> None:
    assert through_pipeline(text, text) == (text, text)


def _with_check_digit(body: str) -> str:
    for d in "0123456789":
        if luhn_ok(body + d):
            return body + d
    raise AssertionError


@settings(max_examples=150, deadline=None)
@given(
    prefix=st.sampled_from(["/cards/", "/v1/", "GET /pay/", "card.", "pan_", "id=", "x:"]),
    body=st.from_regex(r"4[0-9]{14}", fullmatch=True),
)
def test_any_luhn_card_after_a_separator_is_redacted(prefix: str, body: str) -> None:
    card = _with_check_digit(body)
    if len(set(card)) == 1:
        return
    assert scan(prefix + card + "/x") == prefix + "<CREDIT_CARD>/x"


@settings(max_examples=150, deadline=None)
@given(
    prefix=st.sampled_from(["/orders/", "/v1/items/", "order.", "id_"]),
    body=st.from_regex(r"[1-9][0-9]{7,15}", fullmatch=True),
)
def test_rest_ids_that_are_not_luhn_cards_stay(prefix: str, body: str) -> None:
    if luhn_ok(body):
        body = body[:-1] + str((int(body[-1]) + 1) % 10)
    assert scan(prefix + body) == prefix + body


@settings(max_examples=150, deadline=None)
@given(
    prefix=st.sampled_from(["/hosts/", "user.", "client_", "GET /ip/"]),
    octets=st.tuples(*[st.integers(0, 255)] * 4),
)
def test_any_ipv4_after_a_separator_is_redacted(prefix: str, octets: tuple[int, ...]) -> None:
    ip = ".".join(map(str, octets))
    expected = prefix + ip if octets[0] == 127 or ip == "0.0.0.0" else prefix + "<IPV4>"
    assert scan(prefix + ip) == expected


@settings(max_examples=150, deadline=None)
@given(parts=st.lists(st.integers(0, 255), min_size=4, max_size=6))
def test_versions_and_dotted_numbers_stay(parts: list[int]) -> None:
    dotted = ".".join(map(str, parts))
    text = f"v{dotted} /pkg/v{dotted} lib.so.1.{dotted} x3.{dotted}"
    assert scan(text) == text
