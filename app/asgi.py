"""ASGI plumbing of the request path: the types, one-shot responses, and the app that routes chat completions
past the framework.

FastAPI's middleware stack, routing, dependency solving, ``Request`` objects and ``StreamingResponse`` (an
anyio task group per stream) were ~18% of the gateway's CPU per proxied request with telemetry off (py-spy),
more than any other part but the upstream client, so ``POST /v1/chat/completions`` is served by a pure ASGI
endpoint (app/chat_endpoint.py) and every other route by FastAPI.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
RawHeaders = list[tuple[bytes, bytes]]

JSON_CONTENT_TYPE = (b"content-type", b"application/json")


def encode_headers(headers: dict[str, str]) -> RawHeaders:
    """As Starlette encodes a response's headers: lower-case names, latin-1."""
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


async def send_json(
    send: Send, status: int, body: bytes, headers: RawHeaders, after: RawHeaders | None = None
) -> None:
    """A complete JSON response, its headers in the order Starlette's ``JSONResponse`` writes them:
    ``headers``, content-length, content-type, then any set on the response later (``after``)."""
    headers.append((b"content-length", str(len(body)).encode()))
    headers.append(JSON_CONTENT_TYPE)
    if after:
        headers += after
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RouteFirst:
    """``POST path`` to ``endpoint``, everything else (other routes, other methods, lifespan) to ``app``.

    ``endpoint`` is also mounted in ``app`` under the same path, so a request reaching it through the
    framework (a root path, a method FastAPI answers 405 to) is handled the same way.
    """

    def __init__(self, app: ASGIApp, path: str, endpoint: ASGIApp) -> None:
        self.app = app
        self._path = path
        self._endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == self._path and scope["method"] == "POST":
            await self._endpoint(scope, receive, send)
        else:
            await self.app(scope, receive, send)
