"""Golden OTLP batches for the cost processor: input → expected output."""

from __future__ import annotations

from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from processors.config import load_config
from processors.cost.enrichment import enrich_costs
from processors.cost.prices import PriceBook
from tests.processors import golden

TESTDATA = Path(__file__).parent / "testdata"


def test_cost_golden() -> None:
    config = load_config(str(TESTDATA / "cost_config.yaml"))
    request = golden.load(TESTDATA, "cost_traces", ExportTraceServiceRequest())
    stats = enrich_costs(request, PriceBook(config.cost, config.price_overrides()))
    golden.check(TESTDATA, "cost_traces", request)
    assert stats.unpriced_by_model == {"totally-unknown-model-x": 1}
    assert stats.priced_spans == 9  # incl. the span with an app-reported cost, repriced
