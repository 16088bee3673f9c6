"""Function calls per request that the gateway's telemetry adds: a count, which does not move with the
machine.

CPU per request on this shared 2-core machine moves by up to 2x between minutes (bench/results/gateway.md
compares ratios within one run for that reason); a change of a few percent cannot be seen in it. The number
of calls the event loop makes per request can: this drives the gateway's ASGI app in-process (no HTTP server
in front; the upstream is the real mock, bench/gateway/mock_upstream.py, over HTTP) under ``cProfile``, once
with full telemetry (OTLP/gRPC to an in-process sink) and once with ``OTEL_SDK_DISABLED=true``, and reports
per request the calls (Python functions and C builtins) and the Python frames alone, and what telemetry adds.
Only the event-loop thread is profiled: the export threads' encoding is in the CPU figures, not here.

    .venv/bin/python bench/gateway/calls.py                      # this checkout
    .venv/bin/python bench/gateway/calls.py --before 21fe0fa     # and the gateway at a git ref, same table

Results: bench/results/gateway-calls.md (``make bench-gateway`` runs it after the CPU benchmark).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
WORKLOADS = ("non-stream", "stream")
sys.path.insert(0, str(REPO / "bench"))
from bench_gateway import BODY, OtlpSink, _gateway_config, archive_app, free_port  # noqa: E402


def _counts(profile: cProfile.Profile, requests: int) -> tuple[float, float]:
    stats: dict[Any, Any] = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    calls = sum(v[1] for v in stats.values())
    frames = sum(v[1] for k, v in stats.items() if k[0] != "~")  # "~": C builtins
    return calls / requests, frames / requests


async def _measure(src: Path, upstream: str, sink_endpoint: str, requests: int) -> dict[str, Any]:
    sys.path.insert(0, str(src))
    from app.api import create_app
    from app.config import load_config
    from app.telemetry.setup import setup_telemetry

    config = _gateway_config(upstream, Path(tempfile.mkdtemp(prefix="bench-calls-")))
    env = {
        **os.environ,
        "OTEL_EXPORTER_OTLP_ENDPOINT": sink_endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_SERVICE_NAME": "bench-calls",
        # Profiling slows the event loop, not the export threads; a larger queue only rules out drops.
        "OTEL_BSP_MAX_QUEUE_SIZE": "100000",
        "OTEL_BLRP_MAX_QUEUE_SIZE": "100000",
    }
    os.environ.update(env)  # the SDK's exporters read their endpoint from the process environment
    apps = {
        "on": create_app(load_config(str(config)), setup_telemetry(env), log_to_stderr=False),
        "off": create_app(
            load_config(str(config)),
            setup_telemetry({**env, "OTEL_SDK_DISABLED": "true"}),
            log_to_stderr=False,
        ),
    }
    for app in apps.values():
        await _lifespan_start(app)
    out: dict[str, Any] = {}
    for workload in WORKLOADS:
        body = (
            {**BODY, "stream": True, "stream_options": {"include_usage": True}}
            if workload == "stream"
            else BODY
        )
        raw = json.dumps(body).encode()
        for key, app in apps.items():
            await _batch(app, raw, 200)  # warm: connections, caches, first-request paths
            profile = cProfile.Profile()
            profile.enable()
            await _batch(app, raw, requests)
            profile.disable()
            out[f"{workload}/{key}"] = _counts(profile, requests)
    return out


_LIFESPANS: list[asyncio.Task[Any]] = []  # held: a collected lifespan task would shut its app down


async def _lifespan_start(app: Any) -> None:
    received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    sent: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await received.put({"type": "lifespan.startup"})
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    _LIFESPANS.append(asyncio.ensure_future(app(scope, received.get, sent.put)))
    message = await sent.get()
    if message["type"] != "lifespan.startup.complete":
        raise SystemExit(f"gateway startup failed: {message}")


async def _one(app: Any, raw: bytes) -> None:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"content-type", b"application/json"),
            (b"authorization", b"Bearer sk-bench"),
            (b"content-length", str(len(raw)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    done = asyncio.Event()
    body_sent = False
    status = 0
    answer = b""

    async def receive() -> dict[str, Any]:
        nonlocal body_sent
        if not body_sent:
            body_sent = True
            return {"type": "http.request", "body": raw, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, answer
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            if status != 200:
                answer += message.get("body", b"")
            if not message.get("more_body"):
                done.set()

    await app(scope, receive, send)
    if status != 200:
        raise SystemExit(f"the gateway answered {status}: {answer[:300]!r}")


async def _batch(app: Any, raw: bytes, n: int, concurrency: int = 16) -> None:
    left = n

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await _one(app, raw)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def _measure_tree(src: Path, requests: int) -> dict[str, Any]:
    """One source tree in its own process (``app`` imports from ``src``), with its own mock and sink."""
    port = free_port()
    mock = subprocess.Popen([sys.executable, str(HERE / "mock_upstream.py"), str(port)])
    try:
        sink = OtlpSink().start()
        try:
            _wait_for_port(port)
            import uvloop

            return uvloop.run(_measure(src, f"http://127.0.0.1:{port}/v1", sink.endpoint, requests))
        finally:
            sink.stop()
    finally:
        mock.terminate()
        mock.wait()


def _wait_for_port(port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"the mock upstream did not listen on port {port}")


def _row(label: str, m: dict[str, Any]) -> list[str]:
    cells = [label]
    for workload in WORKLOADS:
        (on_calls, on_frames), (off_calls, off_frames) = m[f"{workload}/on"], m[f"{workload}/off"]
        cells += [f"{on_calls - off_calls:.0f}", f"{on_frames - off_frames:.0f}"]
    return cells


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--before", metavar="GIT_REF", help="also measure the gateway at GIT_REF")
    parser.add_argument(
        "--requests", type=int, default=2000, help="profiled requests per workload and setting"
    )
    parser.add_argument("--src", type=Path, help=argparse.SUPPRESS)  # internal: one tree, JSON to stdout
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "gateway-calls.md")
    args = parser.parse_args()
    if args.src is not None:
        print(json.dumps(_measure_tree(args.src, args.requests)))
        return 0
    trees: list[tuple[str, Path]] = [("this gateway", REPO)]
    with tempfile.TemporaryDirectory(prefix="bench-calls-ref-") as tmp:
        if args.before:
            src = Path(tmp)
            archive_app(args.before, src)
            trees.append((f"this gateway at {args.before}", src))
        results = []
        for label, src in trees:
            print(
                f"==> {label}: {args.requests} profiled requests per workload, telemetry on and off",
                file=sys.stderr,
            )
            done = subprocess.run(
                [sys.executable, __file__, "--src", str(src), "--requests", str(args.requests)],
                check=True,
                capture_output=True,
                text=True,
            )
            results.append((label, json.loads(done.stdout.strip().splitlines()[-1])))
    lines = [
        "# Gateway: calls per request added by telemetry",
        "",
        "The gateway's ASGI app driven in-process (the upstream: the mock over HTTP), 16 concurrent "
        f"requests, {args.requests} profiled per workload; calls on the event-loop thread per request with "
        "full telemetry minus those with OTEL_SDK_DISABLED=true (cProfile; bench/gateway/calls.py). A count: "
        "it does not move with the machine's speed, unlike the CPU figures in gateway.md.",
        "",
        "| gateway | non-stream calls | non-stream Python frames | stream calls | stream Python frames |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += ["| " + " | ".join(_row(label, m)) + " |" for label, m in results]
    lines += ["", "Per request, with telemetry on / off (calls, Python frames):", ""]
    for label, m in results:
        parts = []
        for w in WORKLOADS:
            (on_calls, on_frames), (off_calls, off_frames) = m[f"{w}/on"], m[f"{w}/off"]
            parts.append(
                f"{w} {on_calls:.0f} / {off_calls:.0f} calls, {on_frames:.0f} / {off_frames:.0f} frames"
            )
        lines.append(f"- {label}: " + "; ".join(parts))
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
