"""A deliberately cheap HTTP/1.1 keep-alive load client (asyncio streams, prebuilt requests).

httpx costs more CPU per request than the gateway itself, so with it the load client, not the gateway, sets
the throughput on a small machine. This client parses just enough HTTP to find each response's end.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any


def build_request(
    host: str, port: int, path: str, body: dict[str, Any], headers: dict[str, str] | None = None
) -> bytes:
    payload = json.dumps(body).encode()
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n{extra}"
        f"Content-Length: {len(payload)}\r\nConnection: keep-alive\r\n\r\n"
    )
    return head.encode() + payload


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    if b"transfer-encoding: chunked" in lower:
        body = bytearray()
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";", 1)[0], 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                return status, bytes(body)
            body += chunk[:-2]
    idx = lower.find(b"content-length:")
    if idx < 0:
        raise ValueError("response without content-length or chunked encoding")
    length = int(lower[idx + 15 : lower.find(b"\r\n", idx)])
    return status, await reader.readexactly(length)


async def run_closed_loop(
    host: str, port: int, request: bytes, duration_s: float, concurrency: int, expect_suffix: bytes = b""
) -> tuple[list[float], int]:
    """`concurrency` connections send back-to-back requests until the deadline: (latencies, errors)."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + duration_s

    async def worker() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                writer.write(request)
                status, body = await _read_response(reader)
                if status == 200 and body.endswith(expect_suffix):
                    latencies.append(time.perf_counter() - start)
                else:
                    errors += 1
        finally:
            writer.close()
            await writer.wait_closed()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, errors
