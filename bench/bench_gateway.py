"""Gateway benchmark: this gateway against the gateways users pick instead, and against a minimal forwarder.

Every system proxies to the same zero-latency OpenAI-compatible mock upstream (bench/gateway/mock_upstream.py)
over HTTP, so what is measured is the proxied path a user runs: server, request handling, upstream client,
telemetry. Systems, each its own process tree:

- floor: a bare ASGI forwarder on uvicorn (uvloop + httptools) with an aiohttp client, no framework, no
  telemetry (bench/gateway/floor.py); "floor, httpx client" prices the client.
- this gateway (`python -m app`, openai-compatible provider) with full telemetry exported over OTLP/gRPC to a
  loopback sink, and with `OTEL_SDK_DISABLED=true`.
- LiteLLM proxy without callbacks and with `callbacks: ["otel"]`; a FastAPI + `openai` + official
  opentelemetry-instrumentation-openai-v2/-fastapi proxy, instrumented and not. The peers are installed into
  their own venvs from PyPI with pinned versions (bench/gateway/peers.py; versions printed in the table).

Load: a cheap keep-alive HTTP/1.1 client (bench/gateway/raw_client.py, on uvloop), closed loop, 16
connections; systems are rotated over rounds and medians reported. CPU is the whole process tree's
(utime + stime of the process, its threads and children, from /proc), per request served. The machine is
shared: compare ratios within one run.

    .venv/bin/python bench/bench_gateway.py            # ~5 minutes (make bench-gateway)
    .venv/bin/python bench/bench_gateway.py --quick    # ~2 minutes, one round
    .venv/bin/python bench/bench_gateway.py --breakdown  # also: what each part of the gateway costs
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE / "gateway"))

import peers  # noqa: E402
from otlp_sink import OtlpSink  # noqa: E402
from raw_client import build_request, run_closed_loop  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
BODY = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "Summarise OTLP in one line."}],
    "max_tokens": 32,
    "temperature": 0.2,
}
WORKLOADS = ("non-stream", "stream")
# Every system gets the same bearer token: LiteLLM's proxy refuses to start without a master key (the others
# are open and ignore it).
API_KEY = "sk-bench-" + secrets.token_hex(24)
AUTH = {"Authorization": f"Bearer {API_KEY}"}
FLUSH_ENV = {"OTEL_BSP_SCHEDULE_DELAY": "1000", "OTEL_BLRP_SCHEDULE_DELAY": "1000"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stat_cpu(stat: str) -> float:
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime (all threads)


def _children(pid: int) -> list[int]:
    out: list[int] = []
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                out += [int(c) for c in (task / "children").read_text().split()]
    return out


def tree_cpu_seconds(pid: int) -> float:
    """CPU of ``pid`` and every live descendant (a finished child's time is in its parent's cutime only
    once waited for; the systems here keep their children alive)."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            total += _stat_cpu(Path(f"/proc/{p}/stat").read_text())
            todo += _children(p)
    return total


@dataclass
class System:
    key: str
    label: str
    command: list[str]
    env: dict[str, str]
    health: str
    service: str | None = None  # service.name of its telemetry, when it emits any
    versions: str = ""
    cwd: Path = REPO
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    def start(self, log_dir: Path) -> None:
        self.port = free_port()
        command = [c.replace("{port}", str(self.port)) for c in self.command]
        log = open(log_dir / f"{self.key}.log", "wb")  # noqa: SIM115 - kept open for the process's life
        self.proc = subprocess.Popen(
            command, cwd=self.cwd, env={**os.environ, **self.env}, stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 300  # LiteLLM takes minutes to start on a busy 2-core machine
        while True:
            if self.proc.poll() is not None:
                tail = (log_dir / f"{self.key}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{self.label} exited:\n{tail}")
            if time.monotonic() > deadline:
                self.stop()
                tail = (log_dir / f"{self.key}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{self.label} did not start:\n{tail}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}{self.health}", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def archive_app(ref: str, dest: Path) -> None:
    """The gateway (``app/``) as it was at git ``ref``, extracted into ``dest``."""
    archive = subprocess.run(["git", "archive", ref, "app"], cwd=REPO, check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)


def _gateway_config(upstream: str, work: Path) -> Path:
    path = work / "gateway.json"
    path.write_text(
        json.dumps(
            {"providers": {"mock": {"type": "openai-compatible", "base_url": upstream, "api_key": "sk-m"}}}
        )
    )
    return path


def _litellm_config(upstream: str, work: Path, otel: bool) -> Path:
    path = work / f"litellm{'-otel' if otel else ''}.yaml"
    settings = {"callbacks": ["otel"]} if otel else {}
    config = {
        "model_list": [
            {
                "model_name": "gpt-4o-mini",
                "litellm_params": {"model": "openai/gpt-4o-mini", "api_base": upstream, "api_key": "sk-mock"},
            }
        ],
        "litellm_settings": settings,
    }
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


def build_systems(
    upstream: str,
    sink: str,
    work: Path,
    only: set[str] | None,
    breakdown: bool = False,
    before: str | None = None,
    before_server: str = "as-installed",
) -> list[System]:
    py = sys.executable
    otel = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": sink,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_METRIC_EXPORT_INTERVAL": "5000",
        **FLUSH_ENV,
    }
    gw_cmd = [py, "-m", "app", "--port", "{port}", "--config", str(_gateway_config(upstream, work))]
    gw_env = {"GATEWAY_STDERR_LOGS": "false", **otel}
    systems = [
        System(
            "floor",
            "floor: bare ASGI + aiohttp (uvloop, httptools)",
            [py, str(HERE / "gateway" / "floor.py"), "{port}", upstream, "aiohttp"],
            {},
            "/healthz",
        ),
        System(
            "floor-httpx",
            "floor, httpx client instead",
            [py, str(HERE / "gateway" / "floor.py"), "{port}", upstream, "httpx"],
            {},
            "/healthz",
        ),
        System(
            "gateway",
            "this gateway, full telemetry",
            gw_cmd,
            {**gw_env, "OTEL_SERVICE_NAME": "bench-gateway"},
            "/healthz",
            service="bench-gateway",
        ),
        System(
            "gateway-off",
            "this gateway, OTEL_SDK_DISABLED=true",
            gw_cmd,
            {**gw_env, "OTEL_SDK_DISABLED": "true"},
            "/healthz",
        ),
    ]
    if only is None or only & {"litellm", "litellm-otel"}:
        versions = peers.ensure("litellm")
        lpy = str(peers.python("litellm"))
        lite_env = {
            "LITELLM_LOG": "ERROR",
            "LITELLM_TELEMETRY": "False",
            "DISABLE_SCHEMA_UPDATE": "true",
            "LITELLM_MASTER_KEY": API_KEY,
        }
        v = f"litellm {versions['litellm']}"
        systems += [
            System(
                "litellm",
                "LiteLLM proxy, no callbacks",
                [
                    lpy,
                    "-m",
                    "litellm.proxy.proxy_cli",
                    "--config",
                    str(_litellm_config(upstream, work, False)),
                    "--port",
                    "{port}",
                    "--host",
                    "127.0.0.1",
                    "--num_workers",
                    "1",
                ],
                lite_env,
                "/health/liveliness",
                versions=v,
            ),
            System(
                "litellm-otel",
                'LiteLLM proxy, callbacks: ["otel"]',
                [
                    lpy,
                    "-m",
                    "litellm.proxy.proxy_cli",
                    "--config",
                    str(_litellm_config(upstream, work, True)),
                    "--port",
                    "{port}",
                    "--host",
                    "127.0.0.1",
                    "--num_workers",
                    "1",
                ],
                {
                    **lite_env,
                    **otel,
                    "OTEL_SERVICE_NAME": "bench-litellm",
                    "OTEL_EXPORTER": "otlp_grpc",
                    "OTEL_ENDPOINT": sink,
                },
                "/health/liveliness",
                service="bench-litellm",
                versions=f"{v}, otel sdk {versions['opentelemetry-sdk']}",
            ),
        ]
    if only is None or only & {"diy", "diy-off"}:
        versions = peers.ensure("fastapi-openai")
        dpy = str(peers.python("fastapi-openai"))
        v = ", ".join(
            f"{k.replace('opentelemetry-instrumentation-', 'otel-')} {versions[k]}" for k in versions
        )
        diy = [dpy, str(HERE / "gateway" / "diy_proxy.py"), "{port}", upstream]
        systems += [
            System(
                "diy",
                "FastAPI + openai + openai-v2/fastapi instrumentation",
                diy,
                {
                    **otel,
                    "OTEL_SERVICE_NAME": "bench-diy",
                    "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "false",
                },
                "/healthz",
                service="bench-diy",
                versions=v,
            ),
            System(
                "diy-off",
                "the same, OTEL_SDK_DISABLED=true",
                diy,
                {"OTEL_SDK_DISABLED": "true"},
                "/healthz",
                versions=v,
            ),
        ]
    if before is not None:
        src = work / "before"
        src.mkdir()
        archive_app(before, src)
        systems.insert(
            3,
            System(
                "gateway-before",
                f"this gateway at {before}"
                + (" (asyncio + h11)" if before_server == "asyncio-h11" else "")
                + ", full telemetry",
                [py, str(HERE / "gateway" / "run_ref.py"), str(src), *gw_cmd[3:]],
                {
                    **gw_env,
                    "OTEL_SERVICE_NAME": "bench-gateway-before",
                    "RUN_REF_SERVER": before_server,
                },
                "/healthz",
                service="bench-gateway-before",
            ),
        )
    if breakdown:
        ablate = [py, str(HERE / "gateway" / "ablate.py"), *gw_cmd[3:]]
        for part, label in BREAKDOWN_PARTS:
            systems.append(
                System(
                    f"gw-no-{part}",
                    f"this gateway without {label}",
                    ablate,
                    {**gw_env, "OTEL_SERVICE_NAME": f"bench-gw-no-{part}", "ABLATE": part},
                    "/healthz",
                )
            )
    extra = ("gw-no-", "gateway-before")
    return [s for s in systems if only is None or s.key in only or s.key.startswith(extra)]


# --breakdown: the gateway with one part of its telemetry off each (bench/gateway/ablate.py); a part's cost is
# the full gateway's CPU per request minus that gateway's.
BREAKDOWN_PARTS = [
    ("http_server", "HTTP server telemetry (server span, http.server.* metrics)"),
    ("http_client", "HTTP client telemetry (client span, http.client.request.duration)"),
    ("genai_span", "the GenAI span"),
    ("genai_metrics", "the GenAI call metrics"),
    ("request_log", "the per-request log record"),
    (
        "http_server,http_client,genai_span,genai_metrics,request_log",
        "all five (SDK set up, nothing recorded)",
    ),
]


@dataclass
class Result:
    key: str
    workload: str
    requests: int
    errors: int
    elapsed: float
    cpu_s: float
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.elapsed

    @property
    def cpu_us(self) -> float:
        return self.cpu_s / max(self.requests, 1) * 1e6


def _run_loop(coro: object) -> tuple[list[float], int]:
    try:
        import uvloop

        return uvloop.run(coro)  # type: ignore[arg-type]
    except ImportError:  # pragma: no cover
        return asyncio.run(coro)  # type: ignore[arg-type]


def drive(port: int, stream: bool, duration: float, concurrency: int) -> tuple[list[float], int]:
    body = {**BODY, "stream": True, "stream_options": {"include_usage": True}} if stream else BODY
    request = build_request("127.0.0.1", port, "/v1/chat/completions", body, AUTH)
    suffix = b"data: [DONE]\n\n" if stream else b"}"
    return _run_loop(run_closed_loop("127.0.0.1", port, request, duration, concurrency, suffix))


def measure(system: System, workload: str, duration: float, concurrency: int) -> Result:
    assert system.proc is not None
    drive(system.port, workload == "stream", min(1.0, duration / 4), concurrency)  # warm-up
    cpu0, t0 = tree_cpu_seconds(system.proc.pid), time.perf_counter()
    lat, errors = drive(system.port, workload == "stream", duration, concurrency)
    elapsed = time.perf_counter() - t0
    cpu1 = tree_cpu_seconds(system.proc.pid)
    lat.sort()
    n = len(lat)
    return Result(
        system.key,
        workload,
        n,
        errors,
        elapsed,
        cpu1 - cpu0,
        lat[n // 2] * 1e3 if n else 0.0,
        lat[min(n - 1, int(n * 0.99))] * 1e3 if n else 0.0,
    )


def rotated(items: list[str], r: int) -> list[str]:
    k = r % len(items)
    return items[k:] + items[:k]


@dataclass
class Median:
    rps: float
    p50: float
    p99: float
    cpu_us: float
    errors: int


def median_of(results: list[Result]) -> Median:
    return Median(
        statistics.median(r.rps for r in results),
        statistics.median(r.p50_ms for r in results),
        statistics.median(r.p99_ms for r in results),
        statistics.median(r.cpu_us for r in results),
        sum(r.errors for r in results),
    )


@dataclass
class Contents:
    spans_per_request: float
    span_names: list[str]
    usage: bool
    cost: bool
    metrics: list[str]
    logs_per_request: float
    log_attributes: int


def _settled_counts(
    sink: OtlpSink, service: str, quiet_s: float = 2.5, limit_s: float = 30.0
) -> tuple[int, int]:
    """The service's span and log counts once nothing more has arrived for ``quiet_s`` (longer than the
    1 s batch delay): the batches still in the export queues from the measured load would otherwise be
    counted as the probe's. A service still sending after ``limit_s`` is an error, not a count."""
    deadline = time.monotonic() + limit_s
    last = (-1, -1)
    quiet_since = time.monotonic()
    while True:
        svc = sink.service(service)
        now_counts = (svc.spans, svc.logs)
        if now_counts != last:
            last, quiet_since = now_counts, time.monotonic()
        elif time.monotonic() - quiet_since >= quiet_s:
            return last
        if time.monotonic() > deadline:
            raise RuntimeError(f"{service}: telemetry still arriving {limit_s:.0f} s after the load ended")
        time.sleep(0.25)


def probe_contents(system: System, sink: OtlpSink, n: int = 10) -> Contents | None:
    """Send ``n`` non-stream and ``n`` stream requests and read back what reached the sink for them."""
    if system.service is None:
        return None
    spans0, logs0 = _settled_counts(sink, system.service)
    for stream in (False, True):
        body = {**BODY, "stream": True, "stream_options": {"include_usage": True}} if stream else BODY
        for _ in range(n):
            httpx.post(
                f"http://127.0.0.1:{system.port}/v1/chat/completions", json=body, headers=AUTH, timeout=30
            ).read()
    time.sleep(6.5)  # span/log batch delay 1 s, metric interval 5 s
    svc = sink.service(system.service)
    attrs = svc.span_attributes
    return Contents(
        (svc.spans - spans0) / (2 * n),
        sorted(svc.span_names),
        any("usage" in a and "token" in a for a in attrs),
        any("cost" in a for a in attrs),
        sorted(svc.metric_names),
        (svc.logs - logs0) / (2 * n),
        len(svc.log_attributes),
    )


@contextlib.contextmanager
def running(systems: list[System], upstream_port: int, log_dir: Path) -> Iterator[subprocess.Popen[bytes]]:
    mock = subprocess.Popen([sys.executable, str(HERE / "gateway" / "mock_upstream.py"), str(upstream_port)])
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", upstream_port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        started: list[System] = []
        try:
            for s in systems:
                print(f"==> starting {s.label}", file=sys.stderr)
                s.start(log_dir)
                started.append(s)
            yield mock
        finally:
            for s in started:
                s.stop()
    finally:
        mock.terminate()
        mock.wait(timeout=10)


@dataclass
class Run:
    systems: list[System]
    results: dict[tuple[str, str], list[Result]] = field(default_factory=dict)
    mock_cpu_us: dict[str, list[float]] = field(default_factory=dict)
    contents: dict[str, Contents | None] = field(default_factory=dict)


def measure_rounds(out: Run, mock_pid: int, args: argparse.Namespace) -> None:
    keys = [s.key for s in out.systems]
    by_key = {s.key: s for s in out.systems}
    for r in range(args.rounds):
        for workload in WORKLOADS:
            for key in rotated(keys, r):
                m0 = tree_cpu_seconds(mock_pid)
                res = measure(by_key[key], workload, args.duration, args.concurrency)
                mock_us = (tree_cpu_seconds(mock_pid) - m0) / max(res.requests, 1) * 1e6
                out.mock_cpu_us.setdefault(workload, []).append(mock_us)
                out.results.setdefault((key, workload), []).append(res)
                print(
                    f"round {r + 1}/{args.rounds} {workload:10s} {key:14s} {res.rps:7.0f} req/s "
                    f"p50 {res.p50_ms:6.2f} ms p99 {res.p99_ms:6.2f} ms cpu {res.cpu_us:7.0f} us/req"
                    f"{f' ERRORS {res.errors}' if res.errors else ''}",
                    file=sys.stderr,
                )


def run(args: argparse.Namespace, only: set[str] | None) -> Run:
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp:
        work = Path(tmp)
        upstream_port = free_port()
        upstream = f"http://127.0.0.1:{upstream_port}/v1"
        sink = OtlpSink().start()
        try:
            systems = build_systems(
                upstream, sink.endpoint, work, only, args.breakdown, args.before, args.before_server
            )
            out = Run(systems)
            with running(systems, upstream_port, work) as mock:
                measure_rounds(out, mock.pid, args)
                sink.detail = True
                for s in systems:
                    out.contents[s.key] = probe_contents(s, sink)
            if any(r.errors for rs in out.results.values() for r in rs):
                for s in systems:
                    log = work / f"{s.key}.log"
                    if log.exists() and log.stat().st_size:
                        print(
                            f"--- {s.key} log (tail)\n{log.read_text(errors='replace')[-2000:]}",
                            file=sys.stderr,
                        )
        finally:
            sink.stop()
    return out


def dump_run(out: Run, args: argparse.Namespace) -> dict[str, Any]:
    """The run's raw measurements (beside the table), so a table can be re-rendered (--render)."""
    return {
        "rounds": args.rounds,
        "duration": args.duration,
        "concurrency": args.concurrency,
        "systems": [{"key": s.key, "label": s.label, "versions": s.versions} for s in out.systems],
        "results": [dataclasses.asdict(r) for rs in out.results.values() for r in rs],
        "mock_cpu_us": out.mock_cpu_us,
        "contents": {k: dataclasses.asdict(c) if c else None for k, c in out.contents.items()},
    }


def load_run(path: Path) -> tuple[Run, dict[str, Any]]:
    saved = json.loads(path.read_text(encoding="utf-8"))
    systems = [System(s["key"], s["label"], [], {}, "", versions=s["versions"]) for s in saved["systems"]]
    out = Run(systems, mock_cpu_us=saved["mock_cpu_us"])
    for r in saved["results"]:
        out.results.setdefault((r["key"], r["workload"]), []).append(Result(**r))
    out.contents = {k: Contents(**c) if c else None for k, c in saved["contents"].items()}
    return out, saved


def _x(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else ""


def table(out: Run, args: argparse.Namespace) -> list[str]:
    keys = [s.key for s in out.systems]
    main_systems = [s for s in out.systems if not s.key.startswith("gw-no-")]
    med = {(k, w): median_of(rs) for (k, w), rs in out.results.items()}
    lines = [
        f"Proxied path, zero-latency mock upstream, {args.concurrency} keep-alive connections, "
        f"{args.rounds} rotated round(s) of {args.duration:.0f} s per system and workload, medians. "
        "CPU = the system's whole process tree, per request served.",
        "",
        "| workload | system | req/s | p50 ms | p99 ms | CPU µs/req | CPU vs this gateway | CPU vs floor |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for workload in WORKLOADS:
        gw = med.get(("gateway", workload))
        floor = med.get(("floor", workload))
        for s in main_systems:
            m = med[(s.key, workload)]
            err = f" ({m.errors} errors)" if m.errors else ""
            lines.append(
                f"| {workload} | {s.label}{err} | {m.rps:.0f} | {m.p50:.2f} | {m.p99:.2f} | {m.cpu_us:.0f} | "
                f"{_x(m.cpu_us, gw.cpu_us) if gw else ''} | {_x(m.cpu_us, floor.cpu_us) if floor else ''} |"
            )
    mock = {w: statistics.median(v) for w, v in out.mock_cpu_us.items()}
    lines += [
        "",
        f"- Mock upstream CPU (not counted above): {mock.get('non-stream', 0):.0f} / "
        f"{mock.get('stream', 0):.0f} µs per request (non-stream / stream). Load client: "
        "bench/gateway/raw_client.py on uvloop, in the bench process.",
        f"- Machine: {os.cpu_count()} CPUs shared with other work, Python {sys.version.split()[0]}; "
        "compare ratios within this run.",
    ]
    vers = sorted({s.versions for s in out.systems if s.versions})
    if vers:
        lines.append(
            "- Peer versions (own venvs under build/bench-peers/, from PyPI): " + "; ".join(vers) + "."
        )
    if "floor" in keys and "gateway" in keys:
        for workload in WORKLOADS:
            ratio = med[("gateway", workload)].cpu_us / med[("floor", workload)].cpu_us
            per_round = [
                g.cpu_us / f.cpu_us
                for g, f in zip(
                    out.results[("gateway", workload)], out.results[("floor", workload)], strict=False
                )
            ]
            lines.append(
                f"- Goal: this gateway with full telemetry within 2x of the floor's CPU/request, {workload}: "
                f"{ratio:.2f}x (rounds: {', '.join(f'{r:.2f}x' for r in per_round)}) -> "
                f"{'met' if ratio <= 2 else 'NOT met'}."
            )
    ablated = [s for s in out.systems if s.key.startswith("gw-no-")]
    if ablated and "gateway" in keys:
        lines += [
            "",
            "Breakdown: what each part of the gateway's telemetry costs (full gateway's CPU per request "
            "minus that of a gateway without the part, bench/gateway/ablate.py; same run):",
            "",
            "| gateway | non-stream CPU µs/req | saved | stream CPU µs/req | saved |",
            "|---|---:|---:|---:|---:|",
        ]
        for s in [next(x for x in out.systems if x.key == "gateway"), *ablated]:
            row = f"| {s.label} |"
            for workload in WORKLOADS:
                full = med[("gateway", workload)].cpu_us
                cpu = med[(s.key, workload)].cpu_us
                row += f" {cpu:.0f} | {'' if s.key == 'gateway' else f'{full - cpu:.0f}'} |"
            lines.append(row)
    lines += [
        "",
        "What each system's telemetry contains (10 non-stream + 10 stream requests, read back from the "
        "sink):",
        "",
        "| system | spans/request | span names | usage on spans | cost on spans | metrics | logs/request |",
        "|---|---:|---|---|---|---|---:|",
    ]
    for s in main_systems:
        c = out.contents.get(s.key)
        if c is None:
            lines.append(f"| {s.label} | 0 | — | — | — | — | 0 |")
            continue
        names = ", ".join(f"`{n}`" for n in c.span_names[:6])
        metrics = ", ".join(f"`{m}`" for m in c.metrics[:8]) + (" …" if len(c.metrics) > 8 else "")
        lines.append(
            f"| {s.label} | {c.spans_per_request:.1f} | {names} | {'yes' if c.usage else 'no'} | "
            f"{'yes' if c.cost else 'no'} | {len(c.metrics)}: {metrics} | {c.logs_per_request:.1f} |"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="one round of 3 s")
    parser.add_argument("--duration", type=float, default=None, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--systems", default=None, help="comma-separated keys (default: all)")
    parser.add_argument(
        "--breakdown", action="store_true", help="also run the gateway with each part of its telemetry off"
    )
    parser.add_argument(
        "--before",
        metavar="GIT_REF",
        help="also run the gateway as it was at GIT_REF (needs the bench extra: the old instrumentations)",
    )
    parser.add_argument(
        "--before-server",
        choices=("as-installed", "asyncio-h11"),
        default="as-installed",
        help="uvicorn loop/parser for --before: as installed here (uvloop + httptools), or asyncio + h11 "
        "for refs from before those became dependencies (e.g. 29e4a9c)",
    )
    parser.add_argument("--render", metavar="JSON", help="only re-render the table from a saved run")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "gateway.md")
    args = parser.parse_args()
    # Stopped (make, a CI timeout): still stop every process this run started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args.duration = args.duration or (3.0 if args.quick else 4.0)
    args.rounds = args.rounds or (1 if args.quick else 3)
    only = set(args.systems.split(",")) if args.systems else None
    raw = args.out.with_suffix(".json")
    if args.render:
        out, saved = load_run(Path(args.render))
        args.rounds, args.duration, args.concurrency = (
            saved["rounds"],
            saved["duration"],
            saved["concurrency"],
        )
    else:
        out = run(args, only)
        raw.parent.mkdir(parents=True, exist_ok=True)
        raw.write_text(json.dumps(dump_run(out, args), indent=1), encoding="utf-8")
    lines = table(out, args)
    text = "\n".join(lines)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("# Gateway benchmark\n\n" + text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
