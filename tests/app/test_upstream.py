"""The openai-compatible provider against a second gateway (simulated mode) over real HTTP."""

from __future__ import annotations

import time
from typing import Any

import httpx
import openai
import pytest
from opentelemetry.trace import SpanKind

from app.config import ProviderConfig, SimulatedSettings
from app.providers.simulated import SimulatedProvider
from tests.app.conftest import Gateway, GatewayFactory, free_socket, user_message


def upstream_config(base_url: str, **provider: Any) -> dict[str, Any]:
    return {
        "providers": {
            "up": {
                "type": "openai-compatible",
                "base_url": base_url,
                "backoff_base_s": 0.01,
                "backoff_max_s": 0.05,
                **provider,
            }
        }
    }


def client(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.openai_base_url, api_key="x", max_retries=0, timeout=15)


def test_proxies_completions_and_streams_with_upstream_usage(make_gateway: GatewayFactory) -> None:
    upstream = make_gateway({"tenants": [{"name": "proxy", "keys": ["sk-up"]}]})
    gw = make_gateway(upstream_config(upstream.openai_base_url, api_key="sk-up"))
    c = client(gw)
    resp = c.chat.completions.create(model="gpt-4o-mini", messages=user_message(), max_tokens=12)
    assert resp.system_fingerprint == "fp_simulated"  # it really came from the upstream gateway
    stream = list(c.chat.completions.create(model="gpt-4o-mini", messages=user_message(), stream=True))
    assert stream and all(ch.usage is None for ch in stream)  # not asked for: stripped
    streamed_text = "".join(ch.choices[0].delta.content or "" for ch in stream if ch.choices)

    non_stream_span, stream_span = sorted(gw.captured.genai_spans(), key=lambda s: s.start_time)
    a = non_stream_span.attributes
    assert a["server.address"] == "127.0.0.1" and a["server.port"] == upstream.server.port
    assert a["gen_ai.provider.name"] == "openai"
    assert a["llm_gateway.provider.simulated"] is False
    assert resp.usage is not None and a["gen_ai.usage.output_tokens"] == resp.usage.completion_tokens
    # The gateway asked the upstream for usage on the stream, for its own telemetry.
    assert stream_span.attributes["gen_ai.usage.output_tokens"] == len(streamed_text.split())
    # One HTTP client span per upstream call, child of the GenAI span.
    http_spans = [s for s in gw.captured.finished_spans() if s.kind == SpanKind.CLIENT and s.name == "POST"]
    assert len(http_spans) == 2
    assert {s.parent.span_id for s in http_spans} == {
        non_stream_span.context.span_id,
        stream_span.context.span_id,
    }
    # And the upstream saw the same trace: W3C context is propagated over HTTP.
    up_traces = {s.context.trace_id for s in upstream.captured.genai_spans()}
    assert up_traces == {non_stream_span.context.trace_id, stream_span.context.trace_id}


def test_retries_honour_retry_after_then_give_up(make_gateway: GatewayFactory) -> None:
    upstream = make_gateway(
        {"providers": {"s": {"type": "simulated", "error_rate_429": 1.0, "retry_after_ms": 300}}}
    )
    gw = make_gateway(upstream_config(upstream.openai_base_url, max_retries=2))
    start = time.monotonic()
    with pytest.raises(openai.RateLimitError) as info:
        client(gw).chat.completions.create(model="gpt-4o-mini", messages=user_message())
    elapsed = time.monotonic() - start
    assert elapsed >= 0.55  # two waits of Retry-After (300 ms), not the 10-50 ms backoff
    assert info.value.response.headers["retry-after-ms"] == "300"
    assert len(upstream.captured.genai_spans()) == 3  # 1 try + 2 retries reached the upstream
    (span,) = gw.captured.genai_spans()
    retry_events = [e for e in span.events if e.name == "gen_ai.upstream.retry"]
    assert [e.attributes["llm_gateway.retry.attempt"] for e in retry_events] == [1, 2]
    assert span.attributes["error.type"] == "429"
    (retries,) = gw.captured.metric_points()["llm_gateway.upstream.retries"]
    assert retries.value == 2 and retries.attributes["error.type"] == "429"


def test_seeded_upstream_faults_are_retried_exactly(make_gateway: GatewayFactory) -> None:
    settings = {"seed": 3, "error_rate_500": 0.7}
    upstream = make_gateway({"providers": {"s": {"type": "simulated", **settings}}})
    gw = make_gateway(upstream_config(upstream.openai_base_url, max_retries=2))
    # Replay the upstream's fault sequence to know exactly what must happen.
    replica = SimulatedProvider(
        ProviderConfig(id="r", type="simulated", simulated=SimulatedSettings(**settings))
    )
    expected_ok, expected_retries = 0, 0
    for _ in range(8):
        for attempt in range(3):
            if replica.next_fault(None) is None:
                expected_ok += 1
                break
            if attempt < 2:
                expected_retries += 1
    got_ok = 0
    for _ in range(8):
        try:
            client(gw).chat.completions.create(model="gpt-4o-mini", messages=user_message())
            got_ok += 1
        except openai.InternalServerError:
            pass
    assert 0 < expected_ok < 8  # the seed gives a mix, so this test means something
    assert got_ok == expected_ok
    points = gw.captured.metric_points().get("llm_gateway.upstream.retries", [])
    assert sum(p.value for p in points) == expected_retries


def test_mid_stream_upstream_failure_becomes_an_error_event(make_gateway: GatewayFactory) -> None:
    upstream = make_gateway(
        {
            "providers": {
                "s": {
                    "type": "simulated",
                    "error_rate_disconnect": 1.0,
                    "min_output_tokens": 20,
                    "max_output_tokens": 20,
                }
            }
        }
    )
    gw = make_gateway(upstream_config(upstream.openai_base_url, max_retries=0))
    stream = client(gw).chat.completions.create(model="gpt-4o-mini", messages=user_message(), stream=True)
    got = []
    with pytest.raises(openai.APIError) as info:
        for chunk in stream:
            got.append(chunk)
    assert got and "upstream" in str(info.value.message)
    (span,) = gw.captured.genai_spans()
    assert span.attributes["error.type"] == "upstream_disconnect"
    assert sum(p.value for p in gw.captured.metric_points()["llm_gateway.active_streams"]) == 0
    with pytest.raises(openai.APIStatusError) as status:
        client(gw).chat.completions.create(model="gpt-4o-mini", messages=user_message())
    assert status.value.status_code == 502


def test_unreachable_upstream_is_502_and_not_ready(make_gateway: GatewayFactory) -> None:
    sock = free_socket()  # bound but never listening: connections are refused
    port = sock.getsockname()[1]
    try:
        gw = make_gateway(upstream_config(f"http://127.0.0.1:{port}/v1", max_retries=1, connect_timeout_s=1))
        with pytest.raises(openai.APIStatusError) as info:
            client(gw).chat.completions.create(model="gpt-4o-mini", messages=user_message())
        assert info.value.status_code == 502 and info.value.code == "upstream_unreachable"
        (span,) = gw.captured.genai_spans()
        assert span.attributes["error.type"] == "connect_error"
        (retries,) = gw.captured.metric_points()["llm_gateway.upstream.retries"]
        assert retries.value == 1
        ready = httpx.get(gw.base_url + "/readyz")
        assert ready.status_code == 503 and ready.json()["providers"]["up"]["ready"] is False
    finally:
        sock.close()


def test_upstream_timeout_is_504(make_gateway: GatewayFactory) -> None:
    upstream = make_gateway(
        {"providers": {"s": {"type": "simulated", "error_rate_timeout": 1.0, "timeout_after_s": 1.0}}}
    )
    gw = make_gateway(upstream_config(upstream.openai_base_url, timeout_s=0.3, max_retries=0))
    with pytest.raises(openai.APIStatusError) as info:
        client(gw).chat.completions.create(model="gpt-4o-mini", messages=user_message())
    assert info.value.status_code == 504
    (span,) = gw.captured.genai_spans()
    assert span.attributes["error.type"] == "timeout"
    assert httpx.get(gw.base_url + "/readyz").status_code == 200


@pytest.mark.e2e
def test_client_disconnect_cancels_the_upstream_request(make_gateway: GatewayFactory) -> None:
    upstream = make_gateway(
        {
            "providers": {
                "s": {
                    "type": "simulated",
                    "tokens_per_second": 20,
                    "min_output_tokens": 80,
                    "max_output_tokens": 80,
                }
            }
        }
    )
    gw = make_gateway(upstream_config(upstream.openai_base_url))
    with (
        httpx.Client(base_url=gw.base_url, timeout=10) as http,
        http.stream(
            "POST",
            "/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": user_message(), "stream": True},
        ) as resp,
    ):
        assert next(resp.iter_lines()).startswith("data:")
    deadline = time.monotonic() + 3.0  # the full stream would take 4 s
    while len(upstream.captured.genai_spans()) < 1 or len(gw.captured.genai_spans()) < 1:
        assert time.monotonic() < deadline, "the upstream stream was not cancelled"
        time.sleep(0.02)
    assert gw.captured.genai_spans()[0].attributes["error.type"] == "client_disconnect"
    assert upstream.captured.genai_spans()[0].attributes["error.type"] == "client_disconnect"
