"""Golden OTLP batches for the redaction processor: input → expected output."""

from __future__ import annotations

from pathlib import Path

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from processors.config import load_config
from processors.redaction.scanner import PiiScanner
from processors.redaction.walk import redact_logs, redact_traces
from tests.processors import golden

TESTDATA = Path(__file__).parent / "testdata"


def test_redaction_traces_golden() -> None:
    config = load_config(str(TESTDATA / "redaction_config.yaml"))
    request = golden.load(TESTDATA, "redaction_traces", ExportTraceServiceRequest())
    stats = redact_traces(request, PiiScanner(config.redaction), config.redaction)
    golden.check(TESTDATA, "redaction_traces", request)
    assert stats.by_type["email"] == 3


def test_redaction_logs_golden() -> None:
    config = load_config(str(TESTDATA / "redaction_config.yaml"))
    request = golden.load(TESTDATA, "redaction_logs", ExportLogsServiceRequest())
    redact_logs(request, PiiScanner(config.redaction), config.redaction)
    golden.check(TESTDATA, "redaction_logs", request)
