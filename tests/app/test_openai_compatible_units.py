"""Parts of the openai-compatible provider: Retry-After parsing, backoff bounds, reading stream events."""

from __future__ import annotations

import asyncio
import email.utils
import time
from typing import Any

import httpx
import pytest

from app.config import ProviderConfig
from app.providers.base import ChatCall, ProviderError
from app.providers.openai_compatible import OpenAICompatibleProvider, _chunk, parse_retry_after


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),  # the precise one wins
        ({"retry-after": "2"}, 2.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after-ms": "junk", "retry-after": "3"}, 3.0),
        ({"retry-after": "-4"}, 0.0),
        ({}, None),
        ({"retry-after": "soon"}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(httpx.Headers(headers)) == expected


def test_parse_retry_after_http_date() -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    value = parse_retry_after(httpx.Headers({"retry-after": when}))
    assert value is not None and 25 <= value <= 31


async def test_backoff_is_exponential_jittered_capped_and_yields_to_retry_after() -> None:
    provider = OpenAICompatibleProvider(
        ProviderConfig(
            id="u",
            type="openai-compatible",
            base_url="http://127.0.0.1:9/v1",
            backoff_base_s=0.1,
            backoff_max_s=0.5,
        )
    )
    try:
        for attempt, cap in [(0, 0.1), (1, 0.2), (2, 0.4), (3, 0.5), (10, 0.5)]:
            delays = [provider._backoff(attempt, None) for _ in range(200)]
            assert all(cap / 2 <= d <= cap for d in delays)
            assert max(delays) - min(delays) > cap / 10  # jittered, not constant
        assert provider._backoff(5, 1.25) == 1.25
        assert provider.server_address == "127.0.0.1" and provider.server_port == 9
    finally:
        await provider.aclose()


async def _stream_from(events: list[bytes]) -> tuple[list[tuple[Any, bytes | None]], ProviderError | None]:
    """What stream_batches yields for these SSE data payloads, sent by a real HTTP server in one write."""
    body = b"".join(b"data: " + e + b"\n\n" for e in events) + b"data: [DONE]\n\n"

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        head = f"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {len(body)}\r\n\r\n"
        writer.write(head.encode() + body)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    provider = OpenAICompatibleProvider(
        ProviderConfig(id="u", type="openai-compatible", base_url=f"http://127.0.0.1:{port}/v1")
    )
    call = ChatCall(body={"messages": []}, upstream_model="m", stream=True)
    got: list[tuple[Any, bytes | None]] = []
    error = None
    try:
        async for batch in provider.stream_batches(call):
            got.extend(batch)
    except ProviderError as exc:
        error = exc
    finally:
        await provider.aclose()
        server.close()
        await server.wait_closed()
    return got, error


@pytest.mark.parametrize(
    "event",
    [
        b'{"error": {"message": "overloaded"}}',  # an error event: upstream_stream_error
        b'{"id": "x", "error": null}',  # "error" but not an object: a chunk like any other
        b'{"error": "flat"}',
        b"null",
        b"7",
        b'["a"]',
        b'{"v": NaN}',  # json reads it, orjson does not
        b'{"v": 1e999}',
        b'{"v": 123456789012345678901234567890}',
        b'{"v": ',  # invalid JSON: invalid_upstream_response
        b"\xff",
    ],
)
async def test_stream_events_are_read_as_the_general_path_reads_them(event: bytes) -> None:
    """The inline orjson read of each event gives what ``_chunk`` (jsonio, the error-event check) gives, for
    the events that are not plain error-free objects; the chunks before a failing event still arrive."""
    before = b'{"id": "c", "choices": [{"index": 0, "delta": {"content": "hi"}}]}'
    got, error = await _stream_from([before, event, before])
    try:
        expected = _chunk(event)
    except ProviderError as exc:
        assert error is not None and (error.status, error.error_type) == (exc.status, exc.error_type)
        assert [raw for _, raw in got] == [before]
        return
    assert error is None
    assert [raw for _, raw in got] == [before, event, before]
    value = got[1][0]
    assert type(value) is type(expected)
    assert value == expected or (value != value and expected != expected)  # NaN inside: compared by repr
    assert repr(value) == repr(expected)
