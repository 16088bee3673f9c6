"""Persist before acknowledging: a `kill -9` of the Collector under load loses nothing it acknowledged.

The real path: OTLP/gRPC client -> Collector (config.yaml + native overlay) -> real sidecar -> the
Collector's internal receiver -> the file exporters. The Collector is killed with SIGKILL twice while
50 requests/s arrive and restarted on the same queue directory and export files. Afterwards every span
and log record the client saw acknowledged is in the export files (duplicates, from batches that were in
flight at the kill, are counted separately), and a probe span sent last arrives within 10 s.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import pytest

from tests.e2e.fault_load import (
    OtlpClient,
    PacedLoad,
    SidecarProcess,
    exported_log_keys,
    exported_span_ids,
    tally,
)
from tests.stack_support import CollectorProcess, wait_for

pytestmark = pytest.mark.e2e

RATE = 50.0  # requests/s, each one trace export (3 spans) and one log export (2 records)
SECONDS = 14.0
KILLS_AT = (4.0, 9.0)  # seconds into the load


def test_collector_kill_9_under_load_loses_nothing_acknowledged(collector_bin: Path, tmp_path: Path) -> None:
    collector = CollectorProcess(tmp_path / "collector")
    sidecar = SidecarProcess(tmp_path / "sidecar", forward=f"127.0.0.1:{collector.ports['internal_otlp']}")
    collector.extra_env["SIDECAR_ENDPOINT"] = sidecar.endpoint
    sidecar.start()
    collector.start()
    client = OtlpClient(f"127.0.0.1:{collector.ports['otlp_grpc']}")
    try:
        load = PacedLoad(client, RATE, SECONDS)
        started = time.monotonic()
        load.start()
        for at in KILLS_AT:
            time.sleep(max(0.0, started + at - time.monotonic()))
            assert collector.proc is not None
            collector.proc.kill()  # SIGKILL: no shutdown, no flush
            collector.proc.wait(10)
            collector.proc = None
            collector.start()
        load.join()
        assert load.offered_rate >= RATE * 0.95, f"offered only {load.offered_rate:.1f} requests/s"

        probe_ids, probe_ok = client.send_spans(1, timeout=10)
        probe_sent = time.monotonic()
        assert probe_ok, "the probe span was refused"
        wait_for(
            lambda: set(probe_ids) <= set(exported_span_ids(collector.traces_file)),
            10,
            "the probe span in traces.jsonl",
            interval=0.1,
        )
        probe_latency = time.monotonic() - probe_sent

        ledger = load.ledger

        def all_arrived() -> bool:
            return ledger.acked_spans <= set(exported_span_ids(collector.traces_file)) and (
                ledger.acked_logs <= set(exported_log_keys(collector.logs_file))
            )

        with contextlib.suppress(AssertionError):  # the tallies below say what is missing
            wait_for(all_arrived, 30, "every acknowledged span and log record in the export files", 0.5)
        spans = tally(ledger.acked_spans, ledger.refused_spans, exported_span_ids(collector.traces_file))
        logs = tally(ledger.acked_logs, ledger.refused_logs, exported_log_keys(collector.logs_file))
        report = {
            "offered_requests_per_s": round(load.offered_rate, 1),
            "requests": ledger.requests,
            "kills": len(KILLS_AT),
            "spans": {"sent": len(ledger.acked_spans) + len(ledger.refused_spans), **spans.row()},
            "logs": {"sent": len(ledger.acked_logs) + len(ledger.refused_logs), **logs.row()},
            "probe_latency_s": round(probe_latency, 2),
        }
        (tmp_path / "no_loss_report.json").write_text(json.dumps(report, indent=2))
        print("\nno-loss report (Collector kill -9):", json.dumps(report))
        assert ledger.acked_spans and ledger.acked_logs, report
        assert ledger.refused_spans, f"the kills should have refused some requests: {report}"
        assert not spans.missing, f"acknowledged spans lost: {sorted(spans.missing)[:5]} {report}"
        assert not logs.missing, f"acknowledged log records lost: {sorted(logs.missing)[:5]} {report}"
    finally:
        client.close()
        collector.stop()
        sidecar.stop()
