"""Captures OTLP batches as the real Collector (build/otelcol-llm) encodes them, for the golden tests.

Builds trace, log and metric batches in Python holding PII and secrets in every field the sidecar scans,
sends them to the Collector's otlp receiver, and records the raw bytes the Collector's otlp_grpc exporter
sends on to a tiny capture server (the Collector re-encodes every batch: Go writes a KeyValue's value before
its key, among other differences). Writes collector_batches.json next to this file: per batch the signal, a
name, the Collector's bytes (base64) and the sensitive strings that must not survive redaction.

    .venv/bin/python tests/processors/redaction/testdata/capture_collector_batches.py [--collector PATH]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent import futures
from pathlib import Path

import grpc
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import SeverityNumber
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality
from opentelemetry.proto.trace.v1.trace_pb2 import Status

ROOT = Path(__file__).resolve().parents[4]
sys.path.insert(0, str(ROOT))  # run as a script: the test helpers' OTLP builders
from tests.processors.helpers import attrs, value  # noqa: E402

OUT = Path(__file__).with_name("collector_batches.json")
SERVICES = {
    "traces": "opentelemetry.proto.collector.trace.v1.TraceService",
    "logs": "opentelemetry.proto.collector.logs.v1.LogsService",
    "metrics": "opentelemetry.proto.collector.metrics.v1.MetricsService",
}

# Fixed values (the file is checked in; the e2e test generates fresh ones).
EMAIL = "jane.roe+golden@example.org"
PHONE = "+44 20 7946 0958"
CARD = "4539 1488 0343 6467"
CARD_INT = 4539148803436467
SSN = "536-22-8741"
IBAN = "DE89370400440532013000"
IPV4 = "203.0.113.77"
OPENAI = "sk-proj-Gd7Qm2Vx9Lk4Pw8Rt6Zy3Hb5Nc1Jf0Ks"
GITHUB = "ghp_" + "R7x" * 12
SECRET_PLAIN = "plain-golden-secret-value"  # matches no pattern: only the key rule can catch it
SENSITIVE = [EMAIL, PHONE, CARD, str(CARD_INT), SSN, IBAN, IPV4, OPENAI, GITHUB, SECRET_PLAIN]
SECRET_KEYS = [
    "password",
    "api_key",
    "token",
    "client_secret",
    "clientSecret",
    "apiKey",
    "accessToken",
    "http.request.header.authorization",
    "http.request.header.x-api-key",
    "X-Api-Key",
]


def _attributes() -> list[KeyValue]:
    plain = {
        "http.route": "/users/{id}",
        "user.email": EMAIL,
        "note": f"call me at {PHONE}, card {CARD}, ssn {SSN}",
        "payment.iban": IBAN,
        "client.address": IPV4,
        "gen_ai.prompt": json.dumps([{"role": "user", "content": f"my key is {OPENAI} and {GITHUB}"}]),
        "card.number.int": CARD_INT,
        "card.number.double": float(CARD_INT),
        "nested": {"contact": [EMAIL, {"deeper": PHONE}], "password": SECRET_PLAIN},
        f"user.{EMAIL}": "key holds the e-mail",
        "gen_ai.conversation.id": EMAIL,  # allow-listed key: an e-mail is still replaced
    }
    secrets = {key: SECRET_PLAIN for key in SECRET_KEYS}
    return attrs({**plain, **secrets, "count": 3})


def traces() -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    for r in range(2):  # two resources, the second with two scopes
        rs = req.resource_spans.add()
        rs.resource.attributes.extend(
            attrs({"service.name": "golden", "host.owner": EMAIL, "password": SECRET_PLAIN})
        )
        for s in range(1 + r):
            ss = rs.scope_spans.add()
            ss.scope.name = "golden.scope"
            ss.scope.attributes.extend(attrs({"scope.owner": EMAIL}))
            for i in range(2):
                span = ss.spans.add(
                    trace_id=bytes([r + 1]) * 16,
                    span_id=bytes([s + 1, i + 1]) * 4,
                    name=f"GET /users/{EMAIL}",
                    kind=2,
                    start_time_unix_nano=1_700_000_000_000_000_000 + i,
                    end_time_unix_nano=1_700_000_000_100_000_000 + i,
                )
                span.attributes.extend(_attributes())
                event = span.events.add(
                    name=f"mail sent to {EMAIL}", time_unix_nano=1_700_000_000_050_000_000
                )
                event.attributes.extend(_attributes())
                link = span.links.add(trace_id=b"\x09" * 16, span_id=b"\x08" * 8)
                link.attributes.extend(_attributes())
                span.status.code = Status.STATUS_CODE_ERROR
                span.status.message = f"failed for {EMAIL} with card {CARD}"
    return req


def logs() -> ExportLogsServiceRequest:
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    rl.resource.attributes.extend(attrs({"service.name": "golden", "host.owner": EMAIL}))
    sl = rl.scope_logs.add()
    sl.scope.name = "golden.scope"
    for i, body in enumerate(
        [
            value(f"user {EMAIL} paid with {CARD} from {IPV4}"),
            value({"msg": "login", "user": {"email": EMAIL, "password": SECRET_PLAIN}, EMAIL: "as a key"}),
            value([PHONE, CARD_INT, {"iban": IBAN}]),
            value(CARD_INT),
        ]
    ):
        record = sl.log_records.add(
            time_unix_nano=1_700_000_000_000_000_000 + i,
            severity_number=SeverityNumber.SEVERITY_NUMBER_INFO,
            severity_text=f"INFO {EMAIL}",
        )
        record.event_name = f"user.login {EMAIL}"
        record.body.CopyFrom(body)
        record.attributes.extend(_attributes())
    return req


def metrics() -> ExportMetricsServiceRequest:
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.extend(
        attrs({"service.name": "golden", "service.instance.id": EMAIL, "host.owner": EMAIL})
    )
    sm = rm.scope_metrics.add()
    sm.scope.name = "golden.scope"
    points = [attrs({"user": EMAIL, "route": "/users/{id}"}), _attributes()]
    gauge = sm.metrics.add(name="golden.gauge", description=f"owned by {EMAIL}")
    for point_attrs in points:
        p = gauge.gauge.data_points.add(as_double=1.0, time_unix_nano=1_700_000_000_000_000_000)
        p.attributes.extend(point_attrs)
    total = sm.metrics.add(name="golden.sum")
    total.sum.aggregation_temporality = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
    total.sum.is_monotonic = True
    for point_attrs in points:
        p = total.sum.data_points.add(as_int=5, time_unix_nano=1_700_000_000_000_000_000)
        p.attributes.extend(point_attrs)
        ex = p.exemplars.add(as_int=1, time_unix_nano=1_700_000_000_000_000_000, span_id=b"\x01" * 8)
        ex.filtered_attributes.extend(attrs({"user.email": EMAIL, "password": SECRET_PLAIN}))
    hist = sm.metrics.add(name="golden.histogram", unit="s")
    hist.histogram.aggregation_temporality = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
    for point_attrs in points:
        hp = hist.histogram.data_points.add(
            count=3,
            sum=1.5,
            bucket_counts=[1, 2, 0],
            explicit_bounds=[0.5, 1.0],
            time_unix_nano=1_700_000_000_000_000_000,
        )
        hp.attributes.extend(point_attrs)
        hp.exemplars.add(as_double=0.7, time_unix_nano=1_700_000_000_000_000_000).filtered_attributes.extend(
            attrs({"client.address": IPV4})
        )
    expo = sm.metrics.add(name="golden.exponential")
    expo.exponential_histogram.aggregation_temporality = (
        AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
    )
    ep = expo.exponential_histogram.data_points.add(
        count=2, scale=1, time_unix_nano=1_700_000_000_000_000_000
    )
    ep.positive.bucket_counts.extend([1, 1])
    ep.attributes.extend(points[1])
    summary = sm.metrics.add(name="golden.summary")
    sp = summary.summary.data_points.add(count=1, sum=2.0, time_unix_nano=1_700_000_000_000_000_000)
    sp.quantile_values.add(quantile=0.5, value=2.0)
    sp.attributes.extend(points[1])
    return req


def batches() -> list[tuple[str, str, bytes]]:
    return [
        ("traces", "traces_every_field", traces().SerializeToString()),
        ("logs", "logs_every_field", logs().SerializeToString()),
        ("metrics", "metrics_every_type", metrics().SerializeToString()),
    ]


class _Capture:
    def __init__(self) -> None:
        self.received: dict[str, list[bytes]] = {s: [] for s in SERVICES}
        self.event = threading.Event()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        handlers = []
        for signal, service in SERVICES.items():
            handlers.append(
                grpc.method_handlers_generic_handler(
                    service, {"Export": grpc.unary_unary_rpc_method_handler(self._handler(signal))}
                )
            )
        self.server.add_generic_rpc_handlers(tuple(handlers))
        self.port = self.server.add_insecure_port("127.0.0.1:0")

    def _handler(self, signal: str) -> Callable[[bytes, grpc.ServicerContext], bytes]:
        def handle(raw: bytes, _context: grpc.ServicerContext) -> bytes:
            self.received[signal].append(raw)
            self.event.set()
            return b""  # an empty Export*ServiceResponse

        return handle


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(receiver_port: int, capture_port: int) -> str:
    return f"""
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{receiver_port}
exporters:
  otlp_grpc/capture:
    endpoint: 127.0.0.1:{capture_port}
    tls: {{insecure: true}}
    compression: none
    sending_queue: {{enabled: false}}
    retry_on_failure: {{enabled: false}}
service:
  telemetry:
    metrics: {{level: none}}
  pipelines:
    traces: {{receivers: [otlp], exporters: [otlp_grpc/capture]}}
    logs: {{receivers: [otlp], exporters: [otlp_grpc/capture]}}
    metrics: {{receivers: [otlp], exporters: [otlp_grpc/capture]}}
"""


def capture(collector: str) -> list[dict[str, object]]:
    cap = _Capture()
    cap.server.start()
    receiver_port = _free_port()
    with tempfile.TemporaryDirectory(prefix="golden-capture-") as tmp:
        config = Path(tmp) / "config.yaml"
        config.write_text(_config(receiver_port, cap.port))
        proc = subprocess.Popen(
            [collector, "--config", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            channel = grpc.insecure_channel(f"127.0.0.1:{receiver_port}")
            grpc.channel_ready_future(channel).result(timeout=60)
            out: list[dict[str, object]] = []
            for signal, name, raw in batches():
                before = len(cap.received[signal])
                send = channel.unary_unary(
                    f"/{SERVICES[signal]}/Export", request_serializer=None, response_deserializer=None
                )
                send(raw, timeout=30, wait_for_ready=True)
                deadline = time.monotonic() + 30
                while len(cap.received[signal]) == before:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"the Collector did not forward the {signal} batch")
                    cap.event.wait(0.1)
                    cap.event.clear()
                encoded = b"".join(cap.received[signal][before:])
                if len(cap.received[signal]) - before != 1:
                    raise RuntimeError(f"the Collector split the {signal} batch")
                out.append(
                    {
                        "signal": signal,
                        "name": name,
                        "python_encoding_differs": encoded != raw,
                        "collector_bytes_b64": base64.b64encode(encoded).decode(),
                        "sensitive": SENSITIVE,
                    }
                )
            channel.close()
            return out
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            cap.server.stop(0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--collector", default=os.environ.get("OTELCOL_BIN", str(ROOT / "build" / "otelcol-llm"))
    )
    args = parser.parse_args()
    captured = capture(args.collector)
    OUT.write_text(json.dumps({"collector": Path(args.collector).name, "batches": captured}, indent=1) + "\n")
    print(f"wrote {OUT} ({len(captured)} batches)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
