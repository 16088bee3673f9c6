"""One value sets every message limit of the sidecar loop (SIDECAR_MAX_MESSAGE_MIB, docs/collector.md).

Ingest accepts at most one sidecar message, the exporters' batches are split to fit one, and the internal
receiver accepts what the sidecar hands back. The cases of issue 9: four ~5 MB OTLP/HTTP requests (a
batch of them is ~20 MB, more than any single message may be) and 512 spans of 16 KB in one gRPC request
(8 MB, twice gRPC's 4 MiB default) are all exported; a request over the limit is refused before it is
acknowledged; and the limit follows the variable.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from tests.e2e.fault_load import OtlpClient, SidecarProcess, exported_span_ids
from tests.stack_support import CollectorProcess, running_collector, wait_for

pytestmark = pytest.mark.e2e

MIB = 1 << 20
REFUSED_HTTP = (400, 413)  # the otlp receiver answers 400 when the body exceeds max_request_body_size


def _request(n_spans: int, attr_bytes: int) -> tuple[trace_service_pb2.ExportTraceServiceRequest, set[str]]:
    text = ("lorem ipsum dolor sit amet " * (attr_bytes // 27 + 1))[:attr_bytes]
    spans = [
        Span(
            trace_id=os.urandom(16),
            span_id=os.urandom(8),
            name="large-span",
            start_time_unix_nano=1,
            end_time_unix_nano=2,
            attributes=[KeyValue(key="big.text", value=AnyValue(string_value=text))],
        )
        for _ in range(n_spans)
    ]
    req = trace_service_pb2.ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(
                    attributes=[KeyValue(key="service.name", value=AnyValue(string_value="big"))]
                ),
                scope_spans=[ScopeSpans(spans=spans)],
            )
        ]
    )
    return req, {s.span_id.hex() for s in spans}


def _post(col: CollectorProcess, req: trace_service_pb2.ExportTraceServiceRequest) -> int:
    http_req = urllib.request.Request(
        f"http://127.0.0.1:{col.ports['otlp_http']}/v1/traces",
        data=req.SerializeToString(),
        headers={"Content-Type": "application/x-protobuf"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(http_req, timeout=60) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _grpc(col: CollectorProcess, req: trace_service_pb2.ExportTraceServiceRequest) -> grpc.StatusCode:
    options = [("grpc.max_send_message_length", 64 * MIB)]
    with grpc.insecure_channel(f"127.0.0.1:{col.ports['otlp_grpc']}", options=options) as channel:
        try:
            trace_service_pb2_grpc.TraceServiceStub(channel).Export(req, timeout=60)  # type: ignore[no-untyped-call]
            return grpc.StatusCode.OK
        except grpc.RpcError as exc:
            return exc.code()


def _exported(col: CollectorProcess) -> set[str]:
    return set(exported_span_ids(col.traces_file))


def _probe_arrives(col: CollectorProcess) -> None:
    client = OtlpClient(f"127.0.0.1:{col.ports['otlp_grpc']}")
    try:
        ids, ok = client.send_spans(1, timeout=10)
    finally:
        client.close()
    assert ok
    wait_for(lambda: set(ids) <= _exported(col), 10, "the probe span after the large requests", 0.1)


def test_four_5mb_http_requests_are_all_exported_and_the_path_keeps_flowing(
    collector_bin: Path, tmp_path: Path
) -> None:
    """Loop-through (the Collector is its own "sidecar"): the hops under test are the Collector's."""
    with running_collector(tmp_path) as col:
        sent: set[str] = set()
        for _ in range(4):
            req, ids = _request(1, 5_000_000)
            assert _post(col, req) == 200
            sent |= ids
        wait_for(lambda: sent <= _exported(col), 60, "the four 5 MB spans in traces.jsonl", 0.5)
        _probe_arrives(col)


def test_512_spans_of_16kb_in_one_grpc_request_pass_the_real_sidecar(
    collector_bin: Path, tmp_path: Path
) -> None:
    collector = CollectorProcess(tmp_path / "collector")
    sidecar = SidecarProcess(tmp_path / "sidecar", forward=f"127.0.0.1:{collector.ports['internal_otlp']}")
    collector.extra_env["SIDECAR_ENDPOINT"] = sidecar.endpoint
    sidecar.start()
    collector.start()
    try:
        req, ids = _request(512, 16 * 1024)
        assert req.ByteSize() > 8 * MIB
        assert _grpc(collector, req) == grpc.StatusCode.OK
        wait_for(lambda: ids <= _exported(collector), 90, "all 512 spans of 16 KB in traces.jsonl", 0.5)
        _probe_arrives(collector)
    finally:
        collector.stop()
        sidecar.stop()


def test_a_request_over_the_limit_is_refused_not_acknowledged(collector_bin: Path, tmp_path: Path) -> None:
    with running_collector(tmp_path) as col:
        over, ids = _request(1, 17 * MIB)
        assert _post(col, over) in REFUSED_HTTP
        assert _grpc(col, over) == grpc.StatusCode.RESOURCE_EXHAUSTED
        _probe_arrives(col)
        assert not ids & _exported(col)


def test_the_limit_follows_sidecar_max_message_mib(collector_bin: Path, tmp_path: Path) -> None:
    with running_collector(tmp_path, SIDECAR_MAX_MESSAGE_MIB="8") as col:
        fits, fit_ids = _request(1, 6 * MIB)  # over gRPC's 4 MiB default, under 8
        assert _grpc(col, fits) == grpc.StatusCode.OK
        over, _ = _request(1, 9 * MIB)
        assert _grpc(col, over) == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert _post(col, over) in REFUSED_HTTP
        wait_for(lambda: fit_ids <= _exported(col), 30, "the 6 MB span in traces.jsonl", 0.5)
