"""The gateway never emits what it must not: no cut secrets, no content on stderr, no PII-shaped names.

Its telemetry goes to the Collector's sidecar, which redacts whole values: a value the gateway cut would no
longer match there. Its stderr log goes nowhere near the sidecar. And model names become metric labels.
"""

from __future__ import annotations

import io
import json
import logging
import string
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.api import create_app
from app.config import parse_config
from app.identifiers import MAX_MODEL_NAME_CHARS, acceptable_request_id, model_name_problem
from app.request_log import exception_without_message, gateway_logger
from tests.app.conftest import Captured, Gateway, GatewayFactory, ThreadedServer, in_memory_telemetry

CAPTURE = {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true"}

# Secrets and PII of the kinds the sidecar redacts, each long enough that a cut leaves a recognisable part.
SECRETS = {
    "github_token": "ghp_" + "aB3dE5gH7jK9mN1pQ3sT5vX7zA9cE1gI3kM5",
    "credit_card": "4111 1111 1111 1111",
    "email": "dora.explorer.private@example-mail.org",
    "aws_key": "AKIAIOSFODNN7EXAMPLQ",
    "openai_key": "sk-proj-" + "Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe",
    "phone": "+1 415 555 0172",
    "iban": "DE89 3704 0044 0532 0130 00",
}

GOOD_MODELS = [
    "gpt-4o-mini",
    "gpt-4o-2024-08-06",
    "o1-2024-12-17",
    "claude-3-5-sonnet-20241022",
    "claude-3-5-sonnet-v2@20241022",
    "meta-llama/Llama-3.1-8B-Instruct",
    "ft:gpt-4o-mini-2024-07-18:my-org::9abcdEFG",
    "anthropic.claude-3-5-sonnet-20240620-v1:0",
    "gemini-2.5-flash-preview-05-20",
    "llama3.1:8b",
    "qwen2.5-72b-instruct",
    "x",
]
BAD_MODELS = [
    "john.doe@example.com",
    "gpt-4o-john.doe@example.com",
    "x@163.com",
    "gpt-4o mini",
    " gpt-4o",
    "gpt-4o\n",
    "gpt-4o\x00",
    "gpt-4o\x1b[31m",
    "gpt\t4o",
    "gpt-4o\u200b",
    "\uff47\uff50\uff54-4o",  # fullwidth
    "gpt-4o-é",
    "+1 415 555 0172",
    "+14155550172",
    "gpt-415-555-0172",
    "gpt-4155550172",
    "4111111111111111",
    "gpt-4111-1111-1111-1111",
    "gpt-123-45-6789",
    "gpt-10.1.2.3",
    "2001:db8::8a2e:370:7334",
    "sk-proj-Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe",
    "ghp_aB3dE5gH7jK9mN1pQ3sT5vX7zA9cE1gI3kM5",
    "AKIAIOSFODNN7EXAMPLQ",
    "gpt-4o-Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe",
    "a" * (MAX_MODEL_NAME_CHARS + 1),
    "gpt-4o-" + "x" * 500,
    "-gpt",
    "12345",
]


def all_attribute_text(captured: Captured) -> list[str]:
    """Every string the gateway emitted: span names, attribute and event values, log bodies and
    attributes, metric point attributes (labels)."""
    out: list[str] = []

    def add(value: Any) -> None:
        if isinstance(value, str):
            out.append(value)
        elif isinstance(value, tuple | list):
            for v in value:
                add(v)

    for span in captured.finished_spans():
        out.append(span.name)
        if span.status.description:
            out.append(span.status.description)
        for k, v in (span.attributes or {}).items():
            out.append(k)
            add(v)
        for event in span.events:
            for v in (event.attributes or {}).values():
                add(v)
    for rec in captured.logs.get_finished_logs():
        add(str(rec.log_record.body))
        for v in (rec.log_record.attributes or {}).values():
            add(v)
    for metric in captured.all_metrics():
        for point in metric.data.data_points:
            for v in (point.attributes or {}).values():
                add(v)
    return out


def fragments(secret: str, size: int = 8) -> set[str]:
    return {secret[i : i + size] for i in range(len(secret) - size + 1)}


def oai(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.openai_base_url, api_key="k", max_retries=0, timeout=10)


# --- model names ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", GOOD_MODELS)
def test_model_shaped_names_are_accepted(name: str) -> None:
    assert model_name_problem(name) is None


@pytest.mark.parametrize("name", BAD_MODELS)
def test_names_that_are_not_model_shaped_are_refused(name: str) -> None:
    assert model_name_problem(name) is not None


_LOCAL = st.text(string.ascii_letters + string.digits + "._-", min_size=1, max_size=20)
_LABEL = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=12)


@settings(max_examples=300, deadline=None)
@given(prefix=st.sampled_from(["", "gpt-4o-", "claude/", "m:"]), local=_LOCAL, domain=_LABEL, tld=_LABEL)
def test_any_name_with_an_email_address_is_refused(prefix: str, local: str, domain: str, tld: str) -> None:
    assert model_name_problem(f"{prefix}{local}@{domain}.{tld}") is not None


@settings(max_examples=300, deadline=None)
@given(
    base=st.sampled_from(GOOD_MODELS),
    where=st.integers(min_value=0, max_value=200),
    bad=st.characters(exclude_characters=string.ascii_letters + string.digits + "._:/-@"),
)
def test_any_character_outside_the_model_alphabet_is_refused(base: str, where: int, bad: str) -> None:
    where = min(where, len(base))
    assert model_name_problem(base[:where] + bad + base[where:]) is not None


@settings(max_examples=300, deadline=None)
@given(
    prefix=st.sampled_from(["gpt-", "model-", "claude-3-", "x/"]),
    digits=st.text(string.digits, min_size=9, max_size=19),
    sep=st.sampled_from(["", "-", "."]),
)
def test_any_name_with_a_phone_or_card_like_digit_run_is_refused(prefix: str, digits: str, sep: str) -> None:
    # Phone/card/SSN-shaped: 9+ digits, grouped by one separator kind (dates excepted, by design).
    grouped = sep.join(digits[i : i + 3] for i in range(0, len(digits), 3))
    assert model_name_problem(prefix + grouped) is not None


def test_long_names_are_refused_at_the_limit() -> None:
    assert model_name_problem("m" * MAX_MODEL_NAME_CHARS) is None
    assert model_name_problem("m" * (MAX_MODEL_NAME_CHARS + 1)) is not None


@pytest.mark.parametrize(
    "name", ["john.doe@example.com", "gpt-415-555-0172", "gpt 4o", "gpt-4o\x00", "a" * 300, "x@163.com"]
)
def test_refused_model_is_a_400_naming_the_field_and_is_emitted_nowhere(
    make_gateway: GatewayFactory, name: str
) -> None:
    gw = make_gateway(env=CAPTURE)
    for stream in (False, True):
        r = httpx.post(
            gw.openai_base_url + "/chat/completions",
            json={"model": name, "messages": [{"role": "user", "content": "hi"}], "stream": stream},
            timeout=10,
        )
        assert r.status_code == 400
        err = r.json()["error"]
        assert err["param"] == "model"
        assert err["type"] == "invalid_request_error" and err["code"] == "invalid_value"
        assert err["message"].startswith("model: ")
    emitted = all_attribute_text(gw.captured)
    assert emitted  # the refusals themselves are counted (llm_gateway.errors)
    assert not [t for t in emitted if name in t]
    assert not gw.captured.genai_spans()


class _OddUpstream:
    """An OpenAI-compatible upstream whose responses name a model that is not model-shaped."""

    MODEL = "ops.person@example.com"

    def __init__(self) -> None:
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def chat() -> JSONResponse:
            return JSONResponse(
                {
                    "id": "chatcmpl-odd",
                    "object": "chat.completion",
                    "model": self.MODEL,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": "ok"},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
                }
            )

        self.server = ThreadedServer(app).start()


def test_an_upstream_model_name_that_is_not_model_shaped_is_dropped(make_gateway: GatewayFactory) -> None:
    upstream = _OddUpstream()
    try:
        gw = make_gateway(
            {"providers": {"up": {"type": "openai-compatible", "base_url": upstream.server.base_url + "/v1"}}}
        )
        resp = oai(gw).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
        )
        assert resp.model == _OddUpstream.MODEL  # the client gets the upstream's answer unchanged
        (span,) = gw.captured.genai_spans()
        assert "gen_ai.response.model" not in span.attributes
        assert span.attributes["gen_ai.usage.output_tokens"] == 1
        assert not [t for t in all_attribute_text(gw.captured) if "example.com" in t]
    finally:
        upstream.server.stop()


# --- request ids --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["john.doe@example.com", "415-555-0172", "4111111111111111", "a b", "x;y", "sk-proj-abcdefghijkl0123"],
)
def test_a_request_id_that_is_not_id_shaped_is_replaced(gateway: Gateway, value: str) -> None:
    assert not acceptable_request_id(value)
    r = httpx.post(
        gateway.openai_base_url + "/chat/completions",
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        headers={"x-request-id": value},
        timeout=10,
    )
    assert r.status_code == 200
    assert r.headers["x-request-id"].startswith("req_")
    assert not [t for t in all_attribute_text(gateway.captured) if value in t]


def test_id_shaped_request_ids_are_kept(gateway: Gateway) -> None:
    for value in (
        "0af7651916cd43dd8448eb211c80319c",
        "550e8400-e29b-41d4-a716-446655440000",
        "job-42.step-7",
    ):
        r = httpx.post(
            gateway.openai_base_url + "/chat/completions",
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
            headers={"x-request-id": value},
            timeout=10,
        )
        assert r.headers["x-request-id"] == value


# --- no cut secrets -------------------------------------------------------------------------------------


def test_no_secret_is_ever_emitted_cut(make_gateway: GatewayFactory) -> None:
    """Whatever the position of a secret in the prompt (around the old 200-character preview cut
    especially), every emitted string that holds a piece of it holds all of it: the sidecar sees it whole."""
    gw = make_gateway(env=CAPTURE)
    c = oai(gw)
    offsets = [0, 1, 100, *range(160, 205, 3), 250, 399]
    for kind, secret in SECRETS.items():
        for offset in offsets:
            prompt = ("lorem ipsum " * 40)[:offset] + secret + " and then some more text after it."
            for role in ("user", "system"):
                c.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=[{"role": role, "content": prompt}, {"role": "user", "content": prompt}],
                )
        emitted = all_attribute_text(gw.captured)
        assert any(secret in t for t in emitted), "content capture on: the whole prompt is on the span"
        for text in emitted:
            if any(f in text for f in fragments(secret)):
                assert secret in text, f"{kind} cut in an emitted value: {text[:80]!r}"
        gw.captured.spans.clear()
        gw.captured.logs.clear()


def test_request_log_records_carry_no_content(make_gateway: GatewayFactory) -> None:
    gw = make_gateway(env=CAPTURE)
    oai(gw).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "MARKER-PROMPT-1 hello"}]
    )
    records = [r.log_record for r in gw.captured.logs.get_finished_logs()]
    assert records
    for rec in records:
        assert "MARKER-PROMPT-1" not in json.dumps(dict(rec.attributes or {}), default=str)
        assert "llm_gateway.prompt.preview" not in (rec.attributes or {})


# --- stderr carries no content -----------------------------------------------------------------------------

MARKERS = [f"MRK{i}QZ" for i in range(12)]


@pytest.fixture
def stderr_gateway(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Gateway, io.StringIO]]:
    """A gateway with content capture on and its JSON log on a captured stderr."""
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    config = parse_config({"tenants": [{"name": "t", "keys": ["k"]}]}, {})
    captured = in_memory_telemetry(CAPTURE)
    app = create_app(config, captured.telemetry, log_to_stderr=True)
    gw = Gateway(ThreadedServer(app).start(), captured, config)
    try:
        yield gw, err
    finally:
        gw.server.stop()
        captured.telemetry.shutdown()


def test_stderr_log_never_carries_message_content(stderr_gateway: tuple[Gateway, io.StringIO]) -> None:
    gw, err = stderr_gateway
    c = oai(gw)
    m = MARKERS
    messages: list[Any] = [
        {"role": "system", "content": f"system {m[0]}"},
        {"role": "user", "content": [{"type": "text", "text": f"part {m[1]}"}]},
        {
            "role": "assistant",
            "content": f"earlier {m[2]}",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": f'{{"q": "{m[3]}"}}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": f"tool said {m[4]}"},
        {"role": "user", "content": f"question {m[5]} " + "x" * 300},
    ]
    kwargs: dict[str, Any] = {"stop": [m[6]], "user": f"{m[7]}@example.com"}
    resp = c.chat.completions.create(model="gpt-4o-mini", messages=messages, **kwargs)
    list(c.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True, **kwargs))
    for fault in ("429", "500"):
        with pytest.raises(openai.APIStatusError):
            c.chat.completions.create(
                model="gpt-4o-mini",
                messages=messages,
                extra_headers={"X-Simulated-Fault": fault},
                **kwargs,
            )
    with pytest.raises(openai.BadRequestError):
        c.chat.completions.create(model=f"{m[8]}@example.com", messages=messages)
    fb = httpx.post(
        gw.base_url + "/v1/feedback",
        json={"response_id": resp.id, "score": 0.5, "comment": f"great {m[9]}"},
        headers={"Authorization": "Bearer k"},
        timeout=10,
    )
    assert fb.status_code == 200
    text = err.getvalue()
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert sum(1 for rec in lines if rec.get("event.name") == "llm_gateway.request") == 4
    assert any(rec.get("event.name") == "gen_ai.evaluation.result" for rec in lines)
    leaked = [marker for marker in MARKERS if marker in text]
    assert not leaked, leaked
    # The same content did reach the OTLP side (spans, for the sidecar to redact): the markers are real.
    otlp = " ".join(all_attribute_text(gw.captured))
    assert m[0] in otlp and m[5] in otlp


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.text(min_size=1, max_size=30), value=st.text(min_size=1, max_size=30))
def test_no_attribute_outside_the_allow_list_reaches_stderr(key: str, value: str) -> None:
    from opentelemetry.sdk._logs import LoggerProvider

    from app.request_log import ATTRS_KEY, STDERR_FIELDS, close_logger

    logger = gateway_logger(LoggerProvider(), enabled=False, stderr=True)
    stream = io.StringIO()
    for handler in logger.handlers:
        if isinstance(handler, logging.StreamHandler) and handler.formatter is not None:
            handler.setStream(stream)
    try:
        marker = "VALUE-" + value
        logger.info("fixed text", extra={ATTRS_KEY: {key: marker, "gen_ai.request.model": "m"}})
        line = json.loads(stream.getvalue())
        assert (marker in line.values()) == (key in STDERR_FIELDS)
    finally:
        close_logger(logger)


def test_exceptions_reach_stderr_without_their_message() -> None:
    marker = "MRK" + "EXC" + "QZ"  # not in this file's source, which the traceback quotes
    try:
        raise ValueError(f"the prompt was: {marker}")
    except ValueError as exc:
        text = exception_without_message((type(exc), exc, exc.__traceback__))
    assert "ValueError" in text and "test_privacy.py" in text
    assert marker not in text
