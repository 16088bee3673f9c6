"""The built Collector with our configuration: ingest authentication and nothing lost in an outage."""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from tests.e2e.otlp_client import SyntheticApp
from tests.processors.helpers import span, trace_request
from tests.stack_support import CollectorProcess, exported_spans, running_collector, wait_for

pytestmark = pytest.mark.e2e


def _request(span_name: str) -> tuple[trace_service_pb2.ExportTraceServiceRequest, str]:
    one = span(span_name, {}, start_time_unix_nano=1, end_time_unix_nano=2)
    one.trace_id, one.span_id = os.urandom(16), os.urandom(8)
    return trace_request(one, resource={"service.name": "auth-test"}), one.span_id.hex()


def _grpc_export(port: int, req: trace_service_pb2.ExportTraceServiceRequest, token: str | None) -> None:
    metadata = [("authorization", f"Bearer {token}")] if token else []
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        trace_service_pb2_grpc.TraceServiceStub(channel).Export(  # type: ignore[no-untyped-call]
            req, metadata=metadata, timeout=10
        )


def _http_export(port: int, req: trace_service_pb2.ExportTraceServiceRequest, token: str | None) -> int:
    headers = {"Content-Type": "application/x-protobuf"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    http_req = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/traces", data=req.SerializeToString(), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(http_req, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_ingest_token_refuses_requests_without_it(collector_bin: Path, tmp_path: Path) -> None:
    token = "s3cret-ingest-token"
    with running_collector(tmp_path, OTLP_INGEST_TOKEN=token) as col:
        grpc_port, http_port = col.ports["otlp_grpc"], col.ports["otlp_http"]
        refused: list[str] = []
        accepted: list[str] = []

        req, span_id = _request("grpc-no-token")
        with pytest.raises(grpc.RpcError) as err:
            _grpc_export(grpc_port, req, None)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        refused.append(span_id)

        req, span_id = _request("grpc-wrong-token")
        with pytest.raises(grpc.RpcError) as err:
            _grpc_export(grpc_port, req, "not-the-token")
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        refused.append(span_id)

        req, span_id = _request("http-no-token")
        assert _http_export(http_port, req, None) == 401
        refused.append(span_id)

        req, span_id = _request("grpc-token")
        _grpc_export(grpc_port, req, token)
        accepted.append(span_id)

        req, span_id = _request("http-token")
        assert _http_export(http_port, req, token) == 200
        accepted.append(span_id)

        # The SDK's standard way: OTEL_EXPORTER_OTLP_HEADERS → headers on every export.
        app = SyntheticApp(endpoint=f"127.0.0.1:{grpc_port}", headers={"authorization": f"Bearer {token}"})
        app.request(1)
        app.flush()
        app.shutdown()
        accepted.extend(app.span_ids)

        def exported() -> set[str]:
            return {s["spanId"] for s in exported_spans(col.traces_file)}

        wait_for(lambda: set(accepted) <= exported(), 30, "the authenticated spans in traces.jsonl")
        assert not set(refused) & exported()


def test_downstream_outage_loses_nothing_even_across_a_restart(collector_bin: Path, tmp_path: Path) -> None:
    """Collector A exports to B (standing in for the sidecar, through the production
    otlp_grpc/sidecar exporter with its persistent queue). B is down while A receives data; A is
    restarted in between; then B comes up and every span id arrives."""
    downstream = CollectorProcess(tmp_path / "downstream")
    with running_collector(
        tmp_path / "upstream", SIDECAR_ENDPOINT=f"127.0.0.1:{downstream.ports['otlp_grpc']}"
    ) as upstream:
        sent: set[str] = set()
        app = SyntheticApp(endpoint=f"127.0.0.1:{upstream.ports['otlp_grpc']}", service_name="outage-test")
        for i in range(150):
            app.request(i)
        app.flush()
        sent |= app.span_ids
        app.shutdown()

        wait_for(
            lambda: _counter(upstream, "otelcol_receiver_accepted_spans_total", 'receiver="otlp"') >= 150,
            30,
            "the upstream to accept the first 150 spans",
        )
        time.sleep(1)  # past the batch processor's 200ms timeout: the batches sit in the exporter's queue
        upstream.stop()  # graceful: the queue is on disk (file_storage)
        upstream.start()

        app = SyntheticApp(endpoint=f"127.0.0.1:{upstream.ports['otlp_grpc']}", service_name="outage-test")
        for i in range(150, 200):
            app.request(i)
        app.flush()
        sent |= app.span_ids
        app.shutdown()
        assert not exported_spans(downstream.traces_file)

        downstream.start()
        try:

            def arrived() -> set[str]:
                return sent & {s["spanId"] for s in exported_spans(downstream.traces_file)}

            got = wait_for(
                lambda: arrived() if arrived() == sent else None, 90, f"all {len(sent)} span ids downstream"
            )
            assert got == sent
        finally:
            downstream.stop()


def _counter(col: CollectorProcess, name: str, label: str) -> float:
    with urllib.request.urlopen(
        f"http://127.0.0.1:{col.ports['collector_telemetry']}/metrics", timeout=5
    ) as resp:
        text = resp.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and label in line:
            total += float(line.rsplit(" ", 1)[1])
    return total
