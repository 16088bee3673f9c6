"""Shared by the fault tests: the real Collector with an in-process sidecar in its loop; OTLP/HTTP posts."""

from __future__ import annotations

import contextlib
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from processors.config import SidecarConfig
from processors.handlers import Pipeline, Processor
from processors.server import RunningServer, start_server
from processors.telemetry import Telemetry
from tests.stack_support import CollectorProcess, exported_spans


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


def exported_by_id(col: CollectorProcess) -> dict[str, list[dict[str, object]]]:
    by_id: dict[str, list[dict[str, object]]] = {}
    for s in exported_spans(col.traces_file):
        by_id.setdefault(str(s["spanId"]), []).append(s)
    return by_id
