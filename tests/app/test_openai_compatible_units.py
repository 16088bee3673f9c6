"""Pure parts of the openai-compatible provider: Retry-After parsing and backoff bounds."""

from __future__ import annotations

import email.utils
import time

import httpx
import pytest

from app.config import ProviderConfig
from app.providers.openai_compatible import OpenAICompatibleProvider, parse_retry_after


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
