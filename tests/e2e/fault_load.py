"""Bounded OTLP load with a ledger of what the Collector acknowledged, and a real sidecar process.

The load generator sends one trace export (several spans) and one log export (several records) per
"request", paced at a fixed rate from a small thread pool, and records per span id / log key whether the
Collector acknowledged it. Only acknowledged items are owed: a request refused while the Collector is
down is the client's to retry, so it is recorded as refused, not as lost.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from tests.stack_support import REPO, exported_log_records, exported_spans, free_ports, wait_for

# reconnect quickly after the Collector comes back (gRPC's default backoff grows to 120 s)
_CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
]


def _kv(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


def _resource(service: str) -> Resource:
    return Resource(attributes=[_kv("service.name", service)])


def trace_request(
    n_spans: int, service: str
) -> tuple[trace_service_pb2.ExportTraceServiceRequest, list[str]]:
    now = time.time_ns()
    trace_id = os.urandom(16)
    spans = []
    for i in range(n_spans):
        spans.append(
            Span(
                trace_id=trace_id,
                span_id=os.urandom(8),
                name=f"chat gpt-4o-mini #{i}",
                kind=Span.SPAN_KIND_CLIENT,
                start_time_unix_nano=now - 5_000_000,
                end_time_unix_nano=now,
                attributes=[
                    _kv("gen_ai.operation.name", "chat"),
                    _kv("gen_ai.request.model", "gpt-4o-mini"),
                    _kv("gen_ai.provider.name", "openai"),
                    KeyValue(key="gen_ai.usage.input_tokens", value=AnyValue(int_value=120 + i)),
                    KeyValue(key="gen_ai.usage.output_tokens", value=AnyValue(int_value=40)),
                ],
            )
        )
    req = trace_service_pb2.ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(resource=_resource(service), scope_spans=[ScopeSpans(spans=spans)])]
    )
    return req, [s.span_id.hex() for s in spans]


def log_request(n_records: int, service: str) -> tuple[logs_service_pb2.ExportLogsServiceRequest, list[str]]:
    now = time.time_ns()
    keys = [f"fault-load {uuid.uuid4()}" for _ in range(n_records)]
    records = [
        LogRecord(time_unix_nano=now, severity_text="INFO", body=AnyValue(string_value=k)) for k in keys
    ]
    req = logs_service_pb2.ExportLogsServiceRequest(
        resource_logs=[ResourceLogs(resource=_resource(service), scope_logs=[ScopeLogs(log_records=records)])]
    )
    return req, keys


@dataclass
class Ledger:
    """What the clients sent and what the Collector acknowledged, per span id and per log body."""

    acked_spans: set[str] = field(default_factory=set)
    acked_logs: set[str] = field(default_factory=set)
    refused_spans: set[str] = field(default_factory=set)
    refused_logs: set[str] = field(default_factory=set)
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class OtlpClient:
    """Direct OTLP/gRPC exports (no SDK batching in between), so every acknowledgement is known."""

    def __init__(self, endpoint: str, service: str = "fault-load") -> None:
        self.service = service
        self.channel = grpc.insecure_channel(endpoint, options=_CHANNEL_OPTIONS)
        self.traces = trace_service_pb2_grpc.TraceServiceStub(self.channel)  # type: ignore[no-untyped-call]
        self.logs = logs_service_pb2_grpc.LogsServiceStub(self.channel)  # type: ignore[no-untyped-call]

    def send_spans(self, n: int, timeout: float = 3.0) -> tuple[list[str], bool]:
        req, ids = trace_request(n, self.service)
        try:
            self.traces.Export(req, timeout=timeout)
            return ids, True
        except grpc.RpcError:
            return ids, False

    def send_logs(self, n: int, timeout: float = 3.0) -> tuple[list[str], bool]:
        req, keys = log_request(n, self.service)
        try:
            self.logs.Export(req, timeout=timeout)
            return keys, True
        except grpc.RpcError:
            return keys, False

    def close(self) -> None:
        self.channel.close()


class PacedLoad:
    """`rate` requests per second for `seconds`, each a trace export and a log export, from a thread pool
    (so a slow answer while the Collector restarts does not lower the offered rate)."""

    def __init__(
        self, client: OtlpClient, rate: float, seconds: float, spans: int = 3, logs: int = 2
    ) -> None:
        self.client, self.rate, self.seconds = client, rate, seconds
        self.spans, self.logs = spans, logs
        self.ledger = Ledger()
        self.elapsed = 0.0
        self._thread = threading.Thread(target=self._run, name="paced-load", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self) -> None:
        self._thread.join()

    def _one(self) -> None:
        span_ids, span_ok = self.client.send_spans(self.spans)
        log_keys, log_ok = self.client.send_logs(self.logs)
        with self.ledger.lock:
            self.ledger.requests += 1
            (self.ledger.acked_spans if span_ok else self.ledger.refused_spans).update(span_ids)
            (self.ledger.acked_logs if log_ok else self.ledger.refused_logs).update(log_keys)

    def _run(self) -> None:
        total = int(self.rate * self.seconds)
        start = time.monotonic()
        with ThreadPoolExecutor(max_workers=8, thread_name_prefix="load") as pool:
            for i in range(total):
                delay = start + i / self.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                pool.submit(self._one)
        self.elapsed = time.monotonic() - start

    @property
    def offered_rate(self) -> float:
        return self.ledger.requests / self.elapsed if self.elapsed else 0.0


@dataclass
class Tally:
    """Exported vs acknowledged: exactly once, duplicated (same id more than once), missing."""

    acked: int
    exported_acked: int
    duplicates: int
    missing: set[str]
    exported_unacked: int

    def row(self) -> dict[str, Any]:
        return {
            "acknowledged": self.acked,
            "exported": self.exported_acked,
            "duplicates": self.duplicates,
            "missing": len(self.missing),
            "exported_not_acknowledged": self.exported_unacked,
        }


def tally(acked: set[str], refused: set[str], exported: list[str]) -> Tally:
    counts = Counter(exported)
    return Tally(
        acked=len(acked),
        exported_acked=sum(1 for k in acked if counts[k]),
        duplicates=sum(c - 1 for k, c in counts.items() if c > 1 and (k in acked or k in refused)),
        missing={k for k in acked if not counts[k]},
        exported_unacked=sum(1 for k in refused if counts[k]),
    )


def exported_span_ids(path: Path) -> list[str]:
    return [s["spanId"] for s in exported_spans(path)]


def exported_log_keys(path: Path) -> list[str]:
    return [str(r.get("body", {}).get("stringValue", "")) for r in exported_log_records(path)]


@dataclass
class SidecarProcess:
    """The real sidecar (`python -m processors`) on a free loopback port, forwarding to `forward`."""

    run_dir: Path
    forward: str
    port: int = field(default_factory=lambda: free_ports(1)[0])
    proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, OTEL_SDK_DISABLED="true", PYTHONUNBUFFERED="1")
        log = open(self.run_dir / "sidecar.log", "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "processors", "--listen", self.endpoint, "--forward", self.forward],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        wait_for(self._serving, timeout, "the sidecar's gRPC health check")

    def _serving(self) -> bool:
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"sidecar exited with {self.proc.returncode}")
        try:
            with grpc.insecure_channel(self.endpoint) as channel:
                reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
                return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)
        except grpc.RpcError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None
