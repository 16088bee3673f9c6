"""Gateway overhead benchmark: OpenTelemetry on vs OTEL_SDK_DISABLED=true, all modes in one run.

Every mode serves the simulated provider with zero latency, so the gateway itself is the bottleneck and the
difference is what OpenTelemetry costs: FastAPI server spans and HTTP metrics, the GenAI span, GenAI metrics
with trace-based exemplars, one OTLP log record per request, and batch export over OTLP/gRPC to a loopback
sink started here (bench/gateway/otlp_sink.py). The JSON request log on stderr is off in every mode.
Load comes from a cheap keep-alive client (bench/gateway/raw_client.py) so the client is not the bottleneck.
Modes are rotated over rounds and medians reported, because the machine is shared: compare ratios within one
run.

    .venv/bin/python bench/bench_gateway.py            # ~3 minutes
    .venv/bin/python bench/bench_gateway.py --quick    # ~40 seconds
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE / "gateway"))

from otlp_sink import OtlpSink  # noqa: E402
from raw_client import build_request, run_closed_loop  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
BODY = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "Summarise OTLP in one line."}],
    "max_tokens": 32,
    "temperature": 0.2,
}


@dataclass
class Result:
    mode: str
    workload: str
    requests: int
    errors: int
    elapsed: float
    cpu_s: float
    p50_ms: float
    p99_ms: float
    other_threads_cpu_s: float = 0.0

    @property
    def rps(self) -> float:
        return self.requests / self.elapsed

    @property
    def cpu_us_per_req(self) -> float:
        return self.cpu_s / max(self.requests, 1) * 1e6

    @property
    def other_threads_us_per_req(self) -> float:
        return self.other_threads_cpu_s / max(self.requests, 1) * 1e6


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_seconds(stat: Path) -> float:
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def process_cpu_seconds(pid: int) -> tuple[float, float]:
    """(whole process, threads other than the main one: span/log batch processors, metric reader, gRPC)."""
    other = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        if task.name != str(pid):
            # A thread that just ended: its time is in the process total.
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                other += _cpu_seconds(task / "stat")
    return _cpu_seconds(Path(f"/proc/{pid}/stat")), other


MODES: dict[str, dict[str, str]] = {
    # The baseline: no SDK, no auto-instrumentation (the gateway's own calls hit the no-op API).
    "OTEL_SDK_DISABLED=true": {"OTEL_SDK_DISABLED": "true"},
    # Defaults: every trace sampled, metrics with exemplars, one OTLP log per request.
    "instrumented, all traces": {"OTEL_SDK_DISABLED": "false"},
    # The usual production knob: keep 10% of traces; metrics and logs stay complete.
    "instrumented, 10% traces": {
        "OTEL_SDK_DISABLED": "false",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.1",
    },
}
BASELINE = "OTEL_SDK_DISABLED=true"


class GatewayUnderTest:
    def __init__(self, mode_env: dict[str, str], sink_endpoint: str, ablate: str | None = None) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "GATEWAY_STDERR_LOGS": "false",
            "SIMULATED_TTFT_MS": "0",
            "SIMULATED_TOKENS_PER_SECOND": "0",
            "SIMULATED_ERROR_RATE": "0",
            "OTEL_EXPORTER_OTLP_ENDPOINT": sink_endpoint,
            "OTEL_EXPORTER_OTLP_HEADERS": "Authorization=Bearer%20bench",
            "OTEL_METRIC_EXPORT_INTERVAL": "5000",
            "OTEL_SERVICE_NAME": "gateway-bench",
            **mode_env,
        }
        command = [sys.executable, "-m", "app"]
        if ablate is not None:  # the --breakdown runs: the gateway with parts of its instrumentation off
            env["ABLATE"] = ablate
            command = [sys.executable, str(HERE / "gateway" / "ablate.py")]
        self.proc = subprocess.Popen(
            [*command, "--port", str(self.port)],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 20
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited: {self.proc.stderr.read() if self.proc.stderr else ''}")
            try:
                if httpx.get(self.base_url + "/healthz", timeout=0.5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("gateway did not start")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextlib.contextmanager
def running_gateways(
    specs: dict[str, tuple[dict[str, str], str | None]],
) -> Iterator[tuple[OtlpSink, dict[str, GatewayUnderTest]]]:
    """Gateways (key -> mode env, ABLATE parts) exporting to a fresh sink; every one started is stopped,
    then the sink, on exit (also when a later gateway fails to start)."""
    sink = OtlpSink().start()
    gateways: dict[str, GatewayUnderTest] = {}
    try:
        try:
            for key, (env, ablate) in specs.items():
                gateways[key] = GatewayUnderTest(env, sink.endpoint, ablate)
            yield sink, gateways
        finally:
            for gw in gateways.values():
                gw.stop()
    finally:
        time.sleep(0.5)
        sink.stop()


def rotated(items: list[str], r: int) -> list[str]:
    """``items`` started at round ``r``'s offset, so drift on a shared machine does not favour one entry."""
    k = r % len(items)
    return items[k:] + items[:k]


def drive(port: int, stream: bool, duration: float, concurrency: int) -> tuple[list[float], int]:
    body = {**BODY, "stream": True, "stream_options": {"include_usage": True}} if stream else BODY
    request = build_request("127.0.0.1", port, "/v1/chat/completions", body)
    suffix = b"data: [DONE]\n\n" if stream else b"}"
    return asyncio.run(run_closed_loop("127.0.0.1", port, request, duration, concurrency, suffix))


def measure(gw: GatewayUnderTest, mode: str, workload: str, duration: float, concurrency: int) -> Result:
    drive(gw.port, workload == "stream", min(1.0, duration / 4), concurrency)  # warm-up
    (cpu0, other0), t0 = process_cpu_seconds(gw.proc.pid), time.perf_counter()
    lat, errors = drive(gw.port, workload == "stream", duration, concurrency)
    n = len(lat)
    elapsed = time.perf_counter() - t0
    cpu1, other1 = process_cpu_seconds(gw.proc.pid)
    lat.sort()
    return Result(
        mode,
        workload,
        n,
        errors,
        elapsed,
        cpu1 - cpu0,
        lat[len(lat) // 2] * 1e3,
        lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3,
        other1 - other0,
    )


def median_result(results: list[Result]) -> Result:
    best = sorted(results, key=lambda r: r.rps)[len(results) // 2]
    return (
        Result(
            best.mode,
            best.workload,
            sum(r.requests for r in results),
            sum(r.errors for r in results),
            sum(r.elapsed for r in results),
            sum(r.cpu_s for r in results),
            statistics.median(r.p50_ms for r in results),
            statistics.median(r.p99_ms for r in results),
            sum(r.other_threads_cpu_s for r in results),
        )
        if len(results) > 1
        else best
    )


# --breakdown: (label, mode env, ABLATE parts or None for `python -m app`)
FULL = "instrumented, all traces"
BREAKDOWN: list[tuple[str, dict[str, str], str | None]] = [
    (BASELINE, MODES[BASELINE], None),
    (FULL, MODES[FULL], ""),
    ("without the FastAPI instrumentation (server span, HTTP metrics)", MODES[FULL], "fastapi"),
    ("without the GenAI span", MODES[FULL], "genai_span"),
    ("without the GenAI call metrics", MODES[FULL], "genai_metrics"),
    ("without the per-request log record", MODES[FULL], "request_log"),
    (
        "without all four (SDK set up, nothing recorded)",
        MODES[FULL],
        "fastapi,genai_span,genai_metrics,request_log",
    ),
]


def run_breakdown(duration: float, rounds: int, concurrency: int) -> list[str]:
    """Non-stream only: what each part of the instrumentation adds, as full minus a gateway without it."""
    results: dict[str, list[Result]] = {}
    labels = [label for label, _, _ in BREAKDOWN]
    # Its own sink, so the main run's counts stay the main run's.
    with running_gateways({label: (env, ablate) for label, env, ablate in BREAKDOWN}) as (_, gateways):
        for r in range(rounds):
            for label in rotated(labels, r):
                res = measure(gateways[label], label, "non-stream", duration, concurrency)
                results.setdefault(label, []).append(res)
                print(
                    f"breakdown {r + 1}/{rounds} {label[:50]:50s} {res.rps:8.1f} req/s "
                    f"cpu {res.cpu_us_per_req:7.1f} us/req",
                    file=sys.stderr,
                )
    med = {label: median_result(rs) for label, rs in results.items()}
    rps = {label: statistics.median(r.rps for r in rs) for label, rs in results.items()}
    full = med[FULL].cpu_us_per_req
    lines = [
        "",
        "Per-component cost (non-stream, same load; each part's cost = the full instrumented gateway's CPU "
        "minus that of a gateway without the part, via bench/gateway/ablate.py):",
        "",
        "| gateway | req/s | gateway CPU us/req | of which export threads | vs full: CPU us/req saved |",
        "|---|---:|---:|---:|---:|",
    ]
    for label in labels:
        saved = "" if label == FULL else f"{full - med[label].cpu_us_per_req:.0f}"
        lines.append(
            f"| {label} | {rps[label]:.0f} | {med[label].cpu_us_per_req:.0f} | "
            f"{med[label].other_threads_us_per_req:.0f} | {saved} |"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="one short round (~30 s)")
    parser.add_argument("--duration", type=float, default=None, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "gateway.md")
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="also measure gateways with one part of the instrumentation off each (non-stream): the added "
        "CPU per component (~2 more minutes, ~40 s with --quick)",
    )
    args = parser.parse_args()
    duration = args.duration or (4.0 if args.quick else 8.0)
    rounds = args.rounds or (1 if args.quick else 3)
    results: dict[tuple[str, str], list[Result]] = {}
    modes = list(MODES)
    with running_gateways({mode: (MODES[mode], None) for mode in modes}) as (sink, gateways):
        for r in range(rounds):
            for workload in ("non-stream", "stream"):
                for mode in rotated(modes, r):
                    res = measure(gateways[mode], mode, workload, duration, args.concurrency)
                    results.setdefault((mode, workload), []).append(res)
                    print(
                        f"round {r + 1}/{rounds} {workload:10s} {mode:26s} {res.rps:8.1f} req/s "
                        f"p50 {res.p50_ms:6.2f} ms p99 {res.p99_ms:6.2f} ms "
                        f"cpu {res.cpu_us_per_req:7.1f} us/req",
                        file=sys.stderr,
                    )
    breakdown = run_breakdown(duration, rounds, args.concurrency) if args.breakdown else []

    lines = [
        f"Gateway overhead (simulated provider, zero latency, {args.concurrency} keep-alive connections, "
        f"{rounds} rotated round(s) of {duration:.0f} s per mode, medians).",
        "",
        "| workload | mode | req/s | p50 ms | p99 ms | gateway CPU us/req | of which export threads | "
        "throughput vs baseline | added CPU us/req |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    ratios: dict[str, list[float]] = {}
    for workload in ("non-stream", "stream"):
        base = median_result(results[(BASELINE, workload)])
        base_rps = statistics.median(r.rps for r in results[(BASELINE, workload)])
        for mode in modes:
            res = median_result(results[(mode, workload)])
            rps = statistics.median(r.rps for r in results[(mode, workload)])
            ratio = rps / base_rps
            ratios.setdefault(mode, []).append(ratio)
            added = "" if mode == BASELINE else f"{res.cpu_us_per_req - base.cpu_us_per_req:.0f}"
            lines.append(
                f"| {workload} | {mode} | {rps:.0f} | {res.p50_ms:.2f} | {res.p99_ms:.2f} | "
                f"{res.cpu_us_per_req:.0f} | {res.other_threads_us_per_req:.0f} | {ratio:.2f}x | {added} |"
            )
    errors = sum(r.errors for rs in results.values() for r in rs)
    lines.append("")
    for mode in modes[1:]:
        worst = min(ratios[mode])
        lines.append(
            f"- {mode}: worst throughput ratio {worst:.2f}x -> goal (>= 0.85x) "
            f"{'met' if worst >= 0.85 else 'NOT met'}."
        )
    lines += [
        f"- Failed requests: {errors}. The OTLP sink received {sink.received.spans} spans, "
        f"{sink.received.metric_points} metric points and {sink.received.logs} log records.",
        f"- Machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, one uvicorn worker; the load "
        "client shares the machine, so compare ratios within this run, not absolute numbers.",
    ]
    lines += breakdown
    table = "\n".join(lines)
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("# Gateway benchmark\n\n" + table + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
