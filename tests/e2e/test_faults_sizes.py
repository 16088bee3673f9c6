"""No size wedge, through the real Collector: batches larger than the Collector's internal receiver accepts
are split by the sidecar, an item larger than it on its own is truncated with a marker, every span arrives
exactly once and the path keeps flowing afterwards (issue 9, item 1)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.e2e.faults_support import collector_with_sidecar, exported_by_id, post_traces
from tests.processors.helpers import span, trace_request
from tests.stack_support import attr, wait_for

pytestmark = pytest.mark.e2e


def _span(name: str, attributes: dict[str, object]) -> tuple[ExportTraceServiceRequest, str]:
    one = span(name, attributes, start_time_unix_nano=1, end_time_unix_nano=2)
    one.trace_id, one.span_id = os.urandom(16), os.urandom(8)
    return trace_request(one, resource={"service.name": "size-test"}), one.span_id.hex()


def test_four_5mb_requests_and_512_spans_of_16kb_are_exported_once_each(
    collector_bin: Path, tmp_path: Path
) -> None:
    with collector_with_sidecar(tmp_path) as loop:
        col = loop.collector
        big_ids: list[str] = []
        for i in range(4):  # four ~5 MB OTLP/HTTP requests, merged by the Collector into one ~20 MB batch
            req, span_id = _span(f"big-{i}", {"gen_ai.input.messages": f"req {i} " + "x" * 5_000_000})
            assert post_traces(col, req) == 200
            big_ids.append(span_id)
        many = trace_request(
            *(span(f"many-{i}", {"gen_ai.output.messages": "word " * 3300}, i=i) for i in range(512)),
            resource={"service.name": "size-test"},
        )
        many_ids = []
        for s in many.resource_spans[0].scope_spans[0].spans:
            s.trace_id, s.span_id = os.urandom(16), os.urandom(8)
            many_ids.append(s.span_id.hex())
        assert many.ByteSize() > 8 * 1024 * 1024  # 512 x 16 KB: over gRPC's 4 MiB default on its own
        assert post_traces(col, many) == 200
        probe, probe_id = _span("probe-after-the-big-ones", {"n": 1})
        assert post_traces(col, probe) == 200

        wanted = {*big_ids, *many_ids, probe_id}

        def all_there() -> dict[str, list[dict[str, object]]] | None:
            found = exported_by_id(col)
            return found if wanted <= found.keys() else None

        exported = wait_for(
            all_there,
            60,
            f"{len(wanted)} spans in traces.jsonl",
            interval=1.0,
        )
        duplicates = {k: len(v) for k, v in exported.items() if k in wanted and len(v) > 1}
        assert not duplicates
        for span_id in big_ids:
            text = str(attr(exported[span_id][0], "gen_ai.input.messages"))
            # whole if the internal receiver takes 5 MB, else truncated with the marker: never lost
            assert len(text) > 5_000_000 or "truncated by llm-otel-sidecar" in text
        for span_id in many_ids:
            assert len(str(attr(exported[span_id][0], "gen_ai.output.messages"))) == 5 * 3300
