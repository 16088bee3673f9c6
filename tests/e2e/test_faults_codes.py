"""What the real Collector (build/otelcol-llm, production config: otlp_grpc/sidecar exporter with its
persistent queue and retry_on_failure) does with each answer the sidecar can give: retry from the queue, or
drop. The table in docs/sidecar.md ("Transient vs permanent") is this test's expectation (issue 9, item 3).

A scripted stand-in for the sidecar answers one span per case with the case's status on the first attempt
and OK afterwards; a retried case is therefore seen twice, a dropped one once, and the Collector's
otelcol_exporter_send_failed_spans counts exactly the dropped ones."""

from __future__ import annotations

import functools
import threading
import time
import urllib.request
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from google.protobuf.any_pb2 import Any as AnyProto
from google.protobuf.duration_pb2 import Duration
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from processors.handlers import TRACE_SERVICE
from tests.e2e.faults_support import post_traces
from tests.processors.helpers import span, trace_request
from tests.stack_support import CollectorProcess, running_collector, wait_for

pytestmark = pytest.mark.e2e

# case → (status the sidecar answers, RetryInfo attached, what the Collector must do)
CASES: dict[str, tuple[grpc.StatusCode, bool, str]] = {
    "ok": (grpc.StatusCode.OK, False, "delivered"),
    "ok-partial-success": (grpc.StatusCode.OK, False, "delivered"),
    "unavailable": (grpc.StatusCode.UNAVAILABLE, False, "retried"),
    "deadline-exceeded": (grpc.StatusCode.DEADLINE_EXCEEDED, False, "retried"),
    "resource-exhausted": (grpc.StatusCode.RESOURCE_EXHAUSTED, False, "dropped"),
    "resource-exhausted-retry-info": (grpc.StatusCode.RESOURCE_EXHAUSTED, True, "retried"),
    "invalid-argument": (grpc.StatusCode.INVALID_ARGUMENT, False, "dropped"),
    "internal": (grpc.StatusCode.INTERNAL, False, "dropped"),
    "unknown": (grpc.StatusCode.UNKNOWN, False, "dropped"),
}


class ScriptedSidecar:
    def __init__(self) -> None:
        self.attempts: dict[str, int] = {}
        self._lock = threading.Lock()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        self.server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    TRACE_SERVICE, {"Export": grpc.unary_unary_rpc_method_handler(self.export)}
                ),
            )
        )
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def export(self, raw: bytes, context: grpc.ServicerContext) -> bytes:
        request = ExportTraceServiceRequest.FromString(raw)
        names = {s.name for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans}
        response = ExportTraceServiceResponse()
        for name in names:
            with self._lock:
                self.attempts[name] = self.attempts.get(name, 0) + 1
                first = self.attempts[name] == 1
            code, retry_info, _ = CASES[name]
            if name == "ok-partial-success":
                response.partial_success.rejected_spans = 1
                response.partial_success.error_message = "1 span quarantined (test)"
            if first and code != grpc.StatusCode.OK:
                if retry_info:
                    detail = AnyProto()
                    detail.Pack(error_details_pb2.RetryInfo(retry_delay=Duration(nanos=200_000_000)))
                    status = status_pb2.Status(code=code.value[0], message="scripted", details=[detail])
                    context.set_trailing_metadata((("grpc-status-details-bin", status.SerializeToString()),))
                context.abort(code, f"scripted {name}")
        return response.SerializeToString()

    def stop(self) -> None:
        self.server.stop(0).wait()


def _send_failed(col: CollectorProcess) -> float:
    url = f"http://127.0.0.1:{col.ports['collector_telemetry']}/metrics"
    with urllib.request.urlopen(url, timeout=5) as resp:
        text = resp.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("otelcol_exporter_send_failed_spans") and "otlp_grpc/sidecar" in line
    )


def test_each_answer_is_retried_or_dropped_as_documented(collector_bin: Path, tmp_path: Path) -> None:
    sidecar = ScriptedSidecar()
    try:
        with running_collector(tmp_path, SIDECAR_ENDPOINT=f"127.0.0.1:{sidecar.port}") as col:
            for name in CASES:  # one batch per case: wait for its first attempt before sending the next
                assert post_traces(col, trace_request(span(name, {}))) == 200
                wait_for(functools.partial(sidecar.attempts.get, name), 15, f"the first attempt of {name}")
            time.sleep(4)  # retry_on_failure.initial_interval is 500ms: every retry has happened by now
            seen = dict(sidecar.attempts)
            failed = wait_for(lambda: _send_failed(col) or None, 15, "otelcol_exporter_send_failed_spans")
    finally:
        sidecar.stop()
    outcome = {name: "retried" if seen[name] >= 2 else "once" for name in CASES}
    expected = {name: "retried" if want == "retried" else "once" for name, (_, _, want) in CASES.items()}
    assert outcome == expected, seen
    dropped = sum(1 for _, _, want in CASES.values() if want == "dropped")
    assert failed == dropped
