"""LLM-aware tail sampling (config.tail-sampling.yaml, COLLECTOR_TAIL_SAMPLING=1) through the real sidecar.

Traces of five kinds go in: errors, expensive GenAI calls (priced by the sidecar), traces with PII (redacted
by the sidecar), slow traces, and plain ones (HTTP spans and cheap GenAI calls). Stored (traces.jsonl): every
error, expensive, redacted and slow trace, and about TAIL_SAMPLING_PERCENT of the plain ones. Counted
(spanmetrics, from the Collector's prometheus exporter): every span, sampled or not.
"""

from __future__ import annotations

import os
import time
import urllib.request
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from tests.e2e.fault_load import SidecarProcess
from tests.stack_support import CollectorProcess, attr, exported_spans, wait_for

pytestmark = pytest.mark.e2e

SERVICE = "tail-sampling-e2e"
PERCENT = 25
KINDS_KEPT = ("error", "expensive", "redacted", "slow")
N_EACH, N_PLAIN = 15, 400


def _kv(key: str, value: str | int) -> KeyValue:
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def _genai(model: str, tokens_in: int, tokens_out: int) -> list[KeyValue]:
    return [
        _kv("gen_ai.operation.name", "chat"),
        _kv("gen_ai.provider.name", "openai"),
        _kv("gen_ai.request.model", model),
        _kv("gen_ai.response.model", model),
        _kv("gen_ai.usage.input_tokens", tokens_in),
        _kv("gen_ai.usage.output_tokens", tokens_out),
    ]


def _span(kind: str, i: int) -> Span:
    now = time.time_ns()
    span = Span(
        trace_id=os.urandom(16),
        span_id=os.urandom(8),
        name=f"{kind} {i}",
        kind=Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=now - 20_000_000,
        end_time_unix_nano=now,
        attributes=[_kv("test.kind", kind)],
    )
    if kind == "error":
        span.status.CopyFrom(Status(code=Status.STATUS_CODE_ERROR, message="upstream failed"))
    elif kind == "expensive":
        span.attributes.extend(_genai("gpt-4o", 200_000, 50_000))  # about 1 USD
    elif kind == "redacted":
        span.attributes.append(_kv("app.note", f"call back jane.doe{i}@example.com"))
    elif kind == "slow":
        span.start_time_unix_nano = now - 6_000_000_000  # 6 s, over the 5000 ms threshold
    elif i % 4 == 0:
        span.attributes.extend(_genai("gpt-4o-mini", 12, 3))  # plain but priced: far below the threshold
    return span


def _send(col: CollectorProcess, spans: list[Span]) -> None:
    req = trace_service_pb2.ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(attributes=[_kv("service.name", SERVICE)]),
                scope_spans=[ScopeSpans(spans=spans)],
            )
        ]
    )
    with grpc.insecure_channel(f"127.0.0.1:{col.ports['otlp_grpc']}") as channel:
        trace_service_pb2_grpc.TraceServiceStub(channel).Export(req, timeout=30)  # type: ignore[no-untyped-call]


def _span_metric_calls(col: CollectorProcess) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{col.ports['prom_exporter']}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("traces_span_metrics_calls_total{") and f'service_name="{SERVICE}"' in line
    )


def test_tail_sampling_keeps_what_matters_and_counts_everything(collector_bin: Path, tmp_path: Path) -> None:
    collector = CollectorProcess(
        tmp_path / "collector",
        {
            "COLLECTOR_TAIL_SAMPLING": "1",
            "TAIL_SAMPLING_DECISION_WAIT": "2s",
            "TAIL_SAMPLING_PERCENT": str(PERCENT),
        },
    )
    sidecar = SidecarProcess(tmp_path / "sidecar", forward=f"127.0.0.1:{collector.ports['internal_otlp']}")
    collector.extra_env["SIDECAR_ENDPOINT"] = sidecar.endpoint
    sidecar.start()
    collector.start()
    try:
        sent: dict[str, set[str]] = {kind: set() for kind in (*KINDS_KEPT, "plain")}
        batch: list[Span] = []
        for kind, n in [*((k, N_EACH) for k in KINDS_KEPT), ("plain", N_PLAIN)]:
            for i in range(n):
                span = _span(kind, i)
                sent[kind].add(span.trace_id.hex())
                batch.append(span)
        for start in range(0, len(batch), 50):
            _send(collector, batch[start : start + 50])
        total = len(batch)

        def stored() -> dict[str, set[str]]:
            out: dict[str, set[str]] = {kind: set() for kind in sent}
            for s in exported_spans(collector.traces_file):
                kind = attr(s, "test.kind")
                if kind in out:
                    out[kind].add(s["traceId"])
            return out

        wait_for(
            lambda: all(stored()[k] == sent[k] for k in KINDS_KEPT),
            60,
            "every error, expensive, redacted and slow trace stored",
            interval=0.5,
        )
        wait_for(lambda: _span_metric_calls(collector) >= total, 30, "spanmetrics to count every span", 0.5)
        time.sleep(4)  # two decision waits more: every plain trace has been decided
        kept = stored()
        plain_kept = len(kept["plain"])
        # binomial(400, 0.25): mean 100, sd 8.7 -> outside [55, 145] has probability ~1e-7
        assert 55 <= plain_kept <= 145, f"kept {plain_kept} of {N_PLAIN} plain traces at {PERCENT}%"
        assert kept["plain"] <= sent["plain"]
        assert _span_metric_calls(collector) == total, "spanmetrics must count sampled-out spans too"
        expensive = [s for s in exported_spans(collector.traces_file) if attr(s, "test.kind") == "expensive"]
        assert all((attr(s, "gen_ai.usage.cost") or 0) >= 0.01 for s in expensive)
        redacted = [s for s in exported_spans(collector.traces_file) if attr(s, "test.kind") == "redacted"]
        assert all((attr(s, "pii.redacted.count") or 0) >= 1 for s in redacted)
        stored_total = sum(len(v) for v in kept.values())
        print(f"\ntail sampling: sent {total} traces, stored {stored_total}; plain {plain_kept}")
    finally:
        collector.stop()
        sidecar.stop()
