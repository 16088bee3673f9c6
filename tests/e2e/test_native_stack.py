"""The native stack end to end: an OpenTelemetry SDK app → Collector (→ sidecar when present) →
file exports, spanmetrics and Prometheus with exemplars."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.otlp_client import SyntheticApp
from tests.stack_support import (
    NativeStack,
    attr,
    exported_log_records,
    exported_spans,
    prom_exemplars,
    prom_query,
    wait_for,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def synthetic_traffic(native_stack: NativeStack) -> Iterator[SyntheticApp]:
    app = SyntheticApp(endpoint=native_stack.otlp_grpc)
    for i in range(30):
        app.request(i)
    app.flush()
    yield app
    app.shutdown()


def test_traces_arrive_in_the_export_file(native_stack: NativeStack, synthetic_traffic: SyntheticApp) -> None:
    wanted = synthetic_traffic.span_ids

    def seen() -> set[str]:
        return wanted & {s["spanId"] for s in exported_spans(native_stack.traces_file)}

    got = wait_for(
        lambda: seen() if seen() == wanted else None, 30, f"{len(wanted)} span ids in traces.jsonl"
    )
    assert got == wanted


def test_logs_arrive_with_their_trace_ids(native_stack: NativeStack, synthetic_traffic: SyntheticApp) -> None:
    def mine() -> list[dict[str, object]]:
        recs = [
            r
            for r in exported_log_records(native_stack.logs_file)
            if r.get("body", {}).get("stringValue") in synthetic_traffic.log_bodies
        ]
        return recs if len(recs) == len(synthetic_traffic.log_bodies) else []

    records = wait_for(mine, 30, "every synthetic log record in logs.jsonl")
    assert {r["traceId"] for r in records} <= synthetic_traffic.trace_ids
    assert all(r.get("spanId") for r in records)


def test_prometheus_scrapes_the_apps_metrics(
    native_stack: NativeStack, synthetic_traffic: SyntheticApp
) -> None:
    result = wait_for(
        lambda: prom_query(native_stack.prometheus, 'sum(e2e_requests_total{job="e2e-synthetic"})'),
        60,
        "e2e_requests_total in Prometheus",
    )
    assert float(result[0]["value"][1]) == 30


@pytest.fixture()
def trickle(native_stack: NativeStack) -> Iterator[SyntheticApp]:
    """A second app that keeps sending while a test waits, as a live service does: exemplars only
    exist for the export interval in which their measurement was made."""
    app = SyntheticApp(endpoint=native_stack.otlp_grpc, service_name=f"e2e-trickle-{uuid.uuid4().hex[:8]}")
    yield app
    app.shutdown()


def _exemplars_while_sending(stack: NativeStack, app: SyntheticApp, query: str) -> list[dict[str, object]]:
    counter = iter(range(10_000))

    def poll() -> list[dict[str, object]]:
        app.request(next(counter))
        app.flush()
        return list(prom_exemplars(stack.prometheus, query))

    return wait_for(poll, 60, f"exemplars for {query}", interval=1.0)


@pytest.mark.parametrize(
    "query",
    [
        # the application's own histogram, exported by the SDK with trace-based exemplars
        'e2e_request_duration_seconds_bucket{{job="{service}"}}',
        # the Collector's spanmetrics connector, exemplars on
        'traces_span_metrics_duration_seconds_bucket{{service_name="{service}"}}',
    ],
    ids=["sdk-histogram", "spanmetrics"],
)
def test_exemplars_link_to_exported_traces(
    native_stack: NativeStack, trickle: SyntheticApp, query: str
) -> None:
    exemplars = _exemplars_while_sending(native_stack, trickle, query.format(service=trickle.service_name))
    trace_ids = {str(ex["labels"]["trace_id"]) for ex in exemplars}  # type: ignore[index]
    assert trace_ids <= trickle.trace_ids

    def linked() -> set[str]:
        return trace_ids & {s["traceId"] for s in exported_spans(native_stack.traces_file)}

    assert wait_for(linked, 30, "an exemplar's trace in traces.jsonl")


def test_spanmetrics_count_every_call(native_stack: NativeStack, synthetic_traffic: SyntheticApp) -> None:
    query = 'sum(traces_span_metrics_calls_total{service_name="e2e-synthetic"})'
    result = wait_for(
        lambda: [r for r in prom_query(native_stack.prometheus, query) if float(r["value"][1]) == 30],
        60,
        "30 calls in traces_span_metrics_calls_total",
    )
    assert result


def test_gateway_call_is_priced_and_redacted_on_its_way_to_the_backends(native_stack: NativeStack) -> None:
    """The whole product path: openai client → gateway → OTLP → Collector → sidecar → file export."""
    import openai

    if "app" not in native_stack.info["services"] or native_stack.info["sidecar"] != "enabled":
        pytest.fail(f"this stack runs {native_stack.info['services']}; the gateway and sidecar are required")
    keys = native_stack.gateway_keys()
    client = openai.OpenAI(
        base_url=native_stack.info["urls"]["gateway"] + "/v1", api_key=keys[0], max_retries=5
    )
    secret_email = f"jane.{uuid.uuid4().hex[:8]}@example.org"
    reply = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": f"Summarise the mail from {secret_email}"}]
    )

    def genai_span() -> dict[str, Any] | None:
        for span in exported_spans(native_stack.traces_file):
            if attr(span, "gen_ai.response.id") == reply.id:
                return dict(span)
        return None

    span = wait_for(genai_span, 30, f"the GenAI span of response {reply.id}")
    assert secret_email not in native_stack.traces_file.read_text()
    assert secret_email not in native_stack.logs_file.read_text()
    assert "<EMAIL>" in str(attr(span, "gen_ai.input.messages"))
    assert attr(span, "gen_ai.cost.status") == "priced"
    assert float(attr(span, "gen_ai.usage.cost")) > 0
    assert "email" in attr(span, "pii.redacted.types")


def test_no_pii_the_load_generator_sends_reaches_the_export_files(native_stack: NativeStack) -> None:
    """Every kind of PII the demo's load generator puts in prompts, through the whole product path, streamed
    and not: none of it may be in the trace or log files (the span and the request log both carry it)."""
    import random

    import openai

    from app.loadgen.prompts import PII_KINDS, fake_pii

    if "app" not in native_stack.info["services"] or native_stack.info["sidecar"] != "enabled":
        pytest.fail(f"this stack runs {native_stack.info['services']}; the gateway and sidecar are required")
    client = openai.OpenAI(
        base_url=native_stack.info["urls"]["gateway"] + "/v1",
        api_key=native_stack.gateway_keys()[0],
        max_retries=5,
    )
    rng = random.Random(20261121)
    sent: list[str] = []
    ids: list[str] = []
    for i in range(8):
        values = [fake_pii(kind, rng) for kind in PII_KINDS]
        sent += values
        content = "Please check these: " + "; ".join(
            f"{k} {v}" for k, v in zip(PII_KINDS, values, strict=True)
        )
        messages: list[Any] = [{"role": "user", "content": content}]
        if i % 2:
            try:
                stream = client.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True)
                chunks = iter(stream)
                ids.append(next(chunks).id)
                for _ in chunks:
                    pass
            except openai.APIError:
                pass  # a mid-stream disconnect injected by the simulated provider; the PII was sent
        else:
            ids.append(client.chat.completions.create(model="gpt-4o-mini", messages=messages).id)

    def all_exported() -> bool:
        found = {attr(s, "gen_ai.response.id") for s in exported_spans(native_stack.traces_file)}
        return all(i in found for i in ids)

    wait_for(all_exported, 30, f"the GenAI spans of {len(ids)} responses")
    exported = native_stack.traces_file.read_text() + native_stack.logs_file.read_text()
    leaked = [v for v in sent if v in exported]
    assert not leaked, f"PII in the export files: {leaked}"
