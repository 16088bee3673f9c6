"""The real `openai` client (sync and async, streaming and not, error cases) against a served gateway."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.app.conftest import Gateway, GatewayFactory, user_message

KEYED = {
    "tenants": [{"name": "team-a", "keys": ["sk-a"]}, {"name": "team-b", "keys": ["sk-b"]}],
    "routes": [
        {"model": "gpt-4o-mini", "provider": "simulated"},
        {"model": "claude-3-5-haiku-latest", "provider": "simulated"},
    ],
    "aliases": {"fast": "gpt-4o-mini"},
}


def client(gw: Gateway, key: str = "none", **kw: object) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.openai_base_url, api_key=key, max_retries=0, timeout=10, **kw)


def test_sync_non_stream(gateway: Gateway) -> None:
    resp = client(gateway).chat.completions.create(
        model="gpt-4o-mini", messages=user_message(), max_tokens=20, temperature=0.2
    )
    assert resp.object == "chat.completion"
    assert resp.model == "gpt-4o-mini"
    assert resp.system_fingerprint == "fp_simulated"
    assert resp.choices[0].message.role == "assistant"
    assert resp.choices[0].message.content
    assert resp.usage is not None and resp.usage.completion_tokens > 0
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens


def test_sync_stream_with_include_usage(gateway: Gateway) -> None:
    stream = client(gateway).chat.completions.create(
        model="claude-3-5-haiku-latest",
        messages=user_message(),
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    usage_chunks = [c for c in chunks if c.usage is not None]
    assert text
    assert len(usage_chunks) == 1 and usage_chunks[0].choices == []
    assert usage_chunks[0].usage is not None and usage_chunks[0].usage.completion_tokens == len(text.split())
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        "stop"
    ]


def test_stream_without_include_usage_has_no_usage(gateway: Gateway) -> None:
    chunks = list(
        client(gateway).chat.completions.create(model="gpt-4o", messages=user_message(), stream=True)
    )
    assert chunks and all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)


async def test_async_non_stream_and_stream(gateway: Gateway) -> None:
    aclient = openai.AsyncOpenAI(base_url=gateway.openai_base_url, api_key="x", max_retries=0, timeout=10)
    try:
        resp = await aclient.chat.completions.create(model="gpt-4o-mini", messages=user_message("one"))
        stream = await aclient.chat.completions.create(
            model="gpt-4o-mini", messages=user_message("one"), stream=True
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    finally:
        await aclient.close()
    assert text == resp.choices[0].message.content  # deterministic simulated text


async def test_async_errors_and_client_retries(gateway: Gateway) -> None:
    """The client's own retry logic sees what it expects: 429 with retry-after-ms, retried, then raised."""
    aclient = openai.AsyncOpenAI(
        base_url=gateway.openai_base_url,
        api_key="x",
        max_retries=1,
        timeout=10,
        default_headers={"X-Simulated-Fault": "429"},
    )
    try:
        with pytest.raises(openai.RateLimitError):
            await aclient.chat.completions.create(model="gpt-4o-mini", messages=user_message())
        stream = await aclient.chat.completions.create(
            model="gpt-4o-mini",
            messages=user_message(),
            stream=True,
            extra_headers={"X-Simulated-Fault": "disconnect"},
        )
        with pytest.raises((openai.APIConnectionError, httpx.HTTPError)):
            async for _ in stream:
                pass
    finally:
        await aclient.close()
    # max_retries=1: the 429 was tried twice, the broken stream once.
    assert [s.attributes.get("error.type") for s in gateway.captured.genai_spans()] == [
        "429",
        "429",
        "simulated_disconnect",
    ]


def test_models_list(gateway: Gateway) -> None:
    models = {m.id: m.owned_by for m in client(gateway).models.list()}
    assert models["gpt-4o-mini"] == "openai"
    assert models["claude-3-5-haiku-latest"] == "anthropic"


def test_auth_keys_and_401(make_gateway: GatewayFactory) -> None:
    gw = make_gateway(KEYED)
    with pytest.raises(openai.AuthenticationError) as info:
        client(gw, key="wrong").chat.completions.create(model="gpt-4o-mini", messages=user_message())
    assert info.value.status_code == 401
    assert info.value.code == "invalid_api_key"
    raw = httpx.post(
        gw.base_url + "/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": user_message()}
    )
    assert raw.status_code == 401 and raw.json()["error"]["type"] == "invalid_request_error"
    ok = client(gw, key="sk-b").chat.completions.create(model="fast", messages=user_message())
    assert ok.model == "gpt-4o-mini"  # the alias resolved


def test_unknown_model_is_404(make_gateway: GatewayFactory) -> None:
    gw = make_gateway(KEYED)
    with pytest.raises(openai.NotFoundError) as info:
        client(gw, key="sk-a").chat.completions.create(model="gpt-9", messages=user_message())
    assert info.value.code == "model_not_found"
    assert {m.id for m in client(gw, key="sk-a").models.list()} == {
        "gpt-4o-mini",
        "claude-3-5-haiku-latest",
        "fast",
    }


def test_bad_requests_are_400_naming_the_field(gateway: Gateway) -> None:
    c = client(gateway)
    with pytest.raises(openai.BadRequestError) as info:
        c.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "robot", "content": "x"}])
    assert info.value.param == "messages.0.role"
    with pytest.raises(openai.BadRequestError) as info:
        c.chat.completions.create(model="gpt-4o-mini", messages=user_message(), temperature=7)
    assert info.value.param == "temperature"
    with pytest.raises(openai.BadRequestError) as info:
        c.chat.completions.create(
            model="gpt-4o-mini", messages=user_message(), stream_options={"include_usage": True}
        )
    assert info.value.param == "stream_options"
    raw = httpx.post(
        gateway.base_url + "/v1/chat/completions",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert raw.status_code == 400 and "JSON" in raw.json()["error"]["message"]
    raw = httpx.post(gateway.base_url + "/v1/chat/completions", json={"messages": user_message()})
    assert raw.status_code == 400 and raw.json()["error"]["param"] == "model"


def test_rate_limit_is_429_with_retry_after(gateway: Gateway) -> None:
    c = client(gateway, default_headers={"X-Simulated-Fault": "429"})
    with pytest.raises(openai.RateLimitError) as info:
        c.chat.completions.create(model="gpt-4o-mini", messages=user_message())
    assert info.value.response.headers["retry-after-ms"] == "1000"
    assert info.value.response.headers["retry-after"] == "1"
    with pytest.raises(openai.InternalServerError):
        client(gateway, default_headers={"X-Simulated-Fault": "500"}).chat.completions.create(
            model="gpt-4o-mini", messages=user_message()
        )
    # Faults before the first chunk of a stream are plain HTTP errors too.
    with pytest.raises(openai.RateLimitError):
        c.chat.completions.create(model="gpt-4o-mini", messages=user_message(), stream=True)


def test_timeout_is_504(make_gateway: GatewayFactory) -> None:
    gw = make_gateway({"providers": {"sim": {"type": "simulated", "timeout_after_s": 0.05}}})
    with pytest.raises(openai.APIStatusError) as info:
        client(gw, default_headers={"X-Simulated-Fault": "timeout"}).chat.completions.create(
            model="gpt-4o-mini", messages=user_message()
        )
    assert info.value.status_code == 504 and info.value.code == "timeout"


def test_mid_stream_disconnect_breaks_the_client_stream(gateway: Gateway) -> None:
    c = client(gateway, default_headers={"X-Simulated-Fault": "disconnect"})
    stream = c.chat.completions.create(model="gpt-4o-mini", messages=user_message(), stream=True)
    received = []
    with pytest.raises((openai.APIConnectionError, httpx.HTTPError)):
        for chunk in stream:
            received.append(chunk)
    assert received, "the stream started before it broke"
    # A non-streaming call with the same fault maps to 502.
    with pytest.raises(openai.APIStatusError) as info:
        c.chat.completions.create(model="gpt-4o-mini", messages=user_message())
    assert info.value.status_code == 502


def test_health_and_readiness(gateway: Gateway) -> None:
    assert httpx.get(gateway.base_url + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(gateway.base_url + "/readyz")
    assert ready.status_code == 200 and ready.json()["providers"]["simulated"]["simulated"] is True
    assert httpx.get(gateway.base_url + "/metrics").status_code == 404  # OTLP only


def test_feedback_roundtrip(make_gateway: GatewayFactory) -> None:
    gw = make_gateway(KEYED)
    resp = client(gw, key="sk-a").chat.completions.create(model="gpt-4o-mini", messages=user_message())
    ok = httpx.post(
        gw.base_url + "/v1/feedback",
        json={"response_id": resp.id, "score": 1},
        headers={"authorization": "Bearer sk-a"},
    )
    assert ok.status_code == 200 and ok.json()["recorded"] is True
    other_tenant = httpx.post(
        gw.base_url + "/v1/feedback",
        json={"response_id": resp.id, "score": 1},
        headers={"authorization": "Bearer sk-b"},
    )
    assert other_tenant.status_code == 404
    bad = httpx.post(
        gw.base_url + "/v1/feedback",
        json={"response_id": resp.id, "score": 3},
        headers={"authorization": "Bearer sk-a"},
    )
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "score"
