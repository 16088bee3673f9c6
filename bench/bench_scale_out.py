"""Scale-out benchmark: the chart's two-tier topology as native processes on loopback
(tests/deploy/scale_out.py): spans/s and the CPU of every process with one vs two gateway-tier instances
behind the load-balancing Collector (and one instance without it, for the load-balancing tier's cost), and
what a SIGKILL of a gateway-tier instance under load does to acknowledged spans, with
otel-collector/config.yaml alone and with the chart's gateway.durable.yaml overlay. Prints a markdown report
and writes it to bench/results/scale_out.md.

Run: .venv/bin/python bench/bench_scale_out.py [--quick]     (OTELCOL_BIN overrides build/otelcol-llm)
Everything listens on 127.0.0.1; every process started here is stopped here. The machine is shared and has
2 cores for the client, the load-balancing tier, N x (Collector + sidecar) and the sinks together, so the
absolute spans/s are a floor; spans per CPU-second of each component are what size a cluster.
"""

from __future__ import annotations

import argparse
import itertools
import random
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.deploy.scale_out import (  # noqa: E402
    CHART_FILES,
    Batch,
    Topology,
    delivered,
    make_batch,
    send,
)

DURABLE = (CHART_FILES / "gateway.durable.yaml",)


@dataclass
class Throughput:
    label: str
    spans_per_s: float
    cpu: dict[str, float]  # process -> cores
    rss: dict[str, float]  # process -> MB
    client_cores: float
    failed: int


def measure_throughput(
    label: str, root: Path, gateways: int, via_lb: bool, batches: list[Batch], warmup: float, seconds: float
) -> Throughput:
    topo = Topology(root, gateways, overlays=DURABLE)
    try:
        topo.start()
        entry = topo.entry if via_lb else topo.pairs[0].otlp
        stop_at = time.monotonic() + warmup + seconds
        window: dict[str, float] = {}
        procs = topo.processes()
        if not via_lb:
            procs.pop("load-balancer")

        def traffic() -> Iterator[Batch]:
            for b in itertools.cycle(batches):
                if time.monotonic() >= stop_at:
                    return
                yield b

        def sample() -> None:
            time.sleep(warmup)
            window["t0"] = time.monotonic()
            window["client0"] = time.process_time()
            window["spans0"] = sum(s.accepted_spans() for s in topo.sinks)
            for name, p in procs.items():
                window[name] = p.cpu_seconds()
            time.sleep(seconds)
            window["t1"] = time.monotonic()
            window["client1"] = time.process_time()
            window["spans1"] = sum(s.accepted_spans() for s in topo.sinks)
            for name, p in procs.items():
                window[name + "/1"] = p.cpu_seconds()
                window[name + "/rss"] = p.rss_mb()

        sampler = threading.Thread(target=sample)
        sampler.start()
        stats = send(entry, traffic(), in_flight=16, record_ids=False)
        sampler.join()
        wall = window["t1"] - window["t0"]
        cpu = {n: (window[n + "/1"] - window[n]) / wall for n in procs}
        rss = {n: window[n + "/rss"] for n in procs}
        # the client thread shares this process with the sampler only
        client = (window["client1"] - window["client0"]) / wall
        return Throughput(
            label, (window["spans1"] - window["spans0"]) / wall, cpu, rss, client, stats.failed_requests
        )
    finally:
        topo.stop()


@dataclass
class KillRun:
    label: str
    acked: int
    delivered_unique: int
    duplicates: int
    missing: int
    kills: int


def measure_kills(label: str, root: Path, overlays: tuple[Path, ...], seconds: float, kills: int) -> KillRun:
    topo = Topology(root, 2, overlays=overlays)
    rng = random.Random(7)
    try:
        topo.start()
        end = time.monotonic() + seconds
        victim = topo.pairs[1]
        done: list[float] = []

        def traffic() -> Iterator[Batch]:
            while time.monotonic() < end:
                yield make_batch(rng, 10)

        def chaos() -> None:
            gap = seconds / (kills + 1)
            for k in range(kills):
                time.sleep(max(0.0, end - seconds + gap * (k + 1) - time.monotonic()))
                victim.kill()
                done.append(time.monotonic())
                time.sleep(1.5)
                victim.start()

        th = threading.Thread(target=chaos)
        th.start()
        stats = send(topo.entry, traffic(), in_flight=8)
        th.join()
        deadline = time.monotonic() + 90
        while True:
            ds = [delivered(s.traces_file) for s in topo.sinks]
            got = set().union(*(d.span_ids for d in ds))
            if stats.acked_span_ids <= got or time.monotonic() > deadline:
                break
            time.sleep(2)
        records = sum(d.records for d in ds)
        return KillRun(
            label,
            len(stats.acked_span_ids),
            len(got),
            records - len(got),
            len(stats.acked_span_ids - got),
            len(done),
        )
    finally:
        topo.stop()


def report(runs: list[Throughput], kills: list[KillRun], seconds: float) -> str:
    lines = [
        "# Scale-out benchmark",
        "",
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, 2 shared cores, {seconds:.0f} s "
        "measured per row "
        "after a warm-up. Traffic: batches of 50 traces x 4 spans (an HTTP server span, a GenAI chat "
        "span with "
        "token usage and a 0.3-1.2 KB prompt, 10% of prompts with an e-mail address, two internal spans), 16 "
        "requests in flight, OTLP/gRPC from one Python client. Each gateway-tier instance = the "
        "Collector with "
        "otel-collector/config.yaml + the chart's gateway.durable.yaml + the sidecar (`--workers "
        "1`), exporting "
        "with its production `otlp_grpc/tempo` exporter to its own sink Collector. Everything shares "
        "the same "
        "2 cores (and the machine runs other work), so the spans/s are a floor; the CPU columns say "
        "where the "
        "cores went.",
        "",
        "## Throughput and CPU per process (cores = CPU-seconds per second)",
        "",
    ]
    names = sorted({n for r in runs for n in r.cpu}, key=lambda n: (not n.startswith("load"), n))
    lines.append("| topology | spans/s delivered | " + " | ".join(names) + " | client | failed requests |")
    lines.append("|---|---:|" + "---:|" * len(names) + "---:|---:|")
    for r in runs:
        cells = [f"{r.cpu[n]:.2f}" if n in r.cpu else "" for n in names]
        lines.append(
            f"| {r.label} | {r.spans_per_s:,.0f} | "
            + " | ".join(cells)
            + f" | {r.client_cores:.2f} | {r.failed} |"
        )
    lines += ["", "Spans per CPU-second of each component (from the rows above):", ""]
    lines.append(
        "| topology | load-balancer | gateway Collector (each) | sidecar (each) | RSS MB (Collector "
        "/ sidecar) |"
    )
    lines.append("|---|---:|---:|---:|---|")
    for r in runs:
        lb = r.cpu.get("load-balancer")
        cols = [n for n in r.cpu if n.endswith("collector")]
        sides = [n for n in r.cpu if n.endswith("sidecar")]
        n_gw = max(1, len(cols))
        per_col = r.spans_per_s / n_gw / (sum(r.cpu[c] for c in cols) / n_gw) if cols else 0
        per_side = r.spans_per_s / n_gw / (sum(r.cpu[s] for s in sides) / n_gw) if sides else 0
        rss = (
            " / ".join(f"{r.rss[c]:.0f}" for c in cols) + " ; " + " / ".join(f"{r.rss[s]:.0f}" for s in sides)
        )
        lb_cell = f"{r.spans_per_s / lb:,.0f}" if lb else "(no LB)"
        lines.append(f"| {r.label} | {lb_cell} | {per_col:,.0f} | {per_side:,.0f} | {rss} |")
    if len(runs) >= 2:
        one = next((r for r in runs if r.label.startswith("LB -> 1")), None)
        two = next((r for r in runs if r.label.startswith("LB -> 2")), None)
        if one and two:
            lines += [
                "",
                f"Two gateway-tier instances vs one, behind the load-balancing tier: "
                f"**{two.spans_per_s / one.spans_per_s:.2f}x** spans/s on the same 2 cores "
                f"(total CPU used {sum(one.cpu.values()) + one.client_cores:.2f} vs "
                f"{sum(two.cpu.values()) + two.client_cores:.2f} cores). On one 2-core machine the "
                "second instance "
                "cannot add cores, only parallelism; with a core per instance the gateway tier "
                "scales with the "
                "per-component spans per CPU-second above.",
            ]
    lines += [
        "",
        "## SIGKILL of one gateway-tier instance under load (Collector and sidecar together, "
        "restarted 1.5 s later)",
        "",
        "| gateway-tier configuration | kills | spans acknowledged to the client | delivered (unique) | "
        "duplicates | **acknowledged but lost** |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for k in kills:
        lines.append(
            f"| {k.label} | {k.kills} | {k.acked:,} | {k.delivered_unique:,} | {k.duplicates:,} | "
            f"**{k.missing:,}** |"
        )
    lines += [
        "",
        "otel-collector/config.yaml puts the `batch` processor between the receivers and the "
        "persistent queues: it "
        "answers its caller as soon as it has buffered a batch, so what it holds (up to 200 ms or "
        "512 spans, in "
        "`traces/in` before the sidecar and in `traces/out` after it) is acknowledged upstream but "
        "only in memory. "
        "The chart's `gateway.durable.yaml` removes it and batches inside each exporter's persistent queue "
        "(`sending_queue::batch`), so an acknowledgement means the data is in the file_storage queue. "
        "`tests/deploy/test_scale_out.py` asserts zero loss with the chart's configuration.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="shorter windows (about 2 minutes in all)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "scale_out.md"))
    args = ap.parse_args()
    seconds, warmup, kill_seconds = (10.0, 4.0, 14.0) if args.quick else (20.0, 6.0, 20.0)
    started = time.monotonic()
    rng = random.Random(1)
    batches = [make_batch(rng, 50) for _ in range(200)]
    tmp = Path(tempfile.mkdtemp(prefix="bench-scale-out-"))
    try:
        runs = [
            measure_throughput(
                "direct -> 1 gateway-tier instance", tmp / "direct", 1, False, batches, warmup, seconds
            ),
            measure_throughput(
                "LB -> 1 gateway-tier instance", tmp / "lb1", 1, True, batches, warmup, seconds
            ),
            measure_throughput(
                "LB -> 2 gateway-tier instances", tmp / "lb2", 2, True, batches, warmup, seconds
            ),
        ]
        kills = [
            measure_kills("otel-collector/config.yaml alone", tmp / "kill-stock", (), kill_seconds, 3),
            measure_kills(
                "config.yaml + chart's gateway.durable.yaml", tmp / "kill-durable", DURABLE, kill_seconds, 3
            ),
        ]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    text = report(runs, kills, seconds) + f"\nBench wall time: {time.monotonic() - started:.0f} s.\n"
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
