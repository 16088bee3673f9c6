"""Upstream provider for any OpenAI-compatible API (OpenAI, Ollama, vLLM, another gateway).

Retries connect errors, 429 and 5xx with exponential backoff and full jitter, honouring ``Retry-After``
(``retry-after-ms`` first, then ``retry-after`` seconds or HTTP date). Streams are passed through chunk by
chunk; usage is always requested from the upstream so token telemetry is exact.

The HTTP client is aiohttp (a keep-alive connection pool, a C HTTP parser, no anyio layer): on a zero-latency
upstream httpx cost ~3,400 µs of CPU per proxied request against aiohttp's ~250 µs for the whole forwarding
path (bench/results/gateway.md).
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import random
import time
from collections.abc import AsyncGenerator, Mapping
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from app import jsonio
from app.config import ProviderConfig
from app.providers.base import (
    ChatCall,
    LastBatch,
    ProviderError,
    StreamBatch,
    StreamBroken,
    UpstreamTimeout,
)
from app.telemetry.http_client import HttpCall, HttpClientTelemetry

RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER_S = 60.0
_CONNECT_ERRORS = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
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

    def __init__(self, config: ProviderConfig, http_telemetry: HttpClientTelemetry | None = None) -> None:
        self.id = config.id
        self.config = config
        parts = urlsplit(config.base_url)
        self.server_address: str | None = parts.hostname
        self.server_port: int | None = parts.port or (443 if parts.scheme == "https" else 80)
        self._base_url = config.base_url.rstrip("/")
        self._completions_url = self._base_url + "/chat/completions"
        self._headers = {"Content-Type": "application/json"}
        if config.api_key:
            self._headers["Authorization"] = f"Bearer {config.api_key}"
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=config.connect_timeout_s, sock_read=config.timeout_s
        )
        self._http = http_telemetry  # HTTP client spans/metrics for upstream calls, when telemetry is on
        self._session: aiohttp.ClientSession | None = None
        self._rng = random.Random()

    def _client(self) -> aiohttp.ClientSession:
        # Created on first use, inside the event loop that serves requests.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=256, limit_per_host=0, keepalive_timeout=30),
                timeout=self._timeout,
                auto_decompress=True,
                json_serialize=json.dumps,
            )
        return self._session

    def provider_name_for(self, model: str) -> str:
        return self.config.provider_name or "openai"

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return retry_after
        cap = min(self.config.backoff_max_s, self.config.backoff_base_s * (2**attempt))
        return self._rng.uniform(cap / 2, cap)  # "equal jitter": never zero, never above the cap

    def _payload(self, call: ChatCall) -> bytes:
        payload = dict(call.body)
        payload["model"] = call.upstream_model
        if call.stream:
            payload["stream"] = True
            payload["stream_options"] = {**(call.body.get("stream_options") or {}), "include_usage": True}
        return jsonio.dumps(payload)

    async def _send(self, call: ChatCall) -> tuple[aiohttp.ClientResponse, HttpCall | None]:
        """POST with retries; returns a 2xx response whose body is not yet read (and its HTTP span)."""
        payload = self._payload(call)
        session = self._client()
        attempt = 0
        while True:
            reason: str
            delay_hint: float | None = None
            # HTTP client telemetry adds traceparent to the headers: a copy per attempt then.
            headers = self._headers if self._http is None else dict(self._headers)
            http = (
                self._http.start(
                    "POST", self._completions_url, self.server_address, self.server_port, headers
                )
                if self._http is not None
                else None
            )
            try:
                response = await session.post(self._completions_url, data=payload, headers=headers)
            except _CONNECT_ERRORS as exc:
                if http is not None:
                    http.end(type(exc).__qualname__)
                if attempt >= self.config.max_retries:
                    raise ProviderError(
                        502,
                        "connect_error",
                        f"cannot connect to upstream: {exc}",
                        code="upstream_unreachable",
                    ) from exc
                reason = "connect_error"
            except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
                if http is not None:
                    http.end("timeout")
                raise UpstreamTimeout() from exc
            except aiohttp.ClientError as exc:
                # Dropped before any response byte (e.g. a kept-alive connection the upstream had closed).
                if http is not None:
                    http.end(type(exc).__qualname__)
                if attempt >= self.config.max_retries:
                    raise StreamBroken(f"the upstream connection failed: {type(exc).__name__}") from exc
                reason = "upstream_disconnect"
            else:
                if http is not None:
                    http.status(response.status)
                if response.status < 400:
                    return response, http
                try:
                    body = await response.read()
                except (aiohttp.ClientError, TimeoutError):
                    body = b""
                finally:
                    response.release()
                    if http is not None:
                        http.end()
                delay_hint = parse_retry_after(response.headers)
                error = _error_from_response(response.status, body, delay_hint)
                if (
                    response.status not in RETRYABLE_STATUS
                    or attempt >= self.config.max_retries
                    or (delay_hint is not None and delay_hint > MAX_RETRY_AFTER_S)
                ):
                    raise error
                reason = str(response.status)
            call.on_retry(reason)
            await asyncio.sleep(self._backoff(attempt, delay_hint))
            attempt += 1

    async def complete(self, call: ChatCall) -> dict[str, Any]:
        return (await self.complete_raw(call))[0]

    async def complete_raw(self, call: ChatCall) -> tuple[dict[str, Any], bytes | None]:
        response, http = await self._send(call)
        async with _Reading(response, http):
            body = await response.read()
        try:
            data = jsonio.loads(body)
        except ValueError as exc:
            raise ProviderError(502, "invalid_upstream_response", "upstream returned invalid JSON") from exc
        if not isinstance(data, dict):
            raise ProviderError(502, "invalid_upstream_response", "upstream returned a non-object")
        return data, body

    async def stream(self, call: ChatCall) -> AsyncGenerator[dict[str, Any], None]:
        async for batch in self.stream_batches(call):
            for chunk, _ in batch:
                yield chunk

    async def stream_batches(self, call: ChatCall) -> AsyncGenerator[StreamBatch, None]:
        response, http = await self._send(call)
        async with _Reading(response, http):
            pending = b""
            async for data in response.content.iter_any():
                pending += data
                if b"\n" not in data:
                    continue
                *lines, pending = pending.split(b"\n")
                batch: StreamBatch = []
                # The data of each `data:` line; blank lines, comments and other fields are skipped.
                for event in [line[5:].strip() for line in lines if line.startswith(b"data:")]:
                    if event == b"[DONE]":
                        if batch:
                            yield LastBatch(batch)
                        return
                    # orjson inline first (two Python frames per event less; a stream has one per token);
                    # anything but an error-free object takes the general path, with its errors.
                    try:
                        chunk = orjson.loads(event)
                    except orjson.JSONDecodeError:
                        chunk = None
                    if chunk.__class__ is not dict or "error" in chunk:
                        try:
                            chunk = _chunk(event)
                        except ProviderError:
                            if batch:  # what came before the error event still reaches the client
                                yield batch
                            raise
                    batch.append((chunk, event))
                if batch:
                    yield batch
            # The upstream ended the body without [DONE]: treat as a broken stream.
            raise StreamBroken("upstream closed the stream before [DONE]")

    async def ready(self) -> tuple[bool, str]:
        try:
            async with self._client().get(
                self._base_url + "/models", headers=self._headers, timeout=aiohttp.ClientTimeout(total=2.0)
            ) as response:
                return response.status < 400, f"HTTP {response.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            return False, f"{type(exc).__name__}: {exc}"

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


def _chunk(event: bytes) -> dict[str, Any]:
    try:
        chunk = jsonio.loads(event)
    except ValueError as exc:
        raise ProviderError(502, "invalid_upstream_response", "upstream sent invalid JSON") from exc
    if isinstance(chunk, dict) and isinstance(chunk.get("error"), dict):
        err = chunk["error"]
        raise ProviderError(
            502, "upstream_stream_error", str(err.get("message") or "upstream error mid-stream")
        )
    return chunk  # type: ignore[no-any-return]


class _Reading:
    """``async with _Reading(response, http)``: reading an upstream body. A timeout is UpstreamTimeout, a
    dropped connection StreamBroken; the response is released and its span ended. (A class, not an
    ``@asynccontextmanager``: that costs a generator and several frames per request.)"""

    __slots__ = ("_http", "_response")

    def __init__(self, response: aiohttp.ClientResponse, http: HttpCall | None) -> None:
        self._response = response
        self._http = http

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        error: str | None = None
        try:
            if exc is None:
                return
            if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
                error = "timeout"
                raise UpstreamTimeout() from exc
            error = type(exc).__qualname__
            if isinstance(exc, aiohttp.ClientError):
                raise StreamBroken() from exc
        finally:
            # Back to the pool if the body was read to its end, else the connection closes.
            self._response.release()
            if self._http is not None:
                self._http.end(error)
