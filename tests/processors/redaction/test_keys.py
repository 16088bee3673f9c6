"""Secret-key rules: every common spelling of a secret key masks its value, from any encoder's bytes."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from processors.config import SidecarConfig
from processors.handlers import Pipeline
from processors.redaction.config import DEFAULT_SECRET_KEYS
from processors.redaction.keys import SecretKeyRules, key_words
from tests.processors.helpers import attrs, logs_request, trace_request
from tests.processors.wire_reencode import ORDERS, Style, reencode

RULES = SecretKeyRules(DEFAULT_SECRET_KEYS)
PIPELINE = Pipeline(SidecarConfig())


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "PASSWORD",
        " password ",
        "db.password",
        "userPassword",
        "client_secret",
        "clientSecret",
        "ClientSecret",
        "client-secret",
        "api_key",
        "apiKey",
        "APIKey",
        "ApiKey",
        "X-API-Key",
        "x_api_key",
        "http.request.header.x-api-key",
        "http.request.header.authorization",
        "http.request.header.proxy-authorization",
        "http.request.header.cookie",
        "http.response.header.set-cookie",
        "accessToken",
        "access.token",
        "refresh-token",
        "oauth2Token",
        "aws.secret_access_key",
        "AWS_SECRET_ACCESS_KEY",
        "privateKey",
        "user.ssn",
        "card_number",
        "cardNumber",
    ],
)
def test_secret_spellings(key: str) -> None:
    assert RULES.is_secret(key), key_words(key)


@pytest.mark.parametrize(
    "key",
    [
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.output_tokens",
        "max_tokens",
        "tokenizer",
        "token_count",
        "password_hash_algorithm",
        "secretary",
        "http.request.header.content-type",
        "aws.access_key_id",
        "cookies_enabled",
        "keyboard",
    ],
)
def test_not_secret(key: str) -> None:
    assert not RULES.is_secret(key), key_words(key)


def _spell(words: list[str], style: str) -> str:
    if style == "camel":
        return words[0] + "".join(w.capitalize() for w in words[1:])
    if style == "pascal":
        return "".join(w.capitalize() for w in words)
    if style == "upper":
        return "_".join(words).upper()
    return {"snake": "_", "dot": ".", "kebab": "-", "joined": ""}[style].join(words)


PREFIXES = ["", "db.", "http.request.header.", "http.request.header.x-", "app_", "my.service.", "X-"]


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rule=st.sampled_from(DEFAULT_SECRET_KEYS),
    style=st.sampled_from(["snake", "dot", "kebab", "joined", "camel", "pascal", "upper"]),
    prefix=st.sampled_from(PREFIXES),
    value=st.one_of(st.text(min_size=1, max_size=30), st.integers(-(2**63), 2**63 - 1), st.booleans()),
    order=st.sampled_from(ORDERS),
    where=st.sampled_from(["span", "event", "log", "resource", "nested"]),
    seed=st.integers(0, 1000),
)
def test_a_secret_key_in_any_spelling_and_encoding_is_masked(
    rule: str, style: str, prefix: str, value: object, order: str, where: str, seed: int
) -> None:
    words = key_words(rule)
    if style in ("camel", "pascal") and prefix and prefix[-1].isalpha():
        style = "pascal"  # "myApp" + "ApiKey": the rule starts a new word
    key = prefix + _spell(words, style)
    assert RULES.is_secret(key)
    marker = "plain-secret-value-7"
    val = f"{marker}{value}" if isinstance(value, str) else value
    kvs = attrs({"outer": {key: val}} if where == "nested" else {key: val, "other": "x"})
    raw: bytes
    if where == "log":
        record = LogRecord()
        record.attributes.extend(kvs)
        raw, descriptor = logs_request(record).SerializeToString(), ExportLogsServiceRequest.DESCRIPTOR
        process = PIPELINE.process_logs
    else:
        s = Span(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="op")
        req = trace_request(s)
        target = req.resource_spans[0].scope_spans[0].spans[0]
        if where == "event":
            target.events.add(name="e").attributes.extend(kvs)
        elif where == "resource":
            req.resource_spans[0].resource.attributes.extend(kvs)
        else:
            target.attributes.extend(kvs)
        raw, descriptor = req.SerializeToString(), ExportTraceServiceRequest.DESCRIPTOR
        process = PIPELINE.process_traces
    encoded = reencode(raw, descriptor, Style(order=order, seed=seed))
    out = process(encoded).payload
    if isinstance(value, str):
        assert marker.encode() not in out, key
    else:
        parsed = (ExportLogsServiceRequest if where == "log" else ExportTraceServiceRequest).FromString(out)
        assert b"<SECRET>" in out and parsed != type(parsed).FromString(raw), key
