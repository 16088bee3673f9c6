"""PII accuracy in process and through the real Collector, side by side.

The labelled corpus of bench/sidecar/pii_corpus.py (the one bench_sidecar.py scores in process) is sent as
OTLP/gRPC to the native stack's Collector (compose/native/stack.py on free ports, without the gateway):
every sample as a span name, a span attribute, a span-event attribute and a log body. The export files
(run/export/traces.jsonl, logs.jsonl) are read back and every placement is scored by the same function as
the in-process scanner (bench/sidecar/accuracy.py `score`): recall per type, benign strings altered, and
records that never came back. Writes bench/results/accuracy.md.

Run: .venv/bin/python bench/bench_accuracy.py [--quick]    (OTELCOL_BIN overrides build/otelcol-llm)
Everything listens on 127.0.0.1; the stack started here is stopped here.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest  # noqa: E402
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import LogsServiceStub  # noqa: E402
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest  # noqa: E402
from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import TraceServiceStub  # noqa: E402
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue  # noqa: E402
from opentelemetry.proto.logs.v1.logs_pb2 import (  # noqa: E402
    LogRecord,
    ResourceLogs,
    ScopeLogs,
    SeverityNumber,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource  # noqa: E402
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span  # noqa: E402
from sidecar.accuracy import Accuracy, evaluate, score, sidecar_redactor  # noqa: E402
from sidecar.pii_corpus import KINDS, Sample, build_corpus  # noqa: E402

from tests.stack_support import (  # noqa: E402
    NativeStack,
    exported_log_records,
    exported_spans,
    stack_env,
)

TEXT_KEY = "accuracy.text"  # a neutral key: neither secret-named nor allow-listed
PLACEMENTS = ["span attribute", "event attribute", "span name", "log body"]
BATCH = 200
RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED}


def _kv(key: str, text: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=text))


def _resource() -> Resource:
    return Resource(attributes=[_kv("service.name", "accuracy-bench")])


def _batches(n: int) -> Iterator[range]:
    for start in range(0, n, BATCH):
        yield range(start, min(n, start + BATCH))


def span_id(i: int) -> bytes:
    """Sample i travels as span i+1 (ids are never redacted), its log record carries the same span id."""
    return (i + 1).to_bytes(8, "big")


def trace_requests(corpus: list[Sample], trace_prefix: bytes) -> Iterator[ExportTraceServiceRequest]:
    now = time.time_ns()
    for b, idx in enumerate(_batches(len(corpus))):
        trace_id = trace_prefix + b.to_bytes(4, "big")
        spans = [
            Span(
                trace_id=trace_id,
                span_id=span_id(i),
                name=corpus[i].text,
                kind=Span.SPAN_KIND_INTERNAL,
                start_time_unix_nano=now,
                end_time_unix_nano=now + 1_000_000,
                attributes=[_kv(TEXT_KEY, corpus[i].text)],
                events=[
                    Span.Event(
                        name="accuracy", time_unix_nano=now, attributes=[_kv(TEXT_KEY, corpus[i].text)]
                    )
                ],
            )
            for i in idx
        ]
        scope = ScopeSpans(scope=InstrumentationScope(name="accuracy-bench"), spans=spans)
        yield ExportTraceServiceRequest(
            resource_spans=[ResourceSpans(resource=_resource(), scope_spans=[scope])]
        )


def log_requests(corpus: list[Sample], trace_prefix: bytes) -> Iterator[ExportLogsServiceRequest]:
    now = time.time_ns()
    for b, idx in enumerate(_batches(len(corpus))):
        trace_id = trace_prefix + b.to_bytes(4, "big")
        records = [
            LogRecord(
                time_unix_nano=now,
                observed_time_unix_nano=now,
                severity_text="INFO",
                severity_number=SeverityNumber.SEVERITY_NUMBER_INFO,
                body=AnyValue(string_value=corpus[i].text),
                trace_id=trace_id,
                span_id=span_id(i),
            )
            for i in idx
        ]
        scope = ScopeLogs(scope=InstrumentationScope(name="accuracy-bench"), log_records=records)
        yield ExportLogsServiceRequest(resource_logs=[ResourceLogs(resource=_resource(), scope_logs=[scope])])


def export(call: Callable[..., Any], request: Any) -> None:
    """One Export, retried while the Collector pushes back (it acknowledges only what it accepted)."""
    for attempt in range(30):
        try:
            call(request, timeout=30)
            return
        except grpc.RpcError as exc:
            if exc.code() not in RETRYABLE or attempt == 29:
                raise
            time.sleep(min(2.0, 0.1 * 2**attempt))


def _sample_index(record: dict[str, Any], trace_hex: str) -> int | None:
    if not str(record.get("traceId", "")).lower().startswith(trace_hex):
        return None
    return int(str(record["spanId"]), 16) - 1


def _text(value: dict[str, Any] | None) -> str | None:
    return None if value is None else value.get("stringValue")


def _attr(attributes: list[dict[str, Any]], key: str) -> str | None:
    for kv in attributes:
        if kv.get("key") == key:
            return _text(kv.get("value"))
    return None


def read_back(
    stack: NativeStack, n: int, trace_hex: str, timeout: float
) -> tuple[dict[str, list[str | None]], float]:
    """What the export files hold for every sample, per placement (None where it never arrived)."""
    out: dict[str, list[str | None]] = {p: [None] * n for p in PLACEMENTS}
    t0 = time.monotonic()
    while True:
        spans = logs = 0
        for span in exported_spans(stack.traces_file):
            i = _sample_index(span, trace_hex)
            if i is None or not 0 <= i < n:
                continue
            spans += 1
            out["span name"][i] = span.get("name")
            out["span attribute"][i] = _attr(span.get("attributes", []), TEXT_KEY)
            events = span.get("events", [])
            out["event attribute"][i] = _attr(events[0].get("attributes", []), TEXT_KEY) if events else None
        for record in exported_log_records(stack.logs_file):
            i = _sample_index(record, trace_hex)
            if i is None or not 0 <= i < n:
                continue
            logs += 1
            out["log body"][i] = _text(record.get("body"))
        waited = time.monotonic() - t0
        if (spans >= n and logs >= n) or waited > timeout:
            return out, waited
        time.sleep(1.0)


def through_collector(corpus: list[Sample], timeout: float) -> tuple[dict[str, Accuracy], float, float]:
    with tempfile.TemporaryDirectory(prefix="bench-accuracy-") as tmp:
        run_dir = Path(tmp)
        stack = NativeStack(run_dir, stack_env(run_dir, STACK_APP="0", STACK_NODE_EXPORTER="0"))
        print("starting the native stack (Collector + sidecar) ...", flush=True)
        stack.up()
        try:
            endpoint = stack.otlp_grpc.split("://", 1)[-1]
            prefix = secrets.token_bytes(12)
            t0 = time.perf_counter()
            with grpc.insecure_channel(endpoint) as channel:
                traces = TraceServiceStub(channel)  # type: ignore[no-untyped-call]
                logs = LogsServiceStub(channel)  # type: ignore[no-untyped-call]
                for treq in trace_requests(corpus, prefix):
                    export(traces.Export, treq)
                for lreq in log_requests(corpus, prefix):
                    export(logs.Export, lreq)
            sent = time.perf_counter() - t0
            print(
                f"sent {len(corpus)} samples x {len(PLACEMENTS)} placements in {sent:.1f} s; reading back ..."
            )
            outputs, waited = read_back(stack, len(corpus), prefix.hex(), timeout)
        finally:
            stack.down()
    return {p: score(p, corpus, outputs[p], seconds=sent + waited) for p in PLACEMENTS}, sent, waited


def pct(x: float | None, digits: int = 1) -> str:
    return "n/a" if x is None else f"{x * 100:.{digits}f}%"


def side_by_side(ours: Accuracy, via: dict[str, Accuracy]) -> list[str]:
    cols = [via[p] for p in PLACEMENTS]
    head = "| type | in process | through the Collector (lowest) | " + " | ".join(PLACEMENTS) + " | samples |"
    lines = [head, "|---|---:|---:|" + "---:|" * len(PLACEMENTS) + "---:|"]

    def row(
        label: str, mine: float | None, theirs: list[float | None], n: int, worst: Callable[..., Any]
    ) -> str:
        known = [t for t in theirs if t is not None]
        low = worst(known) if known else None
        digits = 2 if label.startswith(("**", "benign")) else 1
        cells = " | ".join(pct(t, digits) for t in theirs)
        return f"| {label} | {pct(mine, digits)} | {pct(low, digits)} | {cells} | {n} |"

    for kind in KINDS:
        lines.append(
            row(kind, ours.recall(kind), [c.recall(kind) for c in cols], ours.total.get(kind, 0), min)
        )
    lines.append(
        row(
            "**overall, all types**",
            ours.overall(),
            [c.overall() for c in cols],
            sum(ours.total.values()),
            min,
        )
    )
    lines.append(
        row(
            "benign strings altered",
            ours.altered_rate(),
            [c.altered_rate() for c in cols],
            ours.benign_total,
            max,
        )
    )
    lost = " | ".join(str(c.lost) for c in cols)
    n = sum(ours.total.values()) + ours.benign_total
    lines.append(
        f"| records that never came back | {ours.lost} | {max(c.lost for c in cols)} | {lost} | {n} |"
    )
    return lines


def disagreements(
    corpus: list[Sample], ours: Accuracy, via: dict[str, Accuracy], limit: int = 8
) -> list[str]:
    """Samples one mode got right and the other did not, per placement."""
    lines: list[str] = []
    for p in PLACEMENTS:
        for key, examples in sorted(via[p].missed_examples.items()):
            mine = set(ours.missed_examples.get(key, []))
            extra = [e for e in examples if e not in mine]
            if extra:
                lines.append(
                    f"- {p}, {key}: {len(extra)} more than in process, e.g. "
                    + "; ".join(repr(e[:160]) for e in extra[:limit])
                )
        for key, examples in sorted(ours.missed_examples.items()):
            theirs = set(via[p].missed_examples.get(key, []))
            fewer = [e for e in examples if e not in theirs]
            if fewer:
                lines.append(
                    f"- {p}, {key}: {len(fewer)} fewer than in process, e.g. "
                    + "; ".join(repr(e[:160]) for e in fewer[:limit])
                )
    return lines or ["- none: every placement through the Collector scored sample for sample as in process"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a small corpus (60 per type, 600 hard negatives)")
    ap.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for the export files")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "accuracy.md"))
    args = ap.parse_args()
    per_kind, negatives = (60, 600) if args.quick else (300, 3000)
    print(f"PII accuracy corpus ({per_kind} per type, {negatives} hard negatives) ...", flush=True)
    corpus = build_corpus(per_kind, negatives)
    ours = evaluate("in process", sidecar_redactor(), corpus)
    via, sent, waited = through_collector(corpus, args.timeout)
    lines = [
        "# PII accuracy: in process and through the real Collector",
        "",
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {'quick' if args.quick else 'full'}, "
        f"{os.cpu_count()} cores (shared machine). Corpus: bench/sidecar/pii_corpus.py, {per_kind} samples "
        f"per type from Faker in 22 locales and synthetic secrets, {negatives} hard negatives ({len(corpus)} "
        "samples; the same corpus as the in-process table of sidecar.md).",
        "",
        "*In process*: the sidecar's scanner (`PiiScanner`, default `RedactionConfig`) called on each text. "
        "*Through the Collector*: every sample sent as OTLP/gRPC to the native stack "
        "(compose/native/stack.py: the ocb Collector with otel-collector/config.yaml, the sidecar as the "
        f"stack runs it), as a span name, a span attribute (`{TEXT_KEY}`), a span-event attribute and a log "
        "body, read back from run/export/traces.jsonl and logs.jsonl. Both modes are scored by one function "
        "(bench/sidecar/accuracy.py `score`): a type's value counts as found when it is gone from the text; "
        "a benign string counts as altered when it differs at all; a record that never came back counts as "
        "lost, a miss and an alteration. The lowest column is the worst placement per row (the highest for "
        "altered).",
        "",
        f"Sent in {sent:.1f} s, all read back {waited:.1f} s later.",
        "",
        *side_by_side(ours, via),
        "",
        "## Where the two modes disagree",
        "",
        *disagreements(corpus, ours, via),
        "",
    ]
    report = "\n".join(lines)
    print(report)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
