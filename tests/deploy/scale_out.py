"""The chart's two-tier topology as native processes on loopback, for tests/deploy/test_scale_out.py and
bench/bench_scale_out.py:

    client ──OTLP──▶ load-balancing Collector ──by trace id──▶ gateway-tier pair 1..N ──▶ sink 1..N
                     (files/collector/loadbalancer.yaml)        Collector (otel-collector/config.yaml +
                                                                the chart's overlay) + sidecar (processors)

Every Collector runs the repository's real configuration files with environment overrides only; the resolver
of the load-balancing tier is `static` (the chart renders `k8s` or `dns`, which need a cluster). Each gateway
pair exports traces with its production `otlp_grpc/tempo` exporter (persistent queue) to its own sink: a
Collector (tests/deploy/sink-collector.yaml) standing where Tempo stands, writing what it receives to a file,
so that what each gateway-tier instance delivered can be read back separately.
"""

from __future__ import annotations

import functools
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from tests.stack_support import (
    COLLECTOR_BIN,
    COLLECTOR_PORTS,
    REPO,
    CollectorProcess,
    attr,
    exported_spans,
    http_status,
    wait_for,
)

CHART_FILES = REPO / "deploy" / "helm" / "llm-otel-pipeline" / "files" / "collector"
LB_CONFIG = CHART_FILES / "loadbalancer.yaml"
SINK_CONFIG = Path(__file__).with_name("sink-collector.yaml")
TRACE_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
# As the chart runs the gateway tier (templates/gateway-tier.yaml).
GATEWAY_FEATURE_GATES = "--feature-gates=connector.spanmetrics.includeCollectorInstanceID"


# --- ports ----------------------------------------------------------------------------------------

_handed_out: set[int] = set()
_port_lock = threading.Lock()


def free_ports(n: int) -> list[int]:
    """n free loopback ports below 32768. The OS picks outgoing connections' local ports from 32768 up, so
    a port taken from there at set-up can be grabbed by one of the topology's own connections before the
    process meant to listen on it starts (gateway pairs are started one after another, and restarted)."""
    rng = random.Random()
    out: list[int] = []
    with _port_lock:
        while len(out) < n:
            port = rng.randrange(20000, 32000)
            if port in _handed_out:
                continue
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
            _handed_out.add(port)
            out.append(port)
    return out


# --- processes ------------------------------------------------------------------------------------


@dataclass
class Proc:
    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    health_url: str | None = None
    popen: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.popen = subprocess.Popen(
                self.argv,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                start_new_session=True,
            )
        if self.health_url:
            url = self.health_url

            def ready() -> bool:
                assert self.popen is not None
                if self.popen.poll() is not None:
                    raise AssertionError(f"{self.name} exited with {self.popen.returncode}:\n{self.tail()}")
                return http_status(url) == 200

            wait_for(ready, timeout, f"{self.name} to be healthy")

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.alive():
            assert self.popen is not None
            os.killpg(self.popen.pid, sig)
            self.popen.wait(30)

    def stop(self) -> None:
        if self.alive():
            assert self.popen is not None
            self.popen.terminate()
            try:
                self.popen.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(10)

    def cpu_seconds(self) -> float:
        """User + system CPU of the process (and its reaped children) so far."""
        if not self.alive():
            return 0.0
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
        return ticks / os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> float:
        if not self.alive():
            return 0.0
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def _base_env() -> dict[str, str]:
    env = dict(os.environ)
    for var in ("OTLP_INGEST_TOKEN", "COLLECTOR_NATIVE", "OTEL_EXPORTER_OTLP_HEADERS"):
        env.pop(var, None)
    return env


@dataclass
class Sink:
    """A Collector where Tempo would be: OTLP in, the file exporter out."""

    root: Path
    ports: dict[str, int] = field(default_factory=dict)
    proc: Proc | None = None

    def __post_init__(self) -> None:
        self.ports = dict(zip(["grpc", "http", "health", "telemetry"], free_ports(4), strict=True))
        env = _base_env() | {
            "SINK_GRPC_ENDPOINT": f"127.0.0.1:{self.ports['grpc']}",
            "SINK_HTTP_ENDPOINT": f"127.0.0.1:{self.ports['http']}",
            "SINK_HEALTH_ENDPOINT": f"127.0.0.1:{self.ports['health']}",
            "SINK_TELEMETRY_PORT": str(self.ports["telemetry"]),
            "SINK_DIR": str(self.root),
        }
        self.proc = Proc(
            f"sink {self.root.name}",
            [str(COLLECTOR_BIN), "--config", str(SINK_CONFIG)],
            env,
            self.root / "sink.log",
            f"http://127.0.0.1:{self.ports['health']}/",
        )

    @property
    def traces_file(self) -> Path:
        return self.root / "traces.jsonl"

    def accepted_spans(self) -> float:
        return scrape_sum(self.ports["telemetry"], "otelcol_receiver_accepted_spans")


@dataclass
class GatewayPair:
    """One gateway-tier pod: the Collector (otel-collector/config.yaml via run.sh) and its sidecar."""

    root: Path
    sink: Sink
    sidecar_workers: int = 1
    overlays: tuple[Path, ...] = ()
    ports: dict[str, int] = field(default_factory=dict)
    collector: Proc | None = None
    sidecar: Proc | None = None

    def __post_init__(self) -> None:
        names = [*COLLECTOR_PORTS, "sidecar"]
        self.ports = dict(zip(names, free_ports(len(names)), strict=True))
        p = self.ports
        # the same wiring as every test's Collector, with the production exporters (to this pair's sink)
        wiring = CollectorProcess(
            self.root,
            extra_env={
                "SIDECAR_ENDPOINT": f"127.0.0.1:{p['sidecar']}",
                "TEMPO_OTLP_ENDPOINT": f"127.0.0.1:{self.sink.ports['grpc']}",
                "LOKI_OTLP_ENDPOINT": f"http://127.0.0.1:{self.sink.ports['http']}/otlp",
            },
            ports={name: p[name] for name in COLLECTOR_PORTS},
            native=False,
            args=(*(f"--config={o}" for o in self.overlays), GATEWAY_FEATURE_GATES),
        )
        self.collector = Proc(
            f"gateway collector {self.root.name}",
            wiring.command(),
            wiring.env(),
            self.root / "collector.log",
            wiring.health_url,
        )
        side_env = _base_env() | {
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{p['otlp_grpc']}",
            "OTEL_METRIC_EXPORT_INTERVAL": "1000",
            "OTEL_SERVICE_NAME": "llm-otel-sidecar",
        }
        self.sidecar = Proc(
            f"sidecar {self.root.name}",
            [
                sys.executable,
                "-m",
                "processors",
                "--listen",
                f"127.0.0.1:{p['sidecar']}",
                "--forward",
                f"127.0.0.1:{p['internal_otlp']}",
                "--workers",
                str(self.sidecar_workers),
                "--log-level",
                "WARNING",
            ],
            side_env,
            self.root / "sidecar.log",
        )

    @property
    def otlp(self) -> str:
        return f"127.0.0.1:{self.ports['otlp_grpc']}"

    def start(self) -> None:
        assert self.collector is not None and self.sidecar is not None
        self.collector.start()
        self.sidecar.start()
        wait_for(lambda: _grpc_serving(self.ports["sidecar"]), 30, f"sidecar {self.root.name} to serve")

    def kill(self) -> None:
        """SIGKILL both containers of the pod at once (an OOM kill or a node failure, not a graceful stop)."""
        assert self.collector is not None and self.sidecar is not None
        self.collector.kill(signal.SIGKILL)
        self.sidecar.kill(signal.SIGKILL)

    def stop(self) -> None:
        assert self.collector is not None and self.sidecar is not None
        self.collector.stop()
        self.sidecar.stop()

    def cost_counter(self) -> float:
        """This instance's sidecar cost counter (sidecar.gen_ai.cost, USD), from its prometheus exporter."""
        return scrape_sum(self.ports["prom_exporter"], "sidecar_gen_ai_cost")


@dataclass
class Topology:
    root: Path
    gateways: int
    sidecar_workers: int = 1
    overlays: tuple[Path, ...] = ()
    sinks: list[Sink] = field(default_factory=list)
    pairs: list[GatewayPair] = field(default_factory=list)
    lb: Proc | None = None
    lb_ports: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for i in range(self.gateways):
            sink = Sink(self.root / f"sink-{i}")
            self.sinks.append(sink)
            self.pairs.append(
                GatewayPair(self.root / f"gateway-{i}", sink, self.sidecar_workers, self.overlays)
            )
        names = ["otlp_grpc", "otlp_http", "health_check", "collector_telemetry", "zpages", "pprof"]
        self.lb_ports = dict(zip(names, free_ports(len(names)), strict=True))
        resolver = self.root / "lb" / "resolver.static.yaml"
        resolver.parent.mkdir(parents=True, exist_ok=True)
        hosts = [pair.otlp for pair in self.pairs]
        resolver.write_text(
            json.dumps(
                {
                    "exporters": {
                        exp: {"resolver": {"static": {"hostnames": hosts}}}
                        for exp in ("loadbalancing/traces", "loadbalancing/metrics")
                    }
                }
            )
        )
        p = self.lb_ports
        env = _base_env() | {
            "OTLP_GRPC_ENDPOINT": f"127.0.0.1:{p['otlp_grpc']}",
            "OTLP_HTTP_ENDPOINT": f"127.0.0.1:{p['otlp_http']}",
            "HEALTH_CHECK_ENDPOINT": f"127.0.0.1:{p['health_check']}",
            "COLLECTOR_TELEMETRY_HOST": "127.0.0.1",
            "COLLECTOR_TELEMETRY_PORT": str(p["collector_telemetry"]),
            "ZPAGES_ENDPOINT": f"127.0.0.1:{p['zpages']}",
            "PPROF_ENDPOINT": f"127.0.0.1:{p['pprof']}",
            "COLLECTOR_STORAGE_DIR": str(self.root / "lb" / "queue"),
        }
        self.lb = Proc(
            "load-balancing collector",
            [str(COLLECTOR_BIN), "--config", str(LB_CONFIG), "--config", str(resolver)],
            env,
            self.root / "lb" / "collector.log",
            f"http://127.0.0.1:{p['health_check']}/",
        )

    @property
    def entry(self) -> str:
        return f"127.0.0.1:{self.lb_ports['otlp_grpc']}"

    def processes(self) -> dict[str, Proc]:
        procs: dict[str, Proc] = {}
        assert self.lb is not None
        procs["load-balancer"] = self.lb
        for i, pair in enumerate(self.pairs):
            assert pair.collector is not None and pair.sidecar is not None
            procs[f"gateway-{i} collector"] = pair.collector
            procs[f"gateway-{i} sidecar"] = pair.sidecar
        for i, sink in enumerate(self.sinks):
            assert sink.proc is not None
            procs[f"sink-{i}"] = sink.proc
        return procs

    def start(self) -> None:
        for sink in self.sinks:
            assert sink.proc is not None
            sink.proc.start()
        for pair in self.pairs:
            pair.start()
        assert self.lb is not None
        self.lb.start()

    def stop(self) -> None:
        """Entry first, sinks last, so what is in flight drains downstream."""
        if self.lb is not None:
            self.lb.stop()
        for pair in self.pairs:
            pair.stop()
        for sink in self.sinks:
            if sink.proc is not None:
                sink.proc.stop()

    def logs_tail(self) -> str:
        return "\n".join(f"--- {name}\n{proc.tail(15)}" for name, proc in self.processes().items())


# --- Prometheus text -------------------------------------------------------------------------------


def scrape_sum(port: int, prefix: str) -> float:
    """Sum of every sample whose metric name starts with `prefix` and is a counter total."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    except OSError:
        return float("nan")
    total = 0.0
    for line in text.splitlines():
        if line.startswith(prefix) and "_total" in line.split("{", 1)[0].split(" ", 1)[0]:
            total += float(line.rsplit(" ", 1)[1])
    return total


def _grpc_serving(port: int) -> bool:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            resp = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=2)
        return bool(resp.status == health_pb2.HealthCheckResponse.SERVING)
    except grpc.RpcError:
        return False


# --- traffic ---------------------------------------------------------------------------------------


def _kv(key: str, val: object) -> KeyValue:
    if isinstance(val, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=val))
    if isinstance(val, int):
        return KeyValue(key=key, value=AnyValue(int_value=val))
    if isinstance(val, float):
        return KeyValue(key=key, value=AnyValue(double_value=val))
    return KeyValue(key=key, value=AnyValue(string_value=str(val)))


MODELS = [("openai", "gpt-4o-mini"), ("openai", "gpt-4o"), ("anthropic", "claude-3-5-sonnet-20241022")]


@dataclass
class Batch:
    payload: bytes
    span_ids: list[str]
    trace_ids: list[str]


def make_batch(rng: random.Random, traces: int, service: str = "scale-out-app") -> Batch:
    """`traces` traces of 4 spans each (HTTP server span, GenAI chat span with token usage and a prompt,
    two internal spans); one prompt in ten carries an e-mail address for the sidecar to redact."""
    spans: list[Span] = []
    span_ids: list[str] = []
    trace_ids: list[str] = []
    now = time.time_ns()
    for _ in range(traces):
        tid = rng.randbytes(16)
        trace_ids.append(tid.hex())
        root = rng.randbytes(8)
        provider, model = rng.choice(MODELS)
        prompt = f"Summarise ticket {rng.randrange(10**6)}: " + "lorem ipsum dolor sit amet " * rng.randrange(
            8, 40
        )
        if rng.random() < 0.1:
            prompt += f" contact jane.doe{rng.randrange(1000)}@example.com"
        messages = json.dumps([{"role": "user", "parts": [{"type": "text", "content": prompt}]}])
        shapes: list[tuple[str, int, list[KeyValue]]] = [
            (
                "POST /v1/chat/completions",
                Span.SPAN_KIND_SERVER,
                [
                    _kv("http.request.method", "POST"),
                    _kv("http.route", "/v1/chat/completions"),
                    _kv("http.response.status_code", 200),
                    _kv("url.scheme", "http"),
                    _kv("server.address", "gateway.internal"),
                    _kv("user_agent.original", "python-httpx/0.27"),
                ],
            ),
            (
                f"chat {model}",
                Span.SPAN_KIND_CLIENT,
                [
                    _kv("gen_ai.operation.name", "chat"),
                    _kv("gen_ai.provider.name", provider),
                    _kv("gen_ai.request.model", model),
                    _kv("gen_ai.response.model", model),
                    _kv("gen_ai.usage.input_tokens", rng.randrange(50, 3000)),
                    _kv("gen_ai.usage.output_tokens", rng.randrange(10, 800)),
                    _kv("gen_ai.input.messages", messages),
                ],
            ),
            ("route", Span.SPAN_KIND_INTERNAL, [_kv("gateway.route", model)]),
            ("tenant lookup", Span.SPAN_KIND_INTERNAL, [_kv("tenant", "team-a")]),
        ]
        for i, (name, kind, attrs) in enumerate(shapes):
            sid = root if i == 0 else rng.randbytes(8)
            span_ids.append(sid.hex())
            spans.append(
                Span(
                    trace_id=tid,
                    span_id=sid,
                    parent_span_id=b"" if i == 0 else root,
                    name=name,
                    kind=kind,  # type: ignore[arg-type]
                    start_time_unix_nano=now,
                    end_time_unix_nano=now + 1_000_000 * (i + 1),
                    attributes=attrs,
                )
            )
    req = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(
                    attributes=[_kv("service.name", service), _kv("service.instance.id", "app-1")]
                ),
                scope_spans=[ScopeSpans(scope=InstrumentationScope(name="scale-out"), spans=spans)],
            )
        ]
    )
    return Batch(req.SerializeToString(), span_ids, trace_ids)


@dataclass
class SendStats:
    acked_span_ids: set[str] = field(default_factory=set)
    acked_spans: int = 0
    failed_requests: int = 0
    sent_requests: int = 0
    errors: dict[str, int] = field(default_factory=dict)


def send(
    endpoint: str,
    batches: Iterable[Batch],
    in_flight: int = 8,
    stop: Callable[[], bool] = lambda: False,
    record_ids: bool = True,
    timeout: float = 10.0,
) -> SendStats:
    """Send every batch (OTLP/gRPC Export, raw bytes), at most `in_flight` at once; a span counts as
    acknowledged only when its request returned OK with no rejected spans."""
    stats = SendStats()
    lock = threading.Lock()
    slots = threading.Semaphore(in_flight)
    channel = grpc.insecure_channel(endpoint, options=[("grpc.max_send_message_length", 64 * 1024 * 1024)])
    call = channel.unary_unary(TRACE_METHOD, request_serializer=None, response_deserializer=None)

    def done(batch: Batch, fut: grpc.Future[bytes]) -> None:
        try:
            raw = fut.result()
            rejected = ExportTraceServiceResponse.FromString(raw).partial_success.rejected_spans
            with lock:
                if rejected:
                    stats.failed_requests += 1
                    stats.errors["partial_success"] = stats.errors.get("partial_success", 0) + 1
                else:
                    stats.acked_spans += len(batch.span_ids)
                    if record_ids:
                        stats.acked_span_ids.update(batch.span_ids)
        except grpc.RpcError as exc:
            code = exc.code().name if hasattr(exc, "code") else "error"
            with lock:
                stats.failed_requests += 1
                stats.errors[code] = stats.errors.get(code, 0) + 1
        finally:
            slots.release()

    try:
        for batch in batches:
            if stop():
                break
            slots.acquire()
            stats.sent_requests += 1
            fut = call.future(batch.payload, timeout=timeout)
            fut.add_done_callback(functools.partial(done, batch))
        for _ in range(in_flight):
            slots.acquire()
    finally:
        channel.close()
    return stats


# --- read back -------------------------------------------------------------------------------------


@dataclass
class Delivered:
    """What one sink received: span ids per trace id, and the sum of the spans' gen_ai.usage.cost."""

    by_trace: dict[str, set[str]]
    span_ids: set[str]
    records: int
    cost: float


def delivered(path: Path) -> Delivered:
    by_trace: dict[str, set[str]] = {}
    ids: set[str] = set()
    cost = 0.0
    records = 0
    for span in exported_spans(path):
        records += 1
        by_trace.setdefault(span["traceId"], set()).add(span["spanId"])
        ids.add(span["spanId"])
        c = attr(span, "gen_ai.usage.cost")
        if c is not None:
            cost += float(c)
    return Delivered(by_trace, ids, records, cost)


def summary(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items())
