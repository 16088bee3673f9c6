"""What a relayed stream gives the client and the span, with content capture on or off and telemetry off.

ChatStream keeps a choice's text only for output-message capture; without it, the finish reasons (and which
choices there were) must still be exactly those of the whole walk, and the client's bytes the same.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from app import jsonio
from app.chat import ChatStream


class _Instrument:
    def add(self, *args: Any, **kwargs: Any) -> None:
        pass


class _Metrics:
    active_streams = _Instrument()
    latest = False


class _Meta:
    tenant = "t"


class _Call:
    """What ChatStream reads of a GenAICall, recording what it is finished with."""

    def __init__(self, telemetry: bool, capture: bool) -> None:
        self.telemetry = telemetry
        self.capture = capture
        self.metrics = _Metrics()
        self.meta = _Meta()
        self.context = None
        self.started = 0.0
        self.finished = False
        self.finish_kwargs: dict[str, Any] = {}

    def finish(self, **kwargs: Any) -> None:
        self.finished = True
        self.finish_kwargs = kwargs


def _reference(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """The span's view of a stream, by the plain walk over every choice (what ChatStream did before)."""
    contents: dict[int, list[str]] = {}
    finish: dict[int, str] = {}
    fingerprint = response_id = model = usage = None
    for chunk in chunks:
        response_id = response_id or chunk.get("id")
        model = chunk.get("model") or model
        fingerprint = chunk.get("system_fingerprint") or fingerprint
        for choice in chunk.get("choices") or ():
            idx = int(choice.get("index", 0))
            delta = choice.get("delta") or {}
            if isinstance(delta.get("content"), str):
                contents.setdefault(idx, []).append(delta["content"])
            if choice.get("finish_reason"):
                finish[idx] = str(choice["finish_reason"])
        usage = chunk.get("usage") or usage
    indexes = sorted(contents.keys() | finish.keys())
    return {
        "response_id": response_id,
        "response_model": model,
        "finish_reasons": [finish.get(i, "error") for i in indexes],
        "usage": usage,
        "system_fingerprint": fingerprint,
        "choices": [
            {
                "index": i,
                "message": {"role": "assistant", "content": "".join(contents.get(i, []))},
                "finish_reason": finish.get(i),
            }
            for i in indexes
        ],
    }


BASE = {"object": "chat.completion.chunk", "created": 1, "model": "m-1"}
STREAMS = {
    "openai": [
        {**BASE, "id": "c1", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
        *({**BASE, "id": "c1", "choices": [{"index": 0, "delta": {"content": w}}]} for w in ("Hi", " there")),
        {**BASE, "id": "c1", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {**BASE, "id": "c1", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}},
    ],
    "several choices, odd deltas": [
        {"object": "x", "choices": [{"index": 1, "delta": {"role": "assistant"}}], "system_fingerprint": ""},
        {
            **BASE,
            "id": "c2",
            "choices": [{"index": "1", "delta": {"content": "b"}}, {"delta": {"content": "a"}}],
        },
        {**BASE, "model": "", "choices": [{"index": 2, "delta": {"tool_calls": [{"index": 0}]}}]},
        {**BASE, "choices": [{"index": 3, "delta": {"content": None}, "finish_reason": "tool_calls"}]},
        {**BASE, "choices": [{"index": 4, "delta": None}, {"index": 5, "delta": {"content": ""}}]},
        {**BASE, "system_fingerprint": "fp_1", "choices": [{"index": 0, "delta": {}, "finish_reason": 7}]},
        {
            **BASE,
            "model": "m-2",
            "choices": [{"index": 1, "delta": {"content": "c"}, "finish_reason": "length"}],
        },
        {**BASE, "choices": [{"index": 6, "delta": {}, "finish_reason": ""}], "usage": {"prompt_tokens": 1}},
    ],
    "no choices at all": [{**BASE, "id": "c3"}, {**BASE, "choices": None, "usage": {"completion_tokens": 0}}],
}


def _relay(chunks: list[dict[str, Any]], telemetry: bool, capture: bool, include_usage: bool) -> Any:
    call = _Call(telemetry, capture)
    raws = [json.dumps(c, separators=(",", ":")).encode() for c in chunks]
    batch = [(jsonio.loads(raw), raw) for raw in raws]
    stream = ChatStream(call, None, batch, 0.001, include_usage)  # type: ignore[arg-type]
    sent = stream._events(batch[:1]) + stream._events(batch[1:])  # as two writes
    stream._finalize(200)
    return sent, call.finish_kwargs


@pytest.mark.parametrize("include_usage", [True, False])
@pytest.mark.parametrize("name", list(STREAMS))
def test_the_span_and_the_client_get_the_same_with_capture_on_or_off(name: str, include_usage: bool) -> None:
    chunks = STREAMS[name]
    expected = _reference(chunks)
    off_bytes, off = _relay(chunks, telemetry=False, capture=False, include_usage=include_usage)
    results = {}
    for capture in (False, True):
        sent, kwargs = _relay(chunks, telemetry=True, capture=capture, include_usage=include_usage)
        assert sent == off_bytes  # the client's bytes do not depend on telemetry
        for key in ("response_id", "response_model", "finish_reasons", "usage", "system_fingerprint"):
            assert kwargs[key] == expected[key], key
        assert kwargs["choices"] == (expected["choices"] if capture else None)
        results[capture] = {k: v for k, v in kwargs.items() if k not in ("choices", "stream_end_s")}
    assert results[False] == results[True]
    # Without telemetry: what the request log and the response index need, nothing for the span.
    assert (off["response_id"], off["response_model"], off["usage"]) == (
        expected["response_id"],
        expected["response_model"],
        expected["usage"],
    )


def test_a_malformed_choice_fails_the_stream_with_capture_on_or_off() -> None:
    chunks = [{**BASE, "choices": [{"index": 0, "delta": ["not", "an", "object"]}]}]
    for capture in (False, True):
        with pytest.raises(AttributeError):
            _relay(chunks, telemetry=True, capture=capture, include_usage=True)
