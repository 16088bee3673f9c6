"""Test doubles and builders: a real gRPC OTLP sink, an in-process sidecar, OTLP batch builders."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from processors.config import SidecarConfig
from processors.handlers import LOGS_METHOD, TRACE_METHOD, Pipeline
from processors.server import RunningServer, start_server
from processors.telemetry import Telemetry


@dataclass
class Sink:
    """A real OTLP/gRPC receiver on loopback that records raw requests; can be told to fail or stall."""

    traces: list[bytes] = field(default_factory=list)
    logs: list[bytes] = field(default_factory=list)
    fail_with: grpc.StatusCode | None = None
    delay_s: float = 0.0
    partial_rejected: int = 0
    max_receive: int = 4 * 1024 * 1024  # gRPC's default, as the Collector's receivers have it
    fail_first: int = 0  # answer UNAVAILABLE to this many requests before accepting
    fail_at: set[int] = field(default_factory=set)  # answer UNAVAILABLE to these requests (1 = the first)
    requests: int = 0
    port: int = 0
    _server: grpc.Server | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _handler(self, store: list[bytes], response_cls: Any):  # type: ignore[no-untyped-def]
        def handle(raw: bytes, context: grpc.ServicerContext) -> bytes:
            if self.delay_s:
                time.sleep(self.delay_s)
            if self.fail_with is not None:
                context.abort(self.fail_with, "sink told to fail")
            with self._lock:
                self.requests += 1
                failing = self.fail_first > 0 or self.requests in self.fail_at
                self.fail_first -= self.fail_first > 0
            if failing:
                context.abort(grpc.StatusCode.UNAVAILABLE, "sink told to fail once")
            with self._lock:
                store.append(raw)
            response = response_cls()
            if self.partial_rejected:
                if hasattr(response.partial_success, "rejected_spans"):
                    response.partial_success.rejected_spans = self.partial_rejected
                else:
                    response.partial_success.rejected_log_records = self.partial_rejected
                response.partial_success.error_message = "sink rejected some"
            return bytes(response.SerializeToString())

        return handle

    def start(self, port: int = 0) -> Sink:
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=8),
            options=[("grpc.so_reuseport", 0), ("grpc.max_receive_message_length", self.max_receive)],
        )
        server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    "opentelemetry.proto.collector.trace.v1.TraceService",
                    {
                        "Export": grpc.unary_unary_rpc_method_handler(
                            self._handler(self.traces, ExportTraceServiceResponse)
                        )
                    },
                ),
                grpc.method_handlers_generic_handler(
                    "opentelemetry.proto.collector.logs.v1.LogsService",
                    {
                        "Export": grpc.unary_unary_rpc_method_handler(
                            self._handler(self.logs, ExportLogsServiceResponse)
                        )
                    },
                ),
            )
        )
        bound = server.add_insecure_port(f"127.0.0.1:{port}")
        assert bound, f"sink cannot bind port {port}"
        self.port = bound
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(0).wait()
            self._server = None


@contextmanager
def running_sidecar(
    config: SidecarConfig, forward_port: int, telemetry: Telemetry | None = None
) -> Iterator[RunningServer]:
    pipeline = Pipeline(config)
    running = start_server(
        config, pipeline, telemetry or Telemetry(None), "127.0.0.1:0", f"127.0.0.1:{forward_port}", False
    )
    try:
        yield running
    finally:
        running.stop(2.0)


class Client:
    """Raw-bytes OTLP client, the way the Collector's exporter calls the sidecar."""

    def __init__(self, port: int) -> None:
        self.channel = grpc.insecure_channel(
            f"127.0.0.1:{port}", options=[("grpc.max_send_message_length", 256 * 1024 * 1024)]
        )
        self._traces = self.channel.unary_unary(
            TRACE_METHOD, request_serializer=None, response_deserializer=None
        )
        self._logs = self.channel.unary_unary(
            LOGS_METHOD, request_serializer=None, response_deserializer=None
        )

    def traces(
        self, payload: bytes | ExportTraceServiceRequest, timeout: float = 5.0
    ) -> ExportTraceServiceResponse:
        raw = payload if isinstance(payload, bytes) else payload.SerializeToString()
        return ExportTraceServiceResponse.FromString(self._traces(raw, timeout=timeout))

    def logs(
        self, payload: bytes | ExportLogsServiceRequest, timeout: float = 5.0
    ) -> ExportLogsServiceResponse:
        raw = payload if isinstance(payload, bytes) else payload.SerializeToString()
        return ExportLogsServiceResponse.FromString(self._logs(raw, timeout=timeout))

    def close(self) -> None:
        self.channel.close()


# --- builders ---------------------------------------------------------------------------------------
def value(v: object) -> AnyValue:
    if isinstance(v, bool):
        return AnyValue(bool_value=v)
    if isinstance(v, int):
        return AnyValue(int_value=v)
    if isinstance(v, float):
        return AnyValue(double_value=v)
    if isinstance(v, str):
        return AnyValue(string_value=v)
    if isinstance(v, list):
        return AnyValue(array_value=ArrayValue(values=[value(x) for x in v]))
    if isinstance(v, dict):
        return AnyValue(kvlist_value=KeyValueList(values=attrs(v)))
    raise TypeError(type(v))


def attrs(d: dict[str, object]) -> list[KeyValue]:
    return [KeyValue(key=k, value=value(v)) for k, v in d.items()]


def span(name: str, attributes: dict[str, object], i: int = 1, **kw: Any) -> Span:
    return Span(
        trace_id=bytes([i % 256]) * 16,
        span_id=bytes([(i + 1) % 256]) * 8,
        name=name,
        attributes=attrs(attributes),
        **kw,
    )


def trace_request(*spans: Span, resource: dict[str, object] | None = None) -> ExportTraceServiceRequest:
    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(attributes=attrs(resource or {"service.name": "test"})),
                scope_spans=[ScopeSpans(spans=list(spans))],
            )
        ]
    )


def logs_request(*records: LogRecord, resource: dict[str, object] | None = None) -> ExportLogsServiceRequest:
    return ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                resource=Resource(attributes=attrs(resource or {"service.name": "test"})),
                scope_logs=[ScopeLogs(log_records=list(records))],
            )
        ]
    )


def span_attrs(s: Span) -> dict[str, object]:
    return {kv.key: plain(kv.value) for kv in s.attributes}


def plain(v: AnyValue) -> object:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [plain(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: plain(kv.value) for kv in v.kvlist_value.values}
    return getattr(v, kind) if kind else None
