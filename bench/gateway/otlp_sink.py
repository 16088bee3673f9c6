"""A minimal OTLP/gRPC receiver on loopback: accepts trace/metric/log exports and counts (or keeps) them.

Used by the gateway benchmark (so the instrumented run really exports) and by the gateway's end-to-end test.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


@dataclass
class ServiceTelemetry:
    """Counts per service.name, and (while ``OtlpSink.detail`` is on) what its telemetry contains."""

    spans: int = 0
    metric_points: int = 0
    logs: int = 0
    span_names: set[str] = field(default_factory=set)
    span_attributes: set[str] = field(default_factory=set)
    metric_names: set[str] = field(default_factory=set)
    log_attributes: set[str] = field(default_factory=set)
    log_bodies: int = 0


@dataclass
class Received:
    spans: int = 0
    metric_points: int = 0
    logs: int = 0
    authorization: set[str] = field(default_factory=set)
    trace_requests: list[Any] = field(default_factory=list)
    metric_requests: list[Any] = field(default_factory=list)
    log_requests: list[Any] = field(default_factory=list)
    services: dict[str, ServiceTelemetry] = field(default_factory=dict)


def _service(resource: Any) -> str:
    for kv in resource.attributes:
        if kv.key == "service.name":
            return str(kv.value.string_value)
    return "?"


def _auth(context: grpc.ServicerContext) -> str | None:
    for key, value in context.invocation_metadata():
        if key == "authorization":
            return str(value)
    return None


class OtlpSink:
    def __init__(self, keep: bool = False, port: int = 0) -> None:
        self.received = Received()
        self._keep = keep
        self.detail = False  # collect span names / attribute keys / metric names per service
        self._lock = threading.Lock()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        sink = self

        class Traces(trace_service_pb2_grpc.TraceServiceServicer):
            def Export(self, request: Any, context: grpc.ServicerContext) -> Any:
                n = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
                sink._record("spans", n, request, sink.received.trace_requests, context)
                with sink._lock:
                    for rs in request.resource_spans:
                        svc = sink._svc(rs.resource)
                        for ss in rs.scope_spans:
                            svc.spans += len(ss.spans)
                            if sink.detail:
                                for span in ss.spans:
                                    svc.span_names.add(span.name)
                                    svc.span_attributes.update(kv.key for kv in span.attributes)
                return trace_service_pb2.ExportTraceServiceResponse()

        class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
            def Export(self, request: Any, context: grpc.ServicerContext) -> Any:
                n = 0
                for rm in request.resource_metrics:
                    for sm in rm.scope_metrics:
                        for m in sm.metrics:
                            kind = m.WhichOneof("data")
                            n += len(getattr(m, kind).data_points) if kind else 0
                sink._record("metric_points", n, request, sink.received.metric_requests, context)
                with sink._lock:
                    for rm in request.resource_metrics:
                        svc = sink._svc(rm.resource)
                        for sm in rm.scope_metrics:
                            for m in sm.metrics:
                                kind = m.WhichOneof("data")
                                svc.metric_points += len(getattr(m, kind).data_points) if kind else 0
                                if sink.detail:
                                    svc.metric_names.add(m.name)
                return metrics_service_pb2.ExportMetricsServiceResponse()

        class Logs(logs_service_pb2_grpc.LogsServiceServicer):
            def Export(self, request: Any, context: grpc.ServicerContext) -> Any:
                n = sum(len(sl.log_records) for rl in request.resource_logs for sl in rl.scope_logs)
                sink._record("logs", n, request, sink.received.log_requests, context)
                with sink._lock:
                    for rl in request.resource_logs:
                        svc = sink._svc(rl.resource)
                        for sl in rl.scope_logs:
                            svc.logs += len(sl.log_records)
                            if sink.detail:
                                for rec in sl.log_records:
                                    svc.log_attributes.update(kv.key for kv in rec.attributes)
                return logs_service_pb2.ExportLogsServiceResponse()

        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Traces(), self._server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Metrics(), self._server)
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(Logs(), self._server)
        self.port = self._server.add_insecure_port(f"127.0.0.1:{port}")
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def _record(
        self, counter: str, n: int, request: Any, store: list[Any], context: grpc.ServicerContext
    ) -> None:
        auth = _auth(context)
        with self._lock:
            setattr(self.received, counter, getattr(self.received, counter) + n)
            if auth:
                self.received.authorization.add(auth)
            if self._keep:
                store.append(request)

    def _svc(self, resource: Any) -> ServiceTelemetry:
        return self.received.services.setdefault(_service(resource), ServiceTelemetry())

    def service(self, name: str) -> ServiceTelemetry:
        with self._lock:
            return self.received.services.setdefault(name, ServiceTelemetry())

    def start(self) -> OtlpSink:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop(grace=1).wait(5)

    def spans(self) -> Sequence[Any]:
        return [
            span
            for req in self.received.trace_requests
            for rs in req.resource_spans
            for ss in rs.scope_spans
            for span in ss.spans
        ]
