"""A zero-latency OpenAI-compatible upstream for benchmarks: prebuilt answers, as little CPU as possible.

``python bench/gateway/mock_upstream.py PORT`` serves ``POST /v1/chat/completions`` (a JSON completion, or
with ``"stream": true`` an SSE stream of 8 content chunks, a finish chunk, a usage chunk and ``[DONE]``,
one HTTP chunk per event, as OpenAI sends them) and ``GET /v1/models``, on HTTP/1.1 keep-alive, one asyncio
protocol on uvloop. It parses only what it needs: the head's end, Content-Length or chunked framing, and
whether the body asks for a stream.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

MODEL = "gpt-4o-mini-2024-07-18"
WORDS = ["Telemetry ", "flows ", "as ", "OTLP ", "from ", "apps ", "to ", "backends."]
USAGE = {
    "prompt_tokens": 14,
    "completion_tokens": len(WORDS),
    "total_tokens": 14 + len(WORDS),
    "prompt_tokens_details": {"cached_tokens": 0},
}


def _completion() -> bytes:
    body = json.dumps(
        {
            "id": "chatcmpl-mock",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": MODEL,
            "system_fingerprint": "fp_mock",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(WORDS)},
                    "finish_reason": "stop",
                }
            ],
            "usage": USAGE,
        }
    ).encode()
    return (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
        + f"content-length: {len(body)}\r\n\r\n".encode()
        + body
    )


def _stream() -> bytes:
    base = {
        "id": "chatcmpl-mock",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": MODEL,
    }
    events = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}]
    events += [{**base, "choices": [{"index": 0, "delta": {"content": w}}]} for w in WORDS]
    events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    events.append({**base, "choices": [], "usage": USAGE})
    out = bytearray(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    )
    for data in [*(json.dumps(e).encode() for e in events), b"[DONE]"]:
        sse = b"data: " + data + b"\n\n"
        out += f"{len(sse):x}\r\n".encode() + sse + b"\r\n"
    out += b"0\r\n\r\n"
    return bytes(out)


def _models() -> bytes:
    body = json.dumps(
        {"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "mock"}]}
    ).encode()
    return b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )


COMPLETION, STREAM, MODELS = _completion(), _stream(), _models()


class Upstream(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].lower()
            start = end + 4
            if b"transfer-encoding: chunked" in head:
                body_end = self.buf.find(b"\r\n0\r\n\r\n", start - 2)
                if body_end < 0:
                    return
                body, rest = self.buf[start:body_end], self.buf[body_end + 7 :]
            else:
                i = head.find(b"content-length:")
                n = (
                    int(head[i + 15 : head.find(b"\r\n", i) if head.find(b"\r\n", i) > 0 else None])
                    if i >= 0
                    else 0
                )
                if len(self.buf) < start + n:
                    return
                body, rest = self.buf[start : start + n], self.buf[start + n :]
            self.buf = rest
            if head.startswith(b"get"):
                self.transport.write(MODELS)
            elif b'"stream": true' in body or b'"stream":true' in body:
                self.transport.write(STREAM)
            else:
                self.transport.write(COMPLETION)


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Upstream, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    import uvloop

    uvloop.run(serve(int(sys.argv[1])))
