"""What the pipeline bench measures with: an open-loop OTLP/gRPC sender at a target span rate, the Collector's
own telemetry (/metrics on its telemetry port), CPU seconds per process from /proc, and freshness probes."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

TRACE_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
PROBE_MODEL = "bench-probe"


# --- CPU --------------------------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    out: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                out += [int(c) for c in (task / "children").read_text().split()]
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and all its descendants (a sidecar's workers), from /proc."""
    total, todo, seen = 0.0, [pid], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        todo += _children(p)
    return total


# --- the Collector's own telemetry ------------------------------------------------------------------


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return str(resp.read().decode())


_LINE = re.compile(r"^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)")


def metric_sum(text: str, name: str, **labels: str) -> float:
    """Sum of every sample of `name` whose labels include `labels` (exact values)."""
    total = 0.0
    for line in text.splitlines():
        m = _LINE.match(line)
        if not m or m.group(1) != name:
            continue
        lab = m.group(2) or ""
        if all(f'{k}="{v}"' in lab for k, v in labels.items()):
            total += float(m.group(3))
    return total


# --- load ------------------------------------------------------------------------------------------


@dataclass
class LoadResult:
    target_spans_per_s: float
    seconds: float  # the send window: batches are due from its start to its end
    elapsed_s: float = 0.0  # until the last answer arrived
    sent_batches: int = 0
    failed_batches: int = 0
    late_batches: int = 0  # could not be sent on time: every sender thread busy (backpressure)
    latencies: list[float] = field(default_factory=list)


def send_open_loop(
    port: int,
    batches: list[bytes],
    spans_per_batch: int,
    spans_per_s: float,
    seconds: float,
    threads: int = 6,
) -> LoadResult:
    """Batches at fixed intervals whatever the answers (open loop); a batch is late when no sender is free
    at its time — a sign the pipeline pushes back."""
    result = LoadResult(spans_per_s, seconds)
    interval = spans_per_batch / spans_per_s
    work: queue.Queue[bytes | None] = queue.Queue(maxsize=threads * 2)
    lock = threading.Lock()
    options = [("grpc.max_send_message_length", 64 << 20)]
    channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=options)
    call = channel.unary_unary(TRACE_METHOD, request_serializer=None, response_deserializer=None)

    def sender() -> None:
        while (payload := work.get()) is not None:
            t0 = time.perf_counter()
            try:
                call(payload, timeout=30)
                ok = True
            except grpc.RpcError:
                ok = False
            with lock:
                if ok:
                    result.sent_batches += 1
                    result.latencies.append(time.perf_counter() - t0)
                else:
                    result.failed_batches += 1

    pool = [threading.Thread(target=sender, daemon=True) for _ in range(threads)]
    for t in pool:
        t.start()
    start = time.perf_counter()
    i = 0
    while (due := start + i * interval) < start + seconds:
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        try:
            work.put(batches[i % len(batches)], timeout=max(interval, 0.001))
        except queue.Full:
            result.late_batches += 1
        i += 1
    for _ in pool:
        work.put(None)
    for t in pool:
        t.join(60)
    result.elapsed_s = time.perf_counter() - start
    channel.close()
    return result


# --- freshness probes ------------------------------------------------------------------------------


def probe_request(model: str, end_ns: int) -> bytes:
    span = Span(
        trace_id=os.urandom(16),
        span_id=os.urandom(8),
        name=f"chat {model}",
        kind=Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=end_ns - 1_000_000,
        end_time_unix_nano=end_ns,
        attributes=[
            KeyValue(key="gen_ai.operation.name", value=AnyValue(string_value="chat")),
            KeyValue(key="gen_ai.request.model", value=AnyValue(string_value=model)),
        ],
    )
    resource = Resource(attributes=[KeyValue(key="service.name", value=AnyValue(string_value="bench-probe"))])
    req = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=resource, scope_spans=[ScopeSpans(scope=InstrumentationScope(), spans=[span])]
            )
        ]
    )
    return req.SerializeToString()


class FileWatcher:
    """Finds when each probe's model name first appears in a growing export file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0
        self.tail = b""

    def poll(self, wanted: dict[str, float], seen: dict[str, float]) -> None:
        if not self.path.exists():
            return
        with self.path.open("rb") as f:
            f.seek(self.offset)
            chunk = f.read()
        if not chunk:
            return
        now = time.time()
        self.offset += len(chunk)
        data = self.tail + chunk
        for model in list(wanted):
            if model not in seen and f'"{model}"'.encode() in data:
                seen[model] = now
        self.tail = data[-200:]


def prometheus_seen(prom: str, wanted: dict[str, float], seen: dict[str, float]) -> None:
    selector = f'traces_span_metrics_calls_total{{gen_ai_request_model=~"{PROBE_MODEL}-.*"}}'
    expr = f"count by (gen_ai_request_model) ({selector})"
    url = f"{prom}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"

    with urllib.request.urlopen(url, timeout=5) as resp:
        body = json.load(resp)
    now = time.time()
    for result in body["data"]["result"]:
        model = result["metric"].get("gen_ai_request_model", "")
        if model in wanted and model not in seen:
            seen[model] = now


@dataclass
class Freshness:
    to_file: list[float]
    to_prometheus: list[float]
    probes: int


def run_probes(
    port: int,
    run_id: str,
    count: int,
    every_s: float,
    export_file: Path,
    prom: str,
    background: Callable[[], object] | None = None,
    settle_s: float = 25.0,
) -> Freshness:
    """Sends `count` one-span probes `every_s` apart (while `background` runs in a thread) and records when
    each shows up in the export file and as a spanmetrics series in Prometheus, relative to its span end."""
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    call = channel.unary_unary(TRACE_METHOD, request_serializer=None, response_deserializer=None)
    watcher = FileWatcher(export_file)
    sent: dict[str, float] = {}
    in_file: dict[str, float] = {}
    in_prom: dict[str, float] = {}
    bg = threading.Thread(target=background, daemon=True) if background else None
    if bg:
        bg.start()
    next_probe, i = time.time(), 0
    deadline = time.time() + count * every_s + settle_s
    last_prom = 0.0
    while time.time() < deadline and (i < count or len(in_file) < count or len(in_prom) < count):
        now = time.time()
        if i < count and now >= next_probe:
            model = f"{PROBE_MODEL}-{run_id}-{i}"
            end_ns = time.time_ns()
            call(probe_request(model, end_ns), timeout=10)
            sent[model] = end_ns / 1e9
            i += 1
            next_probe += every_s
        watcher.poll(sent, in_file)
        if now - last_prom >= 0.2:
            with contextlib.suppress(OSError, ValueError, KeyError):
                prometheus_seen(prom, sent, in_prom)
            last_prom = now
        time.sleep(0.01)
    if bg:
        bg.join(120)
    channel.close()
    return Freshness(
        [in_file[m] - sent[m] for m in sent if m in in_file],
        [in_prom[m] - sent[m] for m in sent if m in in_prom],
        len(sent),
    )
