"""Upstream provider for any OpenAI-compatible API (OpenAI, Ollama, vLLM, another gateway).

Retries connect errors, 429 and 5xx with exponential backoff and full jitter, honouring ``Retry-After``
(``retry-after-ms`` first, then ``retry-after`` seconds or HTTP date). Streams are passed through chunk by
chunk; usage is always requested from the upstream so token telemetry is exact.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx

from app.config import ProviderConfig
from app.providers.base import ChatCall, ProviderError, StreamBroken, UpstreamTimeout

RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER_S = 60.0


def parse_retry_after(headers: httpx.Headers) -> float | None:
    """Seconds to wait: ``retry-after-ms`` first, then ``retry-after`` as seconds or an HTTP date."""
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _error_from_response(status: int, body: bytes, retry_after: float | None) -> ProviderError:
    message = f"upstream returned HTTP {status}"
    code: str | None = None
    try:
        err = json.loads(body).get("error")
        if isinstance(err, dict):
            message = str(err.get("message") or message)
            code = err.get("code") if isinstance(err.get("code"), str) else None
    except (ValueError, AttributeError):
        pass
    return ProviderError(status, str(status), message, code=code, retry_after_s=retry_after)


class OpenAICompatibleProvider:
    simulated = False

    def __init__(
        self,
        config: ProviderConfig,
        wrap_transport: Callable[[httpx.AsyncBaseTransport], httpx.AsyncBaseTransport] | None = None,
    ) -> None:
        self.id = config.id
        self.config = config
        parts = urlsplit(config.base_url)
        self.server_address: str | None = parts.hostname
        self.server_port: int | None = parts.port or (443 if parts.scheme == "https" else 80)
        headers = {"Content-Type": "application/json"}
        if config.api_key:
            headers["Authorization"] = f"Bearer {config.api_key}"
        transport: httpx.AsyncBaseTransport = httpx.AsyncHTTPTransport(
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=64)
        )
        if wrap_transport is not None:
            transport = wrap_transport(transport)  # HTTP client spans/metrics for upstream calls
        self._client = httpx.AsyncClient(
            base_url=config.base_url,
            headers=headers,
            timeout=httpx.Timeout(config.timeout_s, connect=config.connect_timeout_s),
            transport=transport,
        )
        self._rng = random.Random()

    def provider_name_for(self, model: str) -> str:
        return self.config.provider_name or "openai"

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return retry_after
        cap = min(self.config.backoff_max_s, self.config.backoff_base_s * (2**attempt))
        return self._rng.uniform(cap / 2, cap)  # "equal jitter": never zero, never above the cap

    def _payload(self, call: ChatCall) -> dict[str, Any]:
        payload = dict(call.body)
        payload["model"] = call.upstream_model
        if call.stream:
            payload["stream"] = True
            payload["stream_options"] = {**(call.body.get("stream_options") or {}), "include_usage": True}
        return payload

    async def _send(self, call: ChatCall) -> httpx.Response:
        """POST with retries; returns a response whose status is 2xx with the body not yet read."""
        payload = self._payload(call)
        attempt = 0
        while True:
            reason: str
            delay_hint: float | None = None
            try:
                request = self._client.build_request("POST", "/chat/completions", json=payload)
                response = await self._client.send(request, stream=True)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                if attempt >= self.config.max_retries:
                    raise ProviderError(
                        502,
                        "connect_error",
                        f"cannot connect to upstream: {exc}",
                        code="upstream_unreachable",
                    ) from exc
                reason = "connect_error"
            except httpx.TimeoutException as exc:
                raise UpstreamTimeout() from exc
            else:
                if response.status_code < 400:
                    return response
                body = await response.aread()
                await response.aclose()
                delay_hint = parse_retry_after(response.headers)
                error = _error_from_response(response.status_code, body, delay_hint)
                if (
                    response.status_code not in RETRYABLE_STATUS
                    or attempt >= self.config.max_retries
                    or (delay_hint is not None and delay_hint > MAX_RETRY_AFTER_S)
                ):
                    raise error
                reason = str(response.status_code)
            call.on_retry(reason)
            await asyncio.sleep(self._backoff(attempt, delay_hint))
            attempt += 1

    async def complete(self, call: ChatCall) -> dict[str, Any]:
        response = await self._send(call)
        async with _reading(response):
            body = await response.aread()
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise ProviderError(502, "invalid_upstream_response", "upstream returned invalid JSON") from exc
        if not isinstance(data, dict):
            raise ProviderError(502, "invalid_upstream_response", "upstream returned a non-object")
        return data

    async def stream(self, call: ChatCall) -> AsyncGenerator[dict[str, Any], None]:
        response = await self._send(call)
        async with _reading(response):
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    return
                try:
                    chunk = json.loads(data)
                except ValueError as exc:
                    raise ProviderError(
                        502, "invalid_upstream_response", "upstream sent invalid JSON"
                    ) from exc
                if isinstance(chunk, dict) and isinstance(chunk.get("error"), dict):
                    err = chunk["error"]
                    raise ProviderError(
                        502, "upstream_stream_error", str(err.get("message") or "upstream error mid-stream")
                    )
                yield chunk
            # The upstream ended the body without [DONE]: treat as a broken stream.
            raise StreamBroken("upstream closed the stream before [DONE]")

    async def ready(self) -> tuple[bool, str]:
        try:
            response = await self._client.get("/models", timeout=2.0)
        except httpx.HTTPError as exc:
            return False, f"{type(exc).__name__}: {exc}"
        return response.status_code < 400, f"HTTP {response.status_code}"

    async def aclose(self) -> None:
        await self._client.aclose()


@asynccontextmanager
async def _reading(response: httpx.Response) -> AsyncIterator[None]:
    """Reading an upstream body: a timeout is UpstreamTimeout, a dropped connection StreamBroken; the
    response is closed either way."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise UpstreamTimeout() from exc
    except httpx.TransportError as exc:
        raise StreamBroken() from exc
    finally:
        await response.aclose()
