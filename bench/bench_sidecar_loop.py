"""Sidecar loop benchmark: spans/s through the whole real path, client -> Collector
(otel-collector/config.yaml + native overlay) -> sidecar -> internal receiver -> file exporter, for the
current configuration and, with --compare REF, for the configuration at git REF (e.g. the in-memory batch
processor before it moved into the exporters' persistent sending_queue); --config NAME=PATH adds any other
configuration file. Prints a markdown table and writes it to bench/results/sidecar_loop.md.

Run: .venv/bin/python bench/bench_sidecar_loop.py [--compare main] [--seconds 20] [--rounds 2]
Everything listens on 127.0.0.1 (free ports); every process started here is stopped here. Timings on a
shared machine are noisy: the rounds alternate the configurations, compare within one run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest  # noqa: E402
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope  # noqa: E402
from opentelemetry.proto.resource.v1.resource_pb2 import Resource  # noqa: E402
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans  # noqa: E402
from sidecar.workload import GENAI_SHARE, Workload, _kv  # noqa: E402

from tests.stack_support import COLLECTOR_BIN, CollectorProcess, free_ports, http_status, wait_for  # noqa: E402

TRACE_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
SIDECAR_TELEMETRY_OFF = {"OTEL_SDK_DISABLED": "true"}


def requests(n: int, spans_per_request: int, seed: int = 11) -> list[bytes]:
    """n serialised ExportTraceServiceRequests of realistic spans (25% GenAI with prompt text)."""
    w = Workload(seed)
    out = []
    for _ in range(n):
        spans = [
            w.genai_span() if w.rng.random() < GENAI_SHARE else w.http_or_db_span()
            for _ in range(spans_per_request)
        ]
        req = ExportTraceServiceRequest(
            resource_spans=[
                ResourceSpans(
                    resource=Resource(attributes=[_kv("service.name", "loop-bench")]),
                    scope_spans=[ScopeSpans(scope=InstrumentationScope(name="bench"), spans=spans)],
                )
            ]
        )
        out.append(req.SerializeToString())
    return out


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def metric(port: int, name: str, label: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name + "{") and label in line
    )


@dataclass
class Result:
    name: str
    acked_spans: int
    load_s: float
    drained_s: float
    batches: int
    collector_cpu: float
    sidecar_cpu: float

    @property
    def ingest_rate(self) -> float:
        return self.acked_spans / self.load_s

    @property
    def loop_rate(self) -> float:
        return self.acked_spans / self.drained_s

    @property
    def spans_per_batch(self) -> float:
        return self.acked_spans / self.batches if self.batches else 0.0

    @property
    def per_core(self) -> float:
        """Spans per CPU second of the Collector and the sidecar together: the loop's cost, unlike the
        wall-clock rates hardly affected by other work on the machine."""
        return self.acked_spans / (self.collector_cpu + self.sidecar_cpu)

    @property
    def cpu_ms_per_1k(self) -> tuple[float, float]:
        k = self.acked_spans / 1000
        return self.collector_cpu / k * 1000, self.sidecar_cpu / k * 1000


NATIVE_OVERLAY = ROOT / "otel-collector" / "config.native.yaml"


def start_collector(collector: CollectorProcess, config: Path, overlay: Path) -> None:
    """The Collector with `config` in place of config.yaml, plus `overlay` (the native file exporters)."""
    collector.run_dir.mkdir(parents=True, exist_ok=True)
    log = collector.run_dir / "collector.log"
    with open(log, "wb") as out:
        collector.proc = subprocess.Popen(
            [str(COLLECTOR_BIN), "--config", str(config), "--config", str(overlay)],
            env=collector.env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    health = f"http://127.0.0.1:{collector.ports['health_check']}/"
    try:
        wait_for(lambda: http_status(health) == 200, 60, "the Collector's health_check")
    except AssertionError as exc:
        raise RuntimeError(f"{exc}\n{log.read_text(errors='replace')[-2000:]}") from exc


def run_once(
    name: str, configs: tuple[Path, Path], payloads: list[bytes], spans_per_request: int, seconds: float
) -> Result:
    with tempfile.TemporaryDirectory(prefix="loop-bench-") as tmp:
        run_dir = Path(tmp)
        collector = CollectorProcess(run_dir / "collector")
        sidecar_port = free_ports(1)[0]
        collector.extra_env.update(SIDECAR_ENDPOINT=f"127.0.0.1:{sidecar_port}")
        sidecar = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "processors",
                "--listen",
                f"127.0.0.1:{sidecar_port}",
                "--forward",
                f"127.0.0.1:{collector.ports['internal_otlp']}",
            ],
            cwd=ROOT,
            env={**os.environ, **SIDECAR_TELEMETRY_OFF},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            start_collector(collector, *configs)
            assert collector.proc is not None
            telemetry = collector.ports["collector_telemetry"]
            time.sleep(2)  # the sidecar finishes starting
            acked = [0]
            lock = threading.Lock()
            stop_at = time.monotonic() + seconds
            cpu0 = cpu_seconds(collector.proc.pid), cpu_seconds(sidecar.pid)

            def client(offset: int) -> None:
                channel = grpc.insecure_channel(f"127.0.0.1:{collector.ports['otlp_grpc']}")
                call = channel.unary_unary(TRACE_METHOD, request_serializer=None, response_deserializer=None)
                i = offset
                while time.monotonic() < stop_at:
                    try:
                        call(payloads[i % len(payloads)], timeout=30)
                    except grpc.RpcError:
                        time.sleep(0.05)
                        continue
                    i += 4
                    with lock:
                        acked[0] += spans_per_request
                channel.close()

            start = time.monotonic()
            threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            load_s = time.monotonic() - start
            wait_for(
                lambda: (
                    metric(telemetry, "otelcol_exporter_sent_spans_total", 'exporter="file/traces"')
                    >= acked[0]
                ),
                600,
                "every acknowledged span exported",
                interval=0.2,
            )
            drained_s = time.monotonic() - start
            cpu1 = cpu_seconds(collector.proc.pid), cpu_seconds(sidecar.pid)
            # one line per batch the sidecar handed back; rotated files (traces-<time>.jsonl) count too
            export_dir = collector.traces_file.parent
            batches = sum(f.read_bytes().count(b"\n") for f in export_dir.glob("traces*.jsonl"))
            return Result(name, acked[0], load_s, drained_s, batches, cpu1[0] - cpu0[0], cpu1[1] - cpu0[1])
        finally:
            collector.stop()
            sidecar.terminate()
            sidecar.wait(30)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--compare", metavar="REF", help="also run otel-collector/config.yaml as of git REF")
    ap.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="also run this Collector configuration (instead of config.yaml); repeatable",
    )
    ap.add_argument("--seconds", type=float, default=20.0, help="load phase per run (default 20)")
    ap.add_argument("--rounds", type=int, default=2, help="runs per configuration, alternating (default 2)")
    ap.add_argument("--spans-per-request", type=int, default=64, help="spans per client request (default 64)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "sidecar_loop.md"))
    args = ap.parse_args()

    configs: dict[str, tuple[Path, Path]] = {
        "current": (ROOT / "otel-collector" / "config.yaml", NATIVE_OVERLAY)
    }
    tmp = Path(tempfile.mkdtemp(prefix="loop-bench-configs-"))
    if args.compare:
        at_ref: list[Path] = []
        for name in ("config.yaml", "config.native.yaml"):  # the overlay of that time fits its config
            ref_path = tmp / name
            shown = subprocess.run(
                ["git", "show", f"{args.compare}:otel-collector/{name}"],
                cwd=ROOT,
                check=True,
                capture_output=True,
            )
            ref_path.write_bytes(shown.stdout)
            at_ref.append(ref_path)
        configs = {f"at {args.compare}": (at_ref[0], at_ref[1]), **configs}
    for spec in args.config:
        name, _, file = spec.partition("=")
        if not file or not Path(file).is_file():
            ap.error(f"--config {spec!r}: expected NAME=PATH of an existing file")
        configs[name] = (Path(file), NATIVE_OVERLAY)
    payloads = requests(64, args.spans_per_request)
    results: dict[str, list[Result]] = {name: [] for name in configs}
    for r in range(args.rounds):
        for name, pair in configs.items():
            res = run_once(name, pair, payloads, args.spans_per_request, args.seconds)
            results[name].append(res)
            print(
                f"round {r + 1} {name}: ingest {res.ingest_rate:.0f} spans/s, "
                f"loop {res.loop_rate:.0f} spans/s, {res.spans_per_batch:.0f} spans/batch",
                flush=True,
            )
    shutil.rmtree(tmp, ignore_errors=True)

    lines = [
        "# Sidecar loop: client -> Collector -> sidecar -> Collector -> file",
        "",
        f"{args.rounds} round(s) of {args.seconds:.0f} s closed-loop load per configuration (4 clients, "
        f"{args.spans_per_request} spans per request), median shown; loop spans/s = acknowledged spans / "
        "time until the last of them was written by the file exporter. 2-core machine shared with others.",
        "",
        "| configuration | ingest spans/s | loop spans/s | spans per sidecar batch "
        "| Collector CPU ms/1k spans | sidecar CPU ms/1k spans | spans/s per core (Collector + sidecar) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, runs in results.items():
        med = statistics.median
        lines.append(
            f"| {name} | {med(r.ingest_rate for r in runs):.0f} | {med(r.loop_rate for r in runs):.0f} | "
            f"{med(r.spans_per_batch for r in runs):.0f} | {med(r.cpu_ms_per_1k[0] for r in runs):.1f} | "
            f"{med(r.cpu_ms_per_1k[1] for r in runs):.1f} | {med(r.per_core for r in runs):.0f} |"
        )
    report = "\n".join(lines) + "\n"
    print(report)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
