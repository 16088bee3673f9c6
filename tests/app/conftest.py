"""Gateway test harness: real uvicorn servers on free loopback ports, telemetry into in-memory exporters."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from app.api import create_app
from app.config import GatewayConfig, parse_config
from app.telemetry.setup import Telemetry, setup_telemetry

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Captured:
    """Everything one gateway instance emitted."""

    telemetry: Telemetry
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader
    logs: InMemoryLogRecordExporter

    def finished_spans(self) -> list[Any]:
        return list(self.spans.get_finished_spans())

    def genai_spans(self) -> list[Any]:
        return [s for s in self.finished_spans() if s.name.startswith("chat ")]

    def all_metrics(self) -> Iterator[Any]:
        """Every metric collected now, across resources and scopes."""
        data = self.metrics.get_metrics_data()
        if data is None:
            return
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                yield from sm.metrics

    def metric_points(self) -> dict[str, list[Any]]:
        """Metric name → data points (cumulative)."""
        out: dict[str, list[Any]] = {}
        for metric in self.all_metrics():
            out.setdefault(metric.name, []).extend(metric.data.data_points)
        return out

    def metric(self, name: str) -> Any:
        for metric in self.all_metrics():
            if metric.name == name:
                return metric
        raise AssertionError(f"metric {name} not emitted")


def in_memory_telemetry(env: Mapping[str, str] | None = None) -> Captured:
    spans = InMemorySpanExporter()
    reader = InMemoryMetricReader()
    logs = InMemoryLogRecordExporter()
    telemetry = setup_telemetry(dict(env or {}), span_exporter=spans, metric_reader=reader, log_exporter=logs)
    return Captured(telemetry, spans, reader, logs)


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class ThreadedServer:
    """A real uvicorn server for one app, on its own event loop in a thread; stopped by ``stop()``."""

    def __init__(self, app: Any, http: str = "auto") -> None:
        self._sock = free_socket()
        self.port = self._sock.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=2,
            http=http,  # type: ignore[arg-type]
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.run(self.server.serve(sockets=[self._sock]))

    def start(self) -> ThreadedServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("gateway did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()


@dataclass
class Gateway:
    server: ThreadedServer
    captured: Captured
    config: GatewayConfig

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def openai_base_url(self) -> str:
        return self.server.base_url + "/v1"


GatewayFactory = Callable[..., Gateway]


@pytest.fixture
def make_gateway() -> Iterator[GatewayFactory]:
    """Start gateways from a config dict; all of them are stopped when the test ends."""
    started: list[Gateway] = []

    def factory(
        raw: dict[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        config_env: Mapping[str, str] | None = None,
        http: str = "auto",
    ) -> Gateway:
        config = parse_config(raw, dict(config_env or {}))
        captured = in_memory_telemetry(env)
        app = create_app(config, captured.telemetry, log_to_stderr=False)
        gateway = Gateway(ThreadedServer(app, http).start(), captured, config)
        started.append(gateway)
        return gateway

    yield factory
    for gateway in reversed(started):
        gateway.server.stop()
        gateway.captured.telemetry.shutdown()


@pytest.fixture
def gateway(make_gateway: GatewayFactory) -> Gateway:
    """Zero-config gateway (simulated provider, open, no content capture)."""
    return make_gateway()


class GatewayProcess:
    """``python -m app`` in a subprocess on a free loopback port."""

    def __init__(self, args: list[str], env: Mapping[str, str]) -> None:
        sock = free_socket()
        self.port = sock.getsockname()[1]
        sock.close()
        self.base_url = f"http://127.0.0.1:{self.port}"
        full_env = {**os.environ, "OTEL_SDK_DISABLED": "true", **env}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app", "--host", "127.0.0.1", "--port", str(self.port), *args],
            cwd=REPO,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 20
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited: {self.proc.communicate()[1]}")
            try:
                if httpx.get(self.base_url + "/healthz", timeout=0.5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("gateway subprocess did not become healthy")
            time.sleep(0.1)

    def stop(self) -> tuple[str, str]:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            out, err = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        return out, err


def user_message(text: str = "Say something about telemetry.") -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]
