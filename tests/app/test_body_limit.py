"""Bodies over ``max_request_bytes`` are refused without being read: from Content-Length up front, and a
chunked body as soon as the bytes read pass the limit. The clients below send only part of what they
announce and then wait: a gateway that read the whole body before answering would never answer them."""

from __future__ import annotations

import json
import socket
import time

import pytest

from tests.app.conftest import GatewayFactory

LIMIT = 100_000
SEND_TIMEOUT_S = 10.0


def _head(port: int, extra: str) -> bytes:
    return (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\n{extra}\r\n"
    ).encode()


def _read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes, bool]:
    """(status, headers, body, closed by the server afterwards) of the one response on ``sock``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed before a response: {data[:200]!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    try:
        closed = sock.recv(1) == b""
    except (ConnectionResetError, TimeoutError):
        closed = True
    return status, headers, rest[:length], closed


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=SEND_TIMEOUT_S)
    sock.settimeout(SEND_TIMEOUT_S)
    return sock


@pytest.mark.parametrize("http", ["h11", "httptools"])
def test_declared_oversize_body_is_refused_before_it_is_read(make_gateway: GatewayFactory, http: str) -> None:
    pytest.importorskip(http)
    gw = make_gateway({"max_request_bytes": LIMIT}, http=http)
    with _connect(gw.server.port) as sock:
        start = time.monotonic()
        sock.sendall(_head(gw.server.port, "Content-Length: 200000000\r\n"))
        sock.sendall(b'{"model": "gpt-4o-mini", "messages": [' + b" " * 65536)  # 64 KB of 200 MB
        status, headers, body, closed = _read_response(sock)
        elapsed = time.monotonic() - start
    assert status == 413
    err = json.loads(body)["error"]
    assert err["type"] == "invalid_request_error" and str(LIMIT) in err["message"]
    assert headers.get("connection") == "close" and closed
    assert elapsed < SEND_TIMEOUT_S / 2
    points = gw.captured.metric_points()["llm_gateway.errors"]
    assert any(p.attributes["error.type"] == "request_too_large" for p in points)


@pytest.mark.parametrize("http", ["h11", "httptools"])
def test_chunked_body_is_refused_once_it_passes_the_limit(make_gateway: GatewayFactory, http: str) -> None:
    pytest.importorskip(http)
    gw = make_gateway({"max_request_bytes": LIMIT}, http=http)
    with _connect(gw.server.port) as sock:
        sock.sendall(_head(gw.server.port, "Transfer-Encoding: chunked\r\n"))
        chunk = b" " * 16384
        sent = 0
        try:
            while sent <= LIMIT + 65536:  # past the limit, then stop without ending the body (no 0-chunk)
                sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                sent += len(chunk)
        except (ConnectionResetError, BrokenPipeError):
            # The server answered and closed while this client was still sending (it does not linger
            # reading what it refused): the answer is already here.
            pass
        status, headers, body, closed = _read_response(sock)
    assert status == 413
    assert json.loads(body)["error"]["type"] == "invalid_request_error"
    assert headers.get("connection") == "close" and closed


@pytest.mark.parametrize("http", ["h11", "httptools"])
def test_bodies_within_the_limit_still_work_chunked_or_not(make_gateway: GatewayFactory, http: str) -> None:
    pytest.importorskip(http)
    gw = make_gateway({"max_request_bytes": LIMIT}, http=http)
    payload = json.dumps(
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x" * (LIMIT - 200)}]}
    ).encode()
    assert len(payload) <= LIMIT
    with _connect(gw.server.port) as sock:
        sock.sendall(_head(gw.server.port, f"Content-Length: {len(payload)}\r\n") + payload)
        status, _, _, _ = _read_response_keepalive(sock)
        assert status == 200
        half = len(payload) // 2
        sock.sendall(
            _head(gw.server.port, "Transfer-Encoding: chunked\r\n")
            + f"{half:x}\r\n".encode()
            + payload[:half]
            + f"\r\n{len(payload) - half:x}\r\n".encode()
            + payload[half:]
            + b"\r\n0\r\n\r\n"
        )
        status, _, _, _ = _read_response_keepalive(sock)
        assert status == 200  # and on the same kept-alive connection


def _read_response_keepalive(sock: socket.socket) -> tuple[int, dict[str, str], bytes, bool]:
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        rest += sock.recv(65536)
    return int(lines[0].split()[1]), headers, rest, False
