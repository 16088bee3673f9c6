"""Emitted telemetry, checked through the SDK's in-memory exporters: spans, metrics + exemplars, logs."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest
from opentelemetry.trace import SpanKind, StatusCode

from app.telemetry.metrics import DURATION_BUCKETS, TOKEN_BUCKETS, TTFT_BUCKETS
from tests.app.conftest import Gateway, GatewayFactory, user_message

CAPTURE = {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true"}


def client(gw: Gateway, key: str = "none", **kw: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.openai_base_url, api_key=key, max_retries=0, timeout=10, **kw)


def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def test_genai_span_follows_semconv(gateway: Gateway) -> None:
    resp = client(gateway).chat.completions.create(
        model="gpt-4o-mini", messages=user_message(), max_tokens=30, temperature=0.5, top_p=0.9, seed=4
    )
    (span,) = gateway.captured.genai_spans()
    a = dict(span.attributes)
    assert span.name == "chat gpt-4o-mini"
    assert span.kind == SpanKind.CLIENT
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "openai"
    assert a["llm_gateway.provider.simulated"] is True
    assert a["gen_ai.request.model"] == "gpt-4o-mini"
    assert a["gen_ai.response.model"] == resp.model
    assert a["gen_ai.response.id"] == resp.id
    assert a["gen_ai.response.finish_reasons"] == (resp.choices[0].finish_reason,)
    assert resp.usage is not None
    assert a["gen_ai.usage.input_tokens"] == resp.usage.prompt_tokens
    assert a["gen_ai.usage.output_tokens"] == resp.usage.completion_tokens
    assert a["gen_ai.usage.cache_read.input_tokens"] == 0
    assert a["gen_ai.request.temperature"] == 0.5
    assert a["gen_ai.request.top_p"] == 0.9
    assert a["gen_ai.request.max_tokens"] == 30
    assert a["gen_ai.request.seed"] == 4
    assert a["gen_ai.request.stream"] is False
    assert a["openai.response.system_fingerprint"] == "fp_simulated"
    assert a["llm_gateway.tenant"] == "default"
    assert "gen_ai.input.messages" not in a and "gen_ai.output.messages" not in a  # opt-in only
    assert "error.type" not in a
    # The GenAI span is a child of the FastAPI server span.
    # The server span ends once the response is sent, which may be just after the client has it.
    wait_for(lambda: any(s.kind == SpanKind.SERVER for s in gateway.captured.finished_spans()))
    server = [s for s in gateway.captured.finished_spans() if s.kind == SpanKind.SERVER]
    assert len(server) == 1 and span.parent is not None
    assert span.parent.span_id == server[0].context.span_id
    assert server[0].attributes["http.route"] == "/v1/chat/completions"


def test_failed_call_sets_error_type_and_status(gateway: Gateway) -> None:
    with pytest.raises(openai.RateLimitError):
        client(gateway, default_headers={"X-Simulated-Fault": "429"}).chat.completions.create(
            model="claude-3-5-haiku-latest", messages=user_message()
        )
    (span,) = gateway.captured.genai_spans()
    assert span.attributes["error.type"] == "429"
    assert span.attributes["gen_ai.provider.name"] == "anthropic"
    assert span.status.status_code == StatusCode.ERROR
    points = gateway.captured.metric_points()
    errors = [p for p in points["llm_gateway.errors"] if p.attributes.get("error.type") == "429"]
    assert errors and errors[0].value == 1
    durations = points["gen_ai.client.operation.duration"]
    assert any(p.attributes.get("error.type") == "429" for p in durations)


def test_message_content_capture_in_semconv_json(make_gateway: GatewayFactory) -> None:
    gw = make_gateway(env=CAPTURE)
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "My email is a@b.example"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"q": 1}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "42"},
    ]
    resp = client(gw).chat.completions.create(model="gpt-4o-mini", messages=messages)
    (span,) = gw.captured.genai_spans()
    inputs = json.loads(span.attributes["gen_ai.input.messages"])
    assert inputs == [
        {"role": "user", "parts": [{"type": "text", "content": "My email is a@b.example"}]},
        {
            "role": "assistant",
            "parts": [{"type": "tool_call", "id": "call_1", "name": "lookup", "arguments": {"q": 1}}],
        },
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_1", "response": "42"}]},
    ]
    assert json.loads(span.attributes["gen_ai.system_instructions"]) == [
        {"type": "text", "content": "Be brief."}
    ]
    outputs = json.loads(span.attributes["gen_ai.output.messages"])
    assert outputs == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": resp.choices[0].message.content}],
            "finish_reason": resp.choices[0].finish_reason,
        }
    ]


def test_streamed_output_is_assembled_and_stream_metrics_recorded(make_gateway: GatewayFactory) -> None:
    gw = make_gateway({"providers": {"s": {"type": "simulated", "tokens_per_second": 2000}}}, env=CAPTURE)
    chunks = list(client(gw).chat.completions.create(model="gpt-4o", messages=user_message(), stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    (span,) = gw.captured.genai_spans()
    out = json.loads(span.attributes["gen_ai.output.messages"])
    assert out[0]["parts"] == [{"type": "text", "content": text}]
    assert out[0]["finish_reason"] == "stop"
    assert span.attributes["gen_ai.request.stream"] is True
    assert span.attributes["gen_ai.usage.output_tokens"] == len(text.split())  # usage taken even if not asked
    assert span.attributes["gen_ai.response.time_to_first_chunk"] >= 0
    points = gw.captured.metric_points()
    (ttft,) = points["gen_ai.server.time_to_first_token"]
    (tpot,) = points["gen_ai.server.time_per_output_token"]
    assert ttft.count == 1 and tpot.count == 1
    assert list(ttft.explicit_bounds) == TTFT_BUCKETS
    assert tpot.sum > 0
    active = points["llm_gateway.active_streams"]
    assert sum(p.value for p in active) == 0  # back to zero after the stream


def test_metrics_have_semconv_buckets_and_trace_exemplars(gateway: Gateway) -> None:
    c = client(gateway)
    for _ in range(3):
        c.chat.completions.create(model="gpt-4o-mini", messages=user_message())
    spans = {s.context.trace_id: s for s in gateway.captured.genai_spans()}
    points = gateway.captured.metric_points()
    usage = points["gen_ai.client.token.usage"]
    assert {p.attributes["gen_ai.token.type"] for p in usage} == {"input", "output"}
    for p in usage:
        assert list(p.explicit_bounds) == TOKEN_BUCKETS
        assert p.count == 3
        assert p.attributes["gen_ai.provider.name"] == "openai"
        assert p.attributes["gen_ai.request.model"] == "gpt-4o-mini"
        assert p.attributes["gen_ai.response.model"] == "gpt-4o-mini"
        assert p.attributes["llm_gateway.tenant"] == "default"
        assert p.attributes["llm_gateway.provider.simulated"] is True
    (duration,) = points["gen_ai.client.operation.duration"]
    assert list(duration.explicit_bounds) == DURATION_BUCKETS and duration.count == 3
    # Trace-based exemplars: each links to the trace and span of a GenAI call.
    assert duration.exemplars
    for ex in duration.exemplars:
        assert ex.trace_id in spans
        assert ex.span_id == spans[ex.trace_id].context.span_id
    wait_for(
        lambda: (
            sum(p.count for p in gateway.captured.metric_points().get("http.server.request.duration", []))
            == 3
        )
    )
    http = gateway.captured.metric("http.server.request.duration")
    assert http.unit == "s"
    assert any(p.attributes.get("http.route") == "/v1/chat/completions" for p in http.data.data_points)
    names = set(gateway.captured.metric_points())
    assert "http.server.active_requests" in names
    # Body sizes are never recorded (the instrumentation gets no-op histograms for them).
    assert not names & {"http.server.request.body.size", "http.server.response.body.size"}


def test_latest_experimental_adds_inference_metrics(make_gateway: GatewayFactory) -> None:
    gw = make_gateway(
        {"providers": {"s": {"type": "simulated", "cache_hit_rate": 1.0}}},
        env={"OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental"},
    )
    c = client(gw)
    c.chat.completions.create(model="gpt-4o-mini", messages=user_message("a" * 200))
    list(c.chat.completions.create(model="gpt-4o-mini", messages=user_message(), stream=True))
    names = set(gw.captured.metric_points())
    for name in (
        "gen_ai.client.inference.duration",
        "gen_ai.client.inference.time_to_first_chunk",
        "gen_ai.client.inference.time_per_output_chunk",
        "gen_ai.client.inference.usage.input_tokens",
        "gen_ai.client.inference.usage.output_tokens",
        "gen_ai.client.inference.usage.cache_read.input_tokens",
        "gen_ai.client.token.usage",
        "gen_ai.client.operation.duration",
    ):
        assert name in names, name
    (cached,) = gw.captured.metric_points()["gen_ai.client.inference.usage.cache_read.input_tokens"]
    assert cached.sum > 0


def test_one_log_record_per_request_with_trace_ids(make_gateway: GatewayFactory) -> None:
    gw = make_gateway({"tenants": [{"name": "team-a", "keys": ["sk-a"]}]}, env=CAPTURE)
    client(gw, key="sk-a").chat.completions.create(
        model="gpt-4o-mini", messages=user_message("hello logs"), user="alice@example.com"
    )
    (span,) = gw.captured.genai_spans()
    records = [
        r
        for r in gw.captured.logs.get_finished_logs()
        if (r.log_record.attributes or {}).get("llm_gateway.request.id")
    ]
    assert len(records) == 1
    rec = records[0].log_record
    assert rec.trace_id == span.context.trace_id and rec.span_id == span.context.span_id
    attrs = dict(rec.attributes or {})
    assert attrs["llm_gateway.tenant"] == "team-a"
    assert attrs["gen_ai.request.model"] == "gpt-4o-mini"
    assert attrs["http.response.status_code"] == 200
    assert attrs["gen_ai.usage.output_tokens"] == span.attributes["gen_ai.usage.output_tokens"]
    assert attrs["llm_gateway.duration_ms"] > 0
    assert "llm_gateway.prompt.preview" not in attrs  # no content in logs, even with capture on
    assert rec.event_name == "llm_gateway.request"
    # End-user ids are pseudonymised on spans and logs, never sent raw.
    pseudo = span.attributes["enduser.pseudo.id"]
    assert attrs["enduser.pseudo.id"] == pseudo and "alice" not in pseudo
    dumped = json.dumps({k: str(v) for k, v in span.attributes.items()}) + json.dumps(attrs, default=str)
    assert "alice@example.com" not in dumped.replace("hello logs", "")


def test_no_prompt_in_logs_without_content_capture(gateway: Gateway) -> None:
    client(gateway).chat.completions.create(model="gpt-4o-mini", messages=user_message("secret prompt"))
    records = [r.log_record for r in gateway.captured.logs.get_finished_logs()]
    assert records
    assert all("secret prompt" not in json.dumps(dict(r.attributes or {}), default=str) for r in records)


def test_resource_has_service_identity(make_gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=test,team=obs")
    gw = make_gateway()
    client(gw).chat.completions.create(model="gpt-4o-mini", messages=user_message())
    (span,) = gw.captured.genai_spans()
    res = span.resource.attributes
    assert res["service.name"] == "llm-gateway"
    assert res["service.version"]
    assert res["deployment.environment.name"] == "test"
    assert res["team"] == "obs"


def test_client_disconnect_mid_stream_ends_span_with_error(make_gateway: GatewayFactory) -> None:
    gw = make_gateway(
        {
            "providers": {
                "s": {
                    "type": "simulated",
                    "tokens_per_second": 20,
                    "min_output_tokens": 60,
                    "max_output_tokens": 60,
                }
            }
        }
    )
    with (
        httpx.Client(base_url=gw.base_url, timeout=10) as http,
        http.stream(
            "POST",
            "/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": user_message(), "stream": True},
        ) as resp,
    ):
        assert resp.status_code == 200
        lines = resp.iter_lines()
        assert next(lines).startswith("data:")
    # The client is gone (60 tokens at 20/s would take 3 s): the span must end quickly with an error.
    wait_for(lambda: len(gw.captured.genai_spans()) == 1, timeout=3.0)
    (span,) = gw.captured.genai_spans()
    assert span.attributes["error.type"] == "client_disconnect"
    assert span.status.status_code == StatusCode.ERROR
    assert sum(p.value for p in gw.captured.metric_points()["llm_gateway.active_streams"]) == 0


def test_feedback_metric_and_linked_span(gateway: Gateway) -> None:
    resp = client(gateway).chat.completions.create(model="claude-3-5-haiku-latest", messages=user_message())
    assert (
        httpx.post(
            gateway.base_url + "/v1/feedback", json={"response_id": resp.id, "score": 0.25}
        ).status_code
        == 200
    )
    (point,) = gateway.captured.metric_points()["llm_gateway.feedback.score"]
    assert point.sum == 0.25 and point.count == 1
    assert point.attributes["gen_ai.response.model"] == "claude-3-5-haiku-latest"
    assert point.attributes["gen_ai.provider.name"] == "anthropic"
    (genai,) = gateway.captured.genai_spans()
    (fb,) = [s for s in gateway.captured.finished_spans() if s.name == "feedback"]
    assert fb.links[0].context.span_id == genai.context.span_id
    assert fb.attributes["gen_ai.evaluation.score.value"] == 0.25


def test_every_error_is_counted_once(make_gateway: GatewayFactory) -> None:
    gw = make_gateway(
        {"tenants": [{"name": "t", "keys": ["k"]}], "routes": [{"model": "m", "provider": "simulated"}]}
    )
    auth = {"authorization": "Bearer k"}
    url = gw.base_url + "/v1/chat/completions"
    httpx.post(url, json={"model": "m", "messages": user_message()})
    httpx.post(url, json={"model": "m", "messages": []}, headers=auth)
    httpx.post(url, json={"model": "other", "messages": user_message()}, headers=auth)
    httpx.post(
        url, json={"model": "m", "messages": user_message()}, headers={**auth, "x-simulated-fault": "429"}
    )
    errors = {
        (p.attributes["error.type"], p.attributes["http.response.status_code"]): p.value
        for p in gw.captured.metric_points()["llm_gateway.errors"]
    }
    assert errors == {
        ("invalid_api_key", 401): 1,
        ("invalid_request", 400): 1,
        ("model_not_found", 404): 1,
        ("429", 429): 1,
    }
    # Only the call that reached a provider has a GenAI span.
    assert [s.attributes["error.type"] for s in gw.captured.genai_spans()] == ["429"]


def test_sdk_disabled_emits_nothing_and_still_serves(make_gateway: GatewayFactory) -> None:
    gw = make_gateway(env={"OTEL_SDK_DISABLED": "true"})
    resp = client(gw).chat.completions.create(model="gpt-4o-mini", messages=user_message())
    assert resp.choices[0].message.content
    assert gw.captured.telemetry.enabled is False
    assert gw.captured.finished_spans() == []


def test_unexpected_provider_failure_is_a_500_with_an_ended_span(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.providers.simulated import SimulatedProvider

    async def broken(self: SimulatedProvider, call: Any) -> dict[str, Any]:
        raise RuntimeError("boom")

    monkeypatch.setattr(SimulatedProvider, "complete", broken)
    raw = httpx.post(
        gateway.base_url + "/v1/chat/completions", json={"model": "m", "messages": user_message()}
    )
    assert raw.status_code == 500
    assert raw.json()["error"]["code"] == "internal_error" and "boom" not in raw.text
    (span,) = gateway.captured.genai_spans()
    assert span.attributes["error.type"] == "RuntimeError"
    (err,) = gateway.captured.metric_points()["llm_gateway.errors"]
    assert err.value == 1 and err.attributes["error.type"] == "RuntimeError"

    # Streams too: the first chunk never comes.
    async def broken_stream(self: SimulatedProvider, call: Any) -> AsyncIterator[dict[str, Any]]:
        raise RuntimeError("boom")
        yield {}  # an async generator, like every provider's stream()

    monkeypatch.setattr(SimulatedProvider, "stream", broken_stream)
    raw = httpx.post(
        gateway.base_url + "/v1/chat/completions",
        json={"model": "m", "messages": user_message(), "stream": True},
    )
    assert raw.status_code == 500
    assert sum(p.value for p in gateway.captured.metric_points()["llm_gateway.errors"]) == 2
    assert [s.attributes["error.type"] for s in gateway.captured.genai_spans()] == ["RuntimeError"] * 2
