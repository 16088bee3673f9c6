"""The simulated provider: deterministic text, token accounting, cache hits and seeded fault injection."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from app.config import ProviderConfig, SimulatedSettings
from app.providers.base import ChatCall, ProviderError, SimulatedDisconnect, StreamBroken, UpstreamTimeout
from app.providers.simulated import SimulatedProvider, count_prompt_tokens, provider_name_for_model


def provider(**settings: Any) -> SimulatedProvider:
    return SimulatedProvider(
        ProviderConfig(id="sim", type="simulated", simulated=SimulatedSettings(**settings))
    )


def call(text: str = "hello", model: str = "gpt-4o-mini", stream: bool = False, **body: Any) -> ChatCall:
    return ChatCall(
        body={"model": model, "messages": [{"role": "user", "content": text}], **body},
        upstream_model=model,
        stream=stream,
    )


async def collect(p: SimulatedProvider, c: ChatCall) -> list[dict[str, Any]]:
    return [chunk async for chunk in p.stream(c)]


async def test_same_prompt_same_answer_different_seed_different_answer() -> None:
    a = await provider(seed=1).complete(call("explain otlp"))
    b = await provider(seed=1).complete(call("explain otlp"))
    c = await provider(seed=2).complete(call("explain otlp"))
    text = a["choices"][0]["message"]["content"]
    assert text == b["choices"][0]["message"]["content"]
    assert text != c["choices"][0]["message"]["content"]
    assert a["system_fingerprint"] == "fp_simulated"
    assert a["id"] != b["id"]


async def test_usage_counts_are_consistent_with_the_text() -> None:
    p = provider(min_output_tokens=10, max_output_tokens=10)
    out = await p.complete(call("x" * 400))
    usage = out["usage"]
    assert usage["completion_tokens"] == 10 == len(out["choices"][0]["message"]["content"].split())
    assert usage["prompt_tokens"] == count_prompt_tokens([{"role": "user", "content": "x" * 400}]) == 107
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


async def test_max_tokens_truncates_with_finish_reason_length() -> None:
    out = await provider(min_output_tokens=20, max_output_tokens=20).complete(call(max_tokens=5))
    assert out["choices"][0]["finish_reason"] == "length"
    assert out["usage"]["completion_tokens"] == 5


async def test_stream_assembles_to_the_non_stream_answer() -> None:
    p = provider(seed=3)
    full = await p.complete(call("same question"))
    chunks = await collect(p, call("same question", stream=True))
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == full["choices"][0]["message"]["content"]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == len(chunks) - 3


async def test_cache_hits_report_cached_input_tokens() -> None:
    p = provider(cache_hit_rate=1.0, cached_input_share=0.5)
    out = await p.complete(call("y" * 800))
    assert out["usage"]["prompt_tokens_details"]["cached_tokens"] == out["usage"]["prompt_tokens"] // 2
    none = await provider(cache_hit_rate=0.0).complete(call("y" * 800))
    assert none["usage"]["prompt_tokens_details"]["cached_tokens"] == 0


def test_fault_sequence_is_seeded_and_follows_the_rates() -> None:
    settings = {
        "seed": 11,
        "error_rate_429": 0.2,
        "error_rate_500": 0.1,
        "error_rate_timeout": 0.05,
        "error_rate_disconnect": 0.05,
    }
    a = [provider(**settings).next_fault(None) for _ in range(1)]
    p1, p2 = provider(**settings), provider(**settings)
    seq1 = [p1.next_fault(None) for _ in range(4000)]
    seq2 = [p2.next_fault(None) for _ in range(4000)]
    assert seq1 == seq2 and a[0] == seq1[0]
    share = {f: seq1.count(f) / len(seq1) for f in ("429", "500", "timeout", "disconnect", None)}
    assert share["429"] == pytest.approx(0.2, abs=0.03)
    assert share["500"] == pytest.approx(0.1, abs=0.03)
    assert share["timeout"] == pytest.approx(0.05, abs=0.02)
    assert share["disconnect"] == pytest.approx(0.05, abs=0.02)
    assert share[None] == pytest.approx(0.6, abs=0.04)


async def test_injected_faults_raise_the_right_errors() -> None:
    p = provider(retry_after_ms=1500, timeout_after_s=0.01)
    with pytest.raises(ProviderError) as info:
        await p.complete(ChatCall(body={"messages": []}, upstream_model="m", stream=False, fault="429"))
    assert info.value.status == 429 and info.value.retry_after_s == 1.5
    with pytest.raises(ProviderError) as info:
        await p.complete(ChatCall(body={"messages": []}, upstream_model="m", stream=False, fault="500"))
    assert info.value.status == 500
    with pytest.raises(UpstreamTimeout):
        await p.complete(ChatCall(body={"messages": []}, upstream_model="m", stream=False, fault="timeout"))
    with pytest.raises(StreamBroken):
        await p.complete(
            ChatCall(body={"messages": []}, upstream_model="m", stream=False, fault="disconnect")
        )
    got: list[dict[str, Any]] = []
    with pytest.raises(SimulatedDisconnect):
        async for chunk in p.stream(
            ChatCall(body={"messages": []}, upstream_model="m", stream=True, fault="disconnect")
        ):
            got.append(chunk)
    assert got, "a mid-stream disconnect happens after the stream started"


def test_fault_header_can_be_disabled() -> None:
    assert provider().next_fault("500") == "500"
    assert provider(allow_fault_header=False).next_fault("500") is None


async def test_latency_settings_are_applied() -> None:
    p = provider(ttft_ms=50, tokens_per_second=200, min_output_tokens=11, max_output_tokens=11)
    loop = asyncio.get_running_loop()
    start = loop.time()
    chunks = await collect(p, call(stream=True))
    elapsed = loop.time() - start
    # 50 ms to the first token, then 10 gaps of 5 ms: at least 0.1 s (upper bounds are not asserted).
    assert elapsed >= 0.095
    assert len([c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")]) == 11


@pytest.mark.parametrize(
    ("model", "name"),
    [
        ("gpt-4o-mini", "openai"),
        ("o3-mini", "openai"),
        ("claude-3-5-haiku-latest", "anthropic"),
        ("gemini-2.0-flash", "gcp.gemini"),
        ("llama3", "simulated"),
    ],
)
def test_provider_name_follows_the_model_family(model: str, name: str) -> None:
    assert provider_name_for_model(model) == name
    explicit = SimulatedProvider(ProviderConfig(id="s", type="simulated", provider_name="openai"))
    assert explicit.provider_name_for(model) == "openai"
