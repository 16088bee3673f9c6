"""Golden OTLP batches: input → expected output, for cost and redaction."""

from __future__ import annotations

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from processors.config import load_config
from processors.cost import enrich_costs
from processors.pii_scanner import PiiScanner
from processors.pricing import PriceBook
from processors.redaction import redact_logs, redact_traces
from tests.processors import golden


def test_cost_golden() -> None:
    config = load_config(str(golden.TESTDATA / "cost_config.yaml"))
    request = golden.load("cost_traces", ExportTraceServiceRequest())
    stats = enrich_costs(request, PriceBook(config.cost, config.price_overrides()))
    golden.check("cost_traces", request)
    assert stats.unpriced_by_model == {"totally-unknown-model-x": 1}
    assert stats.priced_spans == 8


def test_redaction_traces_golden() -> None:
    config = load_config(str(golden.TESTDATA / "redaction_config.yaml"))
    request = golden.load("redaction_traces", ExportTraceServiceRequest())
    stats = redact_traces(request, PiiScanner(config.redaction), config.redaction)
    golden.check("redaction_traces", request)
    assert stats.by_type["email"] == 3


def test_redaction_logs_golden() -> None:
    config = load_config(str(golden.TESTDATA / "redaction_config.yaml"))
    request = golden.load("redaction_logs", ExportLogsServiceRequest())
    redact_logs(request, PiiScanner(config.redaction), config.redaction)
    golden.check("redaction_logs", request)
