"""The real ``python -m processors`` process: config errors at start, SIGTERM drain, --workers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.processors.helpers import Client, Sink, span, trace_request

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env() -> dict[str, str]:
    return {**os.environ, "OTEL_SDK_DISABLED": "true", "PYTHONPATH": str(ROOT)}


@contextmanager
def sidecar_process(forward_port: int, *extra: str) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "processors",
            "--listen",
            f"127.0.0.1:{port}",
            "--forward",
            f"127.0.0.1:{forward_port}",
            *extra,
        ],
        env=_env(),
        cwd=ROOT,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_serving(port, proc)
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        if proc.stderr:
            proc.stderr.close()


def _wait_serving(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = health_pb2_grpc.HealthStub(channel)
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"sidecar exited early with {proc.returncode}")
            try:
                if (
                    stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status
                    == health_pb2.HealthCheckResponse.SERVING
                ):
                    return
            except grpc.RpcError:
                time.sleep(0.1)
        raise AssertionError("sidecar did not become SERVING")
    finally:
        channel.close()


def test_bad_config_exits_nonzero_naming_the_field(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("redaction:\n  custom_patterns:\n    - name: bad\n      regex: '(unclosed'\n")
    result = subprocess.run(
        [sys.executable, "-m", "processors", "--config", str(cfg)],
        env=_env(),
        cwd=ROOT,
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert b"redaction.custom_patterns[0].regex" in result.stderr
    cfg.write_text("server:\n  max_mesage_bytes: 10\n")
    result = subprocess.run(
        [sys.executable, "-m", "processors", "--config", str(cfg)],
        env=_env(),
        cwd=ROOT,
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert b"server.max_mesage_bytes" in result.stderr


def test_sigterm_drains_in_flight_batch_and_exits_zero(sink: Sink) -> None:
    sink.delay_s = 1.5  # the forward is still running when SIGTERM arrives
    with sidecar_process(sink.port) as (proc, port):
        client = Client(port)
        outcome: dict[str, object] = {}

        def send() -> None:
            try:
                client.traces(trace_request(span("in-flight", {"k": "v"})), timeout=10)
                outcome["status"] = "OK"
            except grpc.RpcError as err:
                outcome["status"] = err.code()

        sender = threading.Thread(target=send)
        sender.start()
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        sender.join(15)
        assert proc.wait(20) == 0
        client.close()
    assert outcome["status"] == "OK"
    assert len(sink.traces) == 1


def test_workers_share_the_port_and_stop_on_sigterm(sink: Sink) -> None:
    with sidecar_process(sink.port, "--workers", "2") as (proc, port):
        client = Client(port)
        for i in range(20):
            client.traces(trace_request(span(f"s{i}", {"mail": "x@y.example"})), timeout=10)
        client.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    assert len(sink.traces) == 20
    assert all(b"x@y.example" not in raw for raw in sink.traces)
