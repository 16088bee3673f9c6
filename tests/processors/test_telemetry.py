"""Self-telemetry through a real server: counters, forward latency, cost with a trace-id exemplar."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from opentelemetry.sdk.metrics import MeterProvider, TraceBasedExemplarFilter
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from processors import telemetry as names
from processors.config import SidecarConfig
from processors.telemetry import Telemetry
from tests.processors.helpers import Client, Sink, running_sidecar, span, trace_request


def _points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    out: dict[str, list[Any]] = {}
    assert data is not None
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                out.setdefault(metric.name, []).extend(metric.data.data_points)
    return out


def test_metrics_and_cost_exemplar(sink: Sink) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], exemplar_filter=TraceBasedExemplarFilter())
    trace_id = bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736")
    priced = span(
        "chat",
        {
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.usage.input_tokens": 1_000_000,
            "gen_ai.usage.output_tokens": 0,
            "note": "mail bob@example.com",
        },
    )
    priced.trace_id = trace_id
    unpriced = span("chat", {"gen_ai.request.model": "no-such-model", "gen_ai.usage.input_tokens": 3}, i=2)
    with running_sidecar(SidecarConfig(), sink.port, Telemetry(provider)) as sidecar:
        client = Client(sidecar.port)
        client.traces(trace_request(priced, unpriced))
        sink.stop()
        with pytest.raises(grpc.RpcError):  # downstream gone: counted as an "unavailable" forward error
            client.traces(trace_request(span("x", {})))
        client.close()
    points = _points(reader)
    assert sum(p.value for p in points[names.ITEMS_RECEIVED]) == 3
    assert sum(p.value for p in points[names.ITEMS_FORWARDED]) == 2
    errors = {p.attributes["kind"]: p.value for p in points[names.FORWARD_ERRORS]}
    assert errors == {"unavailable": 1}
    assert sum(p.count for p in points[names.FORWARD_DURATION]) == 2
    redactions = {p.attributes["pii.type"]: p.value for p in points[names.REDACTIONS]}
    assert redactions == {"email": 1}
    (cost,) = points[names.GENAI_COST]
    assert abs(cost.value - 0.15) < 1e-9
    assert cost.attributes == {"gen_ai.provider.name": "openai", "gen_ai.response.model": "gpt-4o-mini"}
    assert [e.trace_id for e in cost.exemplars] == [int.from_bytes(trace_id, "big")]
    (unpriced_point,) = points[names.GENAI_UNPRICED]
    assert (
        unpriced_point.attributes == {"gen_ai.response.model": "no-such-model", "reason": "unknown_model"}
        and unpriced_point.value == 1
    )
    tokens = {p.attributes["gen_ai.token.type"]: p.value for p in points[names.GENAI_TOKENS]}
    assert tokens == {"input": 1_000_000, "output": 0}
    (last,) = points[names.LAST_FORWARD]
    assert last.value > 1_700_000_000
    provider.shutdown()
