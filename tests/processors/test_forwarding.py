"""The shared export path against a real gRPC sink: OK only after the forward, retryable errors, limits."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from processors.config import ServerConfig, SidecarConfig
from processors.config_loader import build
from processors.telemetry import FORWARD_ERRORS, Telemetry
from tests.processors.helpers import (
    Client,
    Sink,
    logs_request,
    running_sidecar,
    span,
    span_attrs,
    trace_request,
    value,
)


def _batch(i: int) -> ExportTraceServiceRequest:
    return trace_request(span(f"op-{i}", {"batch.index": i, "note": "plain text"}, i=i + 1))


def test_unchanged_batch_is_forwarded_byte_identical(sink: Sink) -> None:
    raw = _batch(1).SerializeToString()
    with running_sidecar(SidecarConfig(), sink.port) as sidecar:
        client = Client(sidecar.port)
        client.traces(raw)
        client.close()
    assert sink.traces == [raw]


def test_changed_batch_is_redacted_before_forwarding(sink: Sink) -> None:
    req = trace_request(span("s", {"msg": "mail bob@example.com"}))
    with running_sidecar(SidecarConfig(), sink.port) as sidecar:
        client = Client(sidecar.port)
        client.traces(req)
        client.logs(logs_request(LogRecord(body=value("from 192.0.2.44"))))
        client.close()
    out = ExportTraceServiceRequest.FromString(sink.traces[0])
    assert span_attrs(out.resource_spans[0].scope_spans[0].spans[0])["msg"] == "mail <EMAIL>"
    assert b"192.0.2.44" not in sink.logs[0] and b"<IPV4>" in sink.logs[0]


def test_downstream_down_nothing_acknowledged_is_lost() -> None:
    sink = Sink().start()
    port = sink.port
    acked: list[int] = []
    refused: list[int] = []
    try:
        with running_sidecar(SidecarConfig(), port) as sidecar:
            client = Client(sidecar.port)
            for i in range(30):
                if i == 10:
                    sink.stop()  # the Collector goes away
                if i == 20:
                    sink = Sink(traces=sink.traces).start(port)  # and comes back on the same port
                    time.sleep(0.2)
                try:
                    client.traces(_batch(i), timeout=3)
                    acked.append(i)
                except grpc.RpcError as err:
                    assert err.code() == grpc.StatusCode.UNAVAILABLE, err.details()
                    refused.append(i)
            client.close()
    finally:
        sink.stop()
    received = {
        ExportTraceServiceRequest.FromString(raw).resource_spans[0].scope_spans[0].spans[0].name
        for raw in sink.traces
    }
    assert {f"op-{i}" for i in acked} <= received  # every OK'd batch reached the sink
    assert set(range(10, 20)) <= set(refused)  # while down: retryable refusals, never a silent OK
    assert set(range(10)) <= set(acked)


def test_downstream_error_codes_map_to_unavailable_or_quarantine(sink: Sink, dead_letter_dir: Path) -> None:
    with running_sidecar(SidecarConfig(), sink.port) as sidecar:
        client = Client(sidecar.port)
        sink.fail_with = grpc.StatusCode.RESOURCE_EXHAUSTED  # Collector memory limiter: retry
        with pytest.raises(grpc.RpcError) as err:
            client.traces(_batch(1))
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        # permanent: passing INVALID_ARGUMENT back would make the Collector drop it; kept instead
        sink.fail_with = grpc.StatusCode.INVALID_ARGUMENT
        response = client.traces(_batch(2))
        client.close()
    assert response.partial_success.rejected_spans == 1
    assert "downstream_rejected" in response.partial_success.error_message
    (kept,) = dead_letter_dir.glob("traces-downstream_rejected-*.pb")
    assert kept.read_bytes() == _batch(2).SerializeToString()


def test_partial_success_is_passed_through(sink: Sink) -> None:
    sink.partial_rejected = 3
    with running_sidecar(SidecarConfig(), sink.port) as sidecar:
        client = Client(sidecar.port)
        response = client.traces(_batch(1))
        logs_response = client.logs(logs_request(LogRecord(body=value("x"))))
        client.close()
    assert response.partial_success.rejected_spans == 3
    assert response.partial_success.error_message == "sink rejected some"
    assert logs_response.partial_success.rejected_log_records == 3


def test_slow_downstream_hits_forward_timeout_as_unavailable(sink: Sink) -> None:
    sink.delay_s = 1.0
    config = SidecarConfig(server=ServerConfig(forward_timeout_seconds=0.2))
    with running_sidecar(config, sink.port) as sidecar:
        client = Client(sidecar.port)
        with pytest.raises(grpc.RpcError) as err:
            client.traces(_batch(1), timeout=5)
        client.close()
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "DEADLINE_EXCEEDED" in (err.value.details() or "")


def test_overloaded_sidecar_answers_unavailable(sink: Sink) -> None:
    sink.delay_s = 0.8
    config = SidecarConfig(server=ServerConfig(max_concurrent_batches=1, queue_wait_seconds=0.05))
    codes: list[grpc.StatusCode] = []
    with running_sidecar(config, sink.port) as sidecar:
        client = Client(sidecar.port)

        def send(i: int) -> None:
            try:
                client.traces(_batch(i), timeout=5)
                codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as err:
                codes.append(err.code())

        threads = [threading.Thread(target=send, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        client.close()
    assert codes.count(grpc.StatusCode.OK) >= 1
    assert grpc.StatusCode.UNAVAILABLE in codes
    assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE}


def test_malformed_protobuf_is_invalid_argument(sink: Sink) -> None:
    with running_sidecar(SidecarConfig(), sink.port) as sidecar:
        client = Client(sidecar.port)
        for bad in (b"\xff\xff\xff\xff", b"\x0a\x05\x0a\x03", b"\x0a\xff\xff\xff\xff\x0f"):
            with pytest.raises(grpc.RpcError) as err:
                client.traces(bad)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "not a valid ExportTraceServiceRequest" in (err.value.details() or "")
        client.close()
    assert sink.traces == []


def test_oversized_request_is_quarantined_not_dropped(sink: Sink, dead_letter_dir: Path) -> None:
    config = SidecarConfig(server=build(ServerConfig, {"max_message_bytes": 64 * 1024}, "server"))
    big = trace_request(span("s", {"blob": "x" * 100_000}))
    huge = trace_request(span("s", {"blob": "x" * 300_000}))  # beyond 2x the limit: refused by gRPC itself
    with running_sidecar(config, sink.port) as sidecar:
        client = Client(sidecar.port)
        response = client.traces(big)
        assert response.partial_success.rejected_spans == 1
        assert "too_large" in response.partial_success.error_message
        with pytest.raises(grpc.RpcError) as err:
            client.traces(huge)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        client.close()
    assert sink.traces == []
    (kept,) = dead_letter_dir.glob("traces-too_large-*.pb")
    assert kept.read_bytes() == big.SerializeToString()
    assert kept.stat().st_mode & 0o777 == 0o600 and dead_letter_dir.stat().st_mode & 0o777 == 0o700


def test_internal_error_fails_closed_then_quarantines(
    sink: Sink, monkeypatch: pytest.MonkeyPatch, dead_letter_dir: Path
) -> None:
    config = SidecarConfig(server=build(ServerConfig, {"max_attempts_per_batch": 3}, "server"))
    poison = trace_request(span("s", {"msg": "bob@example.com"}))
    with running_sidecar(config, sink.port) as sidecar:
        # break redaction in the running server: the batch holds PII and must not leave
        from processors.redaction.scanner import PiiScanner

        def boom(self: PiiScanner, text: str, ids: object, *_: object) -> None:
            raise RuntimeError("secret-bob@example.com")

        monkeypatch.setattr(PiiScanner, "redact_text", boom)
        client = Client(sidecar.port)
        for attempt in (1, 2):  # retryable: it may be passing (and INTERNAL would make the Collector drop it)
            with pytest.raises(grpc.RpcError) as err:
                client.traces(poison)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
            details = err.value.details() or ""
            assert "NOT forwarded" in details and f"attempt {attempt} of 3" in details
            assert "bob@example.com" not in details  # the error text is not echoed
        response = client.traces(poison)  # the third time: quarantined, the Collector's queue moves on
        monkeypatch.undo()
        innocent = client.traces(_batch(7))
        client.close()
    assert response.partial_success.rejected_spans == 1
    assert "processing_failed" in response.partial_success.error_message
    assert len(sink.traces) == 1 and innocent.partial_success.rejected_spans == 0  # only the innocent one
    (kept,) = dead_letter_dir.glob("traces-processing_failed-*.pb")
    assert kept.read_bytes() == poison.SerializeToString()


def test_a_malformed_item_is_quarantined_and_the_rest_forwarded(sink: Sink, dead_letter_dir: Path) -> None:
    from processors.wire.index import encode_varint

    def field_(n: int, content: bytes) -> bytes:
        return encode_varint(n << 3 | 2) + encode_varint(len(content)) + content

    good = span("good", {"msg": "mail bob@example.com"}).SerializeToString()
    broken = field_(5, b"broken") + b"\x4a\x10\x0a"  # an attribute running past the span's end
    raw = field_(1, field_(2, field_(2, good) + field_(2, broken)))
    with running_sidecar(SidecarConfig(), sink.port) as sidecar:
        client = Client(sidecar.port)
        response = client.traces(raw)
        client.close()
    assert response.partial_success.rejected_spans == 1
    (forwarded,) = sink.traces
    spans = ExportTraceServiceRequest.FromString(forwarded).resource_spans[0].scope_spans[0].spans
    assert [s.name for s in spans] == ["good"] and span_attrs(spans[0])["msg"] == "mail <EMAIL>"
    (kept,) = dead_letter_dir.glob("traces-malformed-*.pb")
    assert field_(2, broken) in kept.read_bytes()


def test_an_unwritable_dead_letter_directory_keeps_the_batch_queued(sink: Sink, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    config = SidecarConfig(
        server=build(
            ServerConfig, {"max_message_bytes": 64 * 1024, "dead_letter_dir": str(blocker / "dl")}, "server"
        )
    )
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    with running_sidecar(config, sink.port, Telemetry(provider)) as sidecar:
        client = Client(sidecar.port)
        with pytest.raises(grpc.RpcError) as err:
            client.traces(trace_request(span("s", {"blob": "x" * 100_000})))
        client.close()
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE  # retried, not dropped
    assert "could not quarantine" in (err.value.details() or "")
    # what alert SidecarQuarantineFailing watches (sidecar_forward_errors_total{kind="dead_letter_failed"})
    data = reader.get_metrics_data()
    assert data is not None
    errors = [
        (dict(point.attributes or {}), point.value)
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
        if metric.name == FORWARD_ERRORS
        for point in metric.data.data_points
    ]
    assert errors == [({"signal": "traces", "kind": "dead_letter_failed"}, 1)]
    provider.shutdown()


def test_health_is_serving(sink: Sink) -> None:
    with running_sidecar(SidecarConfig(), sink.port) as sidecar:
        channel = grpc.insecure_channel(f"127.0.0.1:{sidecar.port}")
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", "opentelemetry.proto.collector.trace.v1.TraceService"):
            resp = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert resp.status == health_pb2.HealthCheckResponse.SERVING
        channel.close()


# --- batches over the forward limit ------------------------------------------------------------------


def _spans(raws: list[bytes]) -> list[str]:
    return [
        sp.name
        for raw in raws
        for rs in ExportTraceServiceRequest.FromString(raw).resource_spans
        for ss in rs.scope_spans
        for sp in ss.spans
    ]


def _big_batch(n: int, size: int) -> ExportTraceServiceRequest:
    return trace_request(
        *(span(f"big-{i}", {"gen_ai.input.messages": "word " * (size // 5)}, i=i) for i in range(n))
    )


def _limited(forward_limit: int) -> SidecarConfig:
    return SidecarConfig(server=build(ServerConfig, {"forward_max_message_bytes": forward_limit}, "server"))


def test_batch_over_the_forward_limit_is_split_and_each_part_fits(sink: Sink) -> None:
    req = _big_batch(512, 16 * 1024)  # 512 spans of 16 KB: ~8.4 MB, over the sink's 4 MiB
    with running_sidecar(_limited(4 * 1024 * 1024), sink.port) as sidecar:
        client = Client(sidecar.port)
        client.traces(req, timeout=30)
        client.close()
    assert len(sink.traces) >= 3
    assert all(len(raw) <= 4 * 1024 * 1024 for raw in sink.traces)
    assert _spans(sink.traces) == [f"big-{i}" for i in range(512)]


def test_a_retry_after_a_failed_part_forwards_only_the_rest(sink: Sink) -> None:
    req = _big_batch(300, 16 * 1024)  # ~4.9 MB: three parts of at most 2 MiB
    sink.fail_at = {2}  # the second part is refused once: the Collector retries the whole request
    with running_sidecar(_limited(2 * 1024 * 1024), sink.port) as sidecar:
        client = Client(sidecar.port)
        with pytest.raises(grpc.RpcError) as err:
            client.traces(req, timeout=30)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        client.traces(req, timeout=30)
        client.close()
    names = _spans(sink.traces)
    assert sorted(names) == sorted(f"big-{i}" for i in range(300))  # each exactly once: no duplicate


def test_a_collector_limit_below_the_configured_one_is_learned_not_a_wedge(sink: Sink) -> None:
    sink.stop()
    small = Sink(max_receive=1024 * 1024).start()  # the internal receiver was left at 1 MiB
    try:
        req = _big_batch(200, 16 * 1024)  # ~3.3 MB
        with running_sidecar(SidecarConfig(), small.port) as sidecar:  # configured: 16 MiB
            client = Client(sidecar.port)
            client.traces(req, timeout=30)
            client.traces(req, timeout=30)  # the learned limit holds for later batches
            client.close()
    finally:
        small.stop()
    assert all(len(raw) <= 1024 * 1024 for raw in small.traces)
    assert sorted(_spans(small.traces)) == sorted(f"big-{i}" for i in range(200) for _ in range(2))


def test_one_item_over_the_limit_is_truncated_redacted_and_forwarded(sink: Sink) -> None:
    blob = "mail bob@example.com " + "a" * 5_000_000  # one 5 MB attribute
    req = trace_request(span("huge", {"prompt": blob, "other": "kept"}), span("small", {"x": 1}, i=2))
    with running_sidecar(_limited(4 * 1024 * 1024), sink.port) as sidecar:
        client = Client(sidecar.port)
        client.traces(req, timeout=30)
        client.close()
    assert all(len(raw) <= 4 * 1024 * 1024 for raw in sink.traces)
    spans = {
        sp.name: span_attrs(sp)
        for raw in sink.traces
        for sp in ExportTraceServiceRequest.FromString(raw).resource_spans[0].scope_spans[0].spans
    }
    assert set(spans) == {"huge", "small"}
    prompt = str(spans["huge"]["prompt"])
    assert prompt.startswith("mail <EMAIL> aaa") and "truncated by llm-otel-sidecar" in prompt
    assert spans["huge"]["other"] == "kept"
