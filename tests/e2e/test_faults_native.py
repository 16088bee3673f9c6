"""Fault injection on the native stack under bounded load (issue 9, proofs): ~60 requests/s of OTLP/gRPC
traces and logs for ~45 s while the sidecar is killed (-9), crash-looped, frozen (SIGSTOP, the trace path's
backend hangs), Prometheus is frozen (the metrics backend), and an oversized and a poison batch are sent in
the middle. Afterwards every request the clients saw acknowledged must be exported exactly once or be in the
sidecar's dead-letter directory with a reason (duplicates are reported, not hidden), a metric counter must
have lost nothing, and a probe span sent last must arrive within 10 s. The numbers are printed per fault."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    AggregationTemporality,
    Metric,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from tests.e2e.faults_support import log_records_in, spans_in
from tests.e2e.test_faults_poison import poison_request
from tests.processors.helpers import logs_request, span, trace_request
from tests.stack_support import (
    NativeStack,
    native_stack,
    prom_query,
    stack_env,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.load]

RATE = 60  # requests per second, traces and logs together
SERVICE = "fault-load"
TRACE_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
LOGS_EXPORT = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
METRICS_EXPORT = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"


@dataclass
class Sent:
    kind: str  # "trace" | "log"
    key: str  # span id (hex) or log body
    fault: str
    acked: bool | None = None


@dataclass
class Load:
    """Paced OTLP/gRPC requests, each one span or one log record with a unique id, sent without waiting for
    the previous answer (gRPC futures), so a stalled path does not slow the rate down."""

    endpoint: str
    fault: str = "steady"
    sent: list[Sent] = field(default_factory=list)
    ticks_acked: int = 0
    seconds: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        channel = grpc.insecure_channel(self.endpoint)
        traces = channel.unary_unary(TRACE_EXPORT, request_serializer=None, response_deserializer=None)
        logs = channel.unary_unary(LOGS_EXPORT, request_serializer=None, response_deserializer=None)
        metrics = channel.unary_unary(METRICS_EXPORT, request_serializer=None, response_deserializer=None)
        pending: list[Any] = []
        i = 0
        start = next_at = time.monotonic()
        last_tick = start
        tick = 0
        while not self._stop.is_set():
            if i % 3 == 2:
                body = f"fault-log-{uuid.uuid4()}"
                data = logs_request(
                    LogRecord(body=AnyValue(string_value=body)), resource={"service.name": SERVICE}
                ).SerializeToString()
                record, call = Sent("log", body, self.fault), logs
            else:
                one = span(f"load-{i}", {"i": i, "note": "mail load@example.com"})
                one.trace_id, one.span_id = os.urandom(16), os.urandom(8)
                one.start_time_unix_nano = one.end_time_unix_nano = time.time_ns()
                data = trace_request(one, resource={"service.name": SERVICE}).SerializeToString()
                record, call = Sent("trace", one.span_id.hex(), self.fault), traces
            self.sent.append(record)
            future = call.future(data, timeout=5)
            future.add_done_callback(_marker(record))
            pending.append(future)
            if time.monotonic() - last_tick >= 1.0:  # a cumulative counter, once a second
                tick += 1
                last_tick = time.monotonic()
                try:
                    metrics(_ticks(tick, start).SerializeToString(), timeout=5)
                    self.ticks_acked = tick
                except grpc.RpcError:
                    pass
            i += 1
            next_at += 1 / RATE
            time.sleep(max(0.0, next_at - time.monotonic()))
        self.seconds = time.monotonic() - start
        for f in pending:
            with contextlib.suppress(Exception):
                f.result(timeout=10)
        channel.close()

    def stop(self) -> None:
        self._stop.set()


def _marker(record: Sent) -> Callable[[Any], None]:
    def done(future: Any) -> None:
        record.acked = future.exception() is None

    return done


def _ticks(value: int, start: float) -> ExportMetricsServiceRequest:
    point = NumberDataPoint(
        as_int=value,
        start_time_unix_nano=int((time.time() - (time.monotonic() - start)) * 1e9),
        time_unix_nano=time.time_ns(),
    )
    metric = Metric(
        name="fault.ticks",
        sum=Sum(
            data_points=[point],
            is_monotonic=True,
            aggregation_temporality=AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE,
        ),
    )
    resource = Resource(attributes=[KeyValue(key="service.name", value=AnyValue(string_value=SERVICE))])
    return ExportMetricsServiceRequest(
        resource_metrics=[ResourceMetrics(resource=resource, scope_metrics=[ScopeMetrics(metrics=[metric])])]
    )


class Supervisor:
    def __init__(self, stack: NativeStack) -> None:
        settings = native_stack.Settings.from_env(stack.env)
        self.rpc = native_stack._rpc(settings)
        self.manual_starts = 0  # FATAL services this test had to start itself (supervision gave up)

    def pid(self, name: str) -> int:
        return int(self.rpc.supervisor.getProcessInfo(name)["pid"])

    def running_pid(self, name: str, other_than: int = 0, timeout: float = 30) -> int:
        def fresh() -> int | None:
            info = self.rpc.supervisor.getProcessInfo(name)
            if info["statename"] == "FATAL":  # supervision gave up (issue 9, item 5: not this helper's)
                self.rpc.supervisor.startProcess(name, False)
                self.manual_starts += 1
                return None
            pid = int(info["pid"])
            return pid if info["statename"] == "RUNNING" and pid and pid != other_than else None

        return wait_for(fresh, timeout, f"{name} running again")


def _http_post(url: str, raw: bytes) -> bool:
    import urllib.request

    req = urllib.request.Request(url, data=raw, headers={"Content-Type": "application/x-protobuf"})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def _quarantined(directory: Path) -> tuple[set[str], dict[str, int]]:
    """Span ids and log bodies in the dead-letter files, and the files by reason."""
    keys: set[str] = set()
    reasons: dict[str, int] = {}
    for path in sorted(directory.glob("*.pb")) if directory.exists() else []:
        signal_name, reason = path.name.split("-")[:2]
        reasons[reason] = reasons.get(reason, 0) + 1
        data = path.read_bytes()
        try:
            if signal_name == "traces":
                req = ExportTraceServiceRequest.FromString(data)
                keys |= {
                    s.span_id.hex() for rs in req.resource_spans for ss in rs.scope_spans for s in ss.spans
                }
            elif signal_name == "logs":
                lreq = ExportLogsServiceRequest.FromString(data)
                keys |= {
                    r.body.string_value
                    for rl in lreq.resource_logs
                    for sl in rl.scope_logs
                    for r in sl.log_records
                }
        except Exception:
            continue  # a malformed item kept for forensics: not one of the load's
    return keys, reasons


def test_nothing_acknowledged_is_lost_and_nothing_wedges(
    collector_bin: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "stack"
    dead_letter = run_dir / "dead-letter"
    env = stack_env(
        run_dir, STACK_APP="0", OTEL_METRIC_EXPORT_INTERVAL="2000", SIDECAR_DEAD_LETTER_DIR=str(dead_letter)
    )
    stack = NativeStack(run_dir, env)
    stack.up()
    try:
        _run_faults(stack, dead_letter, capsys)
    finally:
        stack.down()


def _run_faults(stack: NativeStack, dead_letter: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sup = Supervisor(stack)
    load = Load(stack.otlp_grpc)
    http = f"http://127.0.0.1:{stack.info['ports']['otlp_http']}"
    extra: list[Sent] = []
    sender = threading.Thread(target=load.run, name="fault-load")
    sender.start()

    def phase(name: str, seconds: float, action: Callable[[], None] | None = None) -> None:
        load.fault = name
        t0 = time.monotonic()
        if action is not None:
            action()
        time.sleep(max(0.0, seconds - (time.monotonic() - t0)))

    def kill_sidecar() -> None:
        pid = sup.pid("sidecar")
        os.kill(pid, signal.SIGKILL)
        sup.running_pid("sidecar", other_than=pid)

    def crash_loop() -> None:
        for _ in range(3):  # killed again as soon as it runs, three times
            pid = sup.running_pid("sidecar")
            os.kill(pid, signal.SIGKILL)
            sup.running_pid("sidecar", other_than=pid)

    def freeze(name: str, seconds: float) -> Callable[[], None]:
        def act() -> None:
            pid = sup.pid(name)
            os.kill(pid, signal.SIGSTOP)
            try:
                time.sleep(seconds)
            finally:
                os.kill(pid, signal.SIGCONT)

        return act

    def oversized() -> None:
        for i in range(4):  # the four ~5 MB OTLP/HTTP requests
            one = span(f"oversized-{i}", {"gen_ai.input.messages": "y" * 5_000_000})
            one.trace_id, one.span_id = os.urandom(16), os.urandom(8)
            one.start_time_unix_nano = one.end_time_unix_nano = time.time_ns()
            req = trace_request(one, resource={"service.name": SERVICE})
            sent = Sent("trace", one.span_id.hex(), "oversized batch")
            sent.acked = _http_post(f"{http}/v1/traces", req.SerializeToString())
            extra.append(sent)

    def poison() -> None:
        raw, ids = poison_request()
        ok = _http_post(f"{http}/v1/traces", raw)
        extra.extend(Sent("trace", span_id, "poison batch", ok) for span_id in ids.values())

    try:
        # the crash loop takes ~10 s itself (the native stack restarts with a 1, 2, 4 s backoff): the other
        # phases are kept short so that the whole load stays within the 60 s the issue bounds it to
        phase("steady", 3)
        phase("sidecar kill -9", 4, kill_sidecar)
        phase("sidecar crash loop", 6, crash_loop)
        phase("sidecar SIGSTOP 3s", 4, freeze("sidecar", 3))
        phase("Prometheus SIGSTOP 3s", 4, freeze("prometheus", 3))
        phase("oversized batch", 4, oversized)
        phase("poison batch", 3, poison)
        phase("steady after", 3)
    finally:
        load.stop()
        sender.join(30)

    probe = span("probe-sent-last", {})
    probe.trace_id, probe.span_id = os.urandom(16), os.urandom(8)
    probe.start_time_unix_nano = probe.end_time_unix_nano = time.time_ns()
    t_probe = time.monotonic()
    assert _http_post(
        f"{http}/v1/traces", trace_request(probe, resource={"service.name": SERVICE}).SerializeToString()
    )
    wait_for(
        lambda: any(s["spanId"] == probe.span_id.hex() for s in spans_in(stack.traces_file)),
        10,
        "the probe span in traces.jsonl within 10 s",
        interval=0.5,
    )
    probe_s = time.monotonic() - t_probe

    everything = load.sent + extra
    acked = [s for s in everything if s.acked]

    def counts() -> tuple[dict[str, int], set[str], dict[str, int]]:
        exported: dict[str, int] = {}
        for s in spans_in(stack.traces_file):
            exported[s["spanId"]] = exported.get(s["spanId"], 0) + 1
        for r in log_records_in(stack.logs_file):
            body = r.get("body", {}).get("stringValue", "")
            if body.startswith("fault-log-"):
                exported[body] = exported.get(body, 0) + 1
        quarantined, reasons = _quarantined(dead_letter)
        return exported, quarantined, reasons

    def settled() -> tuple[dict[str, int], set[str], dict[str, int]] | None:
        exported, quarantined, reasons = counts()
        missing = [s for s in acked if s.key not in exported and s.key not in quarantined]
        return (exported, quarantined, reasons) if not missing else None

    try:
        exported, quarantined, reasons = wait_for(settled, 60, "every acknowledged item exported", interval=2)
    except AssertionError:
        exported, quarantined, reasons = counts()

    rows: list[tuple[Any, ...]] = []
    for fault in dict.fromkeys(s.fault for s in everything):
        mine = [s for s in everything if s.fault == fault]
        ok = [s for s in mine if s.acked]
        rows.append(
            (
                fault,
                len(mine),
                len(ok),
                sum(1 for s in ok if exported.get(s.key, 0) >= 1),
                sum(exported.get(s.key, 0) - 1 for s in mine if exported.get(s.key, 0) > 1),
                sum(1 for s in ok if s.key in quarantined and s.key not in exported),
                sum(1 for s in ok if s.key not in exported and s.key not in quarantined),
                sum(1 for s in mine if not s.acked and exported.get(s.key, 0) >= 1),
            )
        )

    def ticks() -> float:
        prom = prom_query(stack.prometheus, f'sum(fault_ticks_total{{job="{SERVICE}"}})')
        return float(prom[0]["value"][1]) if prom else -1.0

    try:  # the last ticks reach Prometheus with its next scrape
        ticks_in_prometheus = wait_for(lambda: ticks() if ticks() >= load.ticks_acked else None, 30, "ticks")
    except AssertionError:
        ticks_in_prometheus = ticks()
    with capsys.disabled():
        print(
            f"\n\nfault injection on the native stack: {len(load.sent)} requests in {load.seconds:.1f}s = "
            f"{len(load.sent) / load.seconds:.1f}/s (traces:logs 2:1), probe arrived after {probe_s:.1f}s"
        )
        header = (
            "fault",
            "sent",
            "acked",
            "exported",
            "duplicates",
            "quarantined",
            "LOST",
            "unacked-but-exported",
        )
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for row in rows:
            print("| " + " | ".join(str(v) for v in row) + " |")
        total = [sum(int(r[k]) for r in rows) for k in range(1, len(header))]
        print("| total | " + " | ".join(str(v) for v in total) + " |")
        print(f"dead-letter files by reason: {reasons or 'none'}")
        print(f"sidecar restarts the test had to do itself (supervisord gave up): {sup.manual_starts}")
        print(
            f"metric counter: {load.ticks_acked} ticks acknowledged, "
            f"Prometheus has {ticks_in_prometheus:.0f}\n"
        )
    lost = [s for s in acked if s.key not in exported and s.key not in quarantined]
    assert not lost, f"{len(lost)} acknowledged items neither exported nor quarantined: {lost[:5]}"
    assert len(load.sent) / load.seconds >= 50  # the load really was >= 50 requests/s
    assert load.seconds <= 60
    assert ticks_in_prometheus >= load.ticks_acked
