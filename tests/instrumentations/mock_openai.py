"""A local OpenAI-compatible upstream for the instrumentation tests: chat completions with the usage a real
OpenAI response carries (cached prompt tokens, reasoning tokens), streamed or not. Loopback only."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL = "gpt-4o-mini-2024-07-18"
USAGE: dict[str, Any] = {
    "prompt_tokens": 1500,
    "completion_tokens": 120,
    "total_tokens": 1620,
    "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 40, "audio_tokens": 0},
}
ANSWER = "Telemetry is the automatic collection of measurements."


def _completion() -> dict[str, Any]:
    return {
        "id": "chatcmpl-mock-1",
        "object": "chat.completion",
        "created": 1_760_000_000,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": ANSWER},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": USAGE,
        "system_fingerprint": "fp_mock",
    }


def _chunks(include_usage: bool) -> list[dict[str, Any]]:
    base = {
        "id": "chatcmpl-mock-2",
        "object": "chat.completion.chunk",
        "created": 1_760_000_000,
        "model": MODEL,
    }
    words = ANSWER.split(" ")
    out = [
        {
            **base,
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}],
        }
    ]
    for i, word in enumerate(words):
        text = word if i == 0 else " " + word
        out.append({**base, "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]})
    out.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    if include_usage:
        out.append({**base, "choices": [], "usage": USAGE})
    return out


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *_args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
        if not self.path.endswith("/chat/completions"):
            self.send_error(404)
            return
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            payload = (
                b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in _chunks(include_usage))
                + b"data: [DONE]\n\n"
            )
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
        else:
            payload = json.dumps(_completion()).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class MockOpenAI:
    def __init__(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> MockOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
