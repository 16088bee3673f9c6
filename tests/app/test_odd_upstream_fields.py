"""An upstream whose `id`, `model` or `system_fingerprint` is not a string (a buggy or hostile
OpenAI-compatible server): the client still gets its answer, and no such value becomes a span attribute,
a metric label, a log attribute or a feedback key."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.app.conftest import GatewayFactory, user_message
from tests.app.test_upstream import upstream_config

ODD: list[dict[str, Any]] = [
    {"id": 5, "model": 7, "system_fingerprint": {"fp": 1}},
    {"id": {"nested": True}, "model": ["gpt"], "system_fingerprint": 3.5},
    {"id": None, "model": None, "system_fingerprint": None},
]
USAGE = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}


def _handler(fields: dict[str, Any]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            if body.get("stream"):
                chunks = [
                    {**fields, "choices": [{"index": 0, "delta": {"content": "hi"}}]},
                    {**fields, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
                    {**fields, "choices": [], "usage": USAGE},
                ]
                payload = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks)
                payload += b"data: [DONE]\n\n"
                ctype = "text/event-stream"
            else:
                message = {"role": "assistant", "content": "hi"}
                payload = json.dumps(
                    {
                        **fields,
                        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                        "usage": USAGE,
                    }
                ).encode()
                ctype = "application/json"
            self.send_response(200)
            self.send_header("content-type", ctype)
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler


@pytest.fixture(params=range(len(ODD)), ids=["numbers", "containers", "nulls"])
def odd_upstream(request: pytest.FixtureRequest) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(ODD[request.param]))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("stream", [False, True])
def test_non_string_identity_fields_are_dropped_not_fatal(
    make_gateway: GatewayFactory, odd_upstream: str, stream: bool
) -> None:
    gw = make_gateway(upstream_config(odd_upstream))
    body: dict[str, Any] = {"model": "gpt-4o-mini", "messages": user_message(), "stream": stream}
    r = httpx.post(gw.openai_base_url + "/chat/completions", json=body, timeout=15)
    assert r.status_code == 200, r.text
    if stream:
        assert r.text.endswith("data: [DONE]\n\n")
    (span,) = gw.captured.genai_spans()
    attrs = dict(span.attributes or {})
    for key in ("gen_ai.response.id", "gen_ai.response.model", "openai.response.system_fingerprint"):
        assert key not in attrs or isinstance(attrs[key], str), (key, attrs.get(key))
    assert attrs["gen_ai.usage.output_tokens"] == 2
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
