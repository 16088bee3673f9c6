"""The floor: a minimal forwarder with no framework and no telemetry, on the fastest stack measured here.

``python bench/gateway/floor.py PORT UPSTREAM_BASE_URL [aiohttp|httpx]``: a bare ASGI callable under uvicorn
(uvloop event loop, httptools parser) that passes ``POST /v1/chat/completions`` through to the upstream
over a keep-alive connection pool, body bytes unparsed; streamed responses are relayed as they arrive.
``aiohttp`` (default) is the fastest mainstream asyncio HTTP client measured for this (C HTTP parser, no
anyio layer); ``httpx`` is there to price the client.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def _body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def aiohttp_app(upstream: str) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    import aiohttp

    session: aiohttp.ClientSession | None = None
    url = upstream.rstrip("/") + "/chat/completions"

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal session
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            if session is not None:
                await session.close()
            await send({"type": "lifespan.shutdown.complete"})
            return
        if session is None:
            session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256))
        if scope["path"] == "/healthz":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
            return
        body = await _body(receive)
        async with session.post(url, data=body, headers={"content-type": "application/json"}) as resp:
            ctype = resp.headers.get("content-type", "application/json").encode()
            await send(
                {"type": "http.response.start", "status": resp.status, "headers": [(b"content-type", ctype)]}
            )
            if ctype.startswith(b"text/event-stream"):
                async for chunk in resp.content.iter_any():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b""})
            else:
                await send({"type": "http.response.body", "body": await resp.read()})

    return app


def httpx_app(upstream: str) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    import httpx

    client = httpx.AsyncClient(base_url=upstream, limits=httpx.Limits(max_connections=256))

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await client.aclose()
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["path"] == "/healthz":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
            return
        body = await _body(receive)
        request = client.build_request(
            "POST", "/chat/completions", content=body, headers={"content-type": "application/json"}
        )
        resp = await client.send(request, stream=True)
        try:
            ctype = resp.headers.get("content-type", "application/json").encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": resp.status_code,
                    "headers": [(b"content-type", ctype)],
                }
            )
            if ctype.startswith(b"text/event-stream"):
                async for chunk in resp.aiter_raw():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b""})
            else:
                await send({"type": "http.response.body", "body": await resp.aread()})
        finally:
            await resp.aclose()

    return app


if __name__ == "__main__":
    port, upstream = int(sys.argv[1]), sys.argv[2]
    client = sys.argv[3] if len(sys.argv) > 3 else "aiohttp"
    app = aiohttp_app(upstream) if client == "aiohttp" else httpx_app(upstream)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        lifespan="on",
    )
