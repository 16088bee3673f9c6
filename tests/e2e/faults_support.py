"""Shared by the fault tests: the real Collector with an in-process sidecar in its loop; OTLP/HTTP posts."""

from __future__ import annotations

import contextlib
import json
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from processors.config import SidecarConfig
from processors.handlers import Pipeline, Processor
from processors.server import RunningServer, start_server
from processors.telemetry import Telemetry
from tests.stack_support import CollectorProcess


@dataclass
class Loop:
    collector: CollectorProcess
    sidecar: RunningServer


@contextlib.contextmanager
def collector_with_sidecar(
    run_dir: Path, config: SidecarConfig | None = None, pipeline: Processor | None = None
) -> Iterator[Loop]:
    """The real Collector (production config + native overlay) with an in-process sidecar in its loop."""
    col = CollectorProcess(run_dir)
    config = config or SidecarConfig()
    sidecar = start_server(
        config,
        pipeline or Pipeline(config),
        Telemetry(None),
        "127.0.0.1:0",
        f"127.0.0.1:{col.ports['internal_otlp']}",
        False,
    )
    col.extra_env["SIDECAR_ENDPOINT"] = f"127.0.0.1:{sidecar.port}"
    try:
        col.start()
        yield Loop(col, sidecar)
    finally:
        col.stop()
        sidecar.stop(1.0)


def post_traces(col: CollectorProcess, req: ExportTraceServiceRequest) -> int:
    return post_raw(col, req.SerializeToString())


def post_raw(col: CollectorProcess, raw: bytes, signal: str = "traces") -> int:
    http_req = urllib.request.Request(
        f"http://127.0.0.1:{col.ports['otlp_http']}/v1/{signal}",
        data=raw,
        headers={"Content-Type": "application/x-protobuf"},
        method="POST",
    )
    with urllib.request.urlopen(http_req, timeout=60) as resp:
        return int(resp.status)


def complete_requests(path: Path) -> list[dict[str, Any]]:
    """The export file's OTLP JSON lines, skipping one the file exporter is still writing (a 4 MB line is
    not written at once, and the tests read while it flushes)."""
    if not path.exists():
        return []
    out = []
    for line in path.read_bytes().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def spans_in(path: Path) -> list[dict[str, Any]]:
    return [
        s
        for req in complete_requests(path)
        for rs in req.get("resourceSpans", [])
        for ss in rs.get("scopeSpans", [])
        for s in ss.get("spans", [])
    ]


def log_records_in(path: Path) -> list[dict[str, Any]]:
    return [
        r
        for req in complete_requests(path)
        for rl in req.get("resourceLogs", [])
        for sl in rl.get("scopeLogs", [])
        for r in sl.get("logRecords", [])
    ]


def exported_by_id(col: CollectorProcess) -> dict[str, list[dict[str, object]]]:
    by_id: dict[str, list[dict[str, object]]] = {}
    for s in spans_in(col.traces_file):
        by_id.setdefault(str(s["spanId"]), []).append(s)
    return by_id
