"""Per-item repair through the real Collector: a span with invalid UTF-8 and one nested deeper than Python's
protobuf parses (both accepted by the Collector) no longer cost their batch: they are repaired, the innocent
spans beside them are exported as they were, PII in all of them is redacted (issue 9, item 2). And a batch
that fails to process on every attempt is quarantined after server.max_attempts_per_batch attempts, so the
spans behind it in the Collector's queue flow (item 3)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from processors.config import ServerConfig, SidecarConfig
from processors.config_loader import build
from processors.handlers import Parts, Pipeline
from processors.wire.index import encode_varint
from tests.e2e.faults_support import collector_with_sidecar, exported_by_id, post_raw, post_traces
from tests.processors.helpers import span, trace_request
from tests.stack_support import attr, wait_for

pytestmark = pytest.mark.e2e


def _field(number: int, content: bytes) -> bytes:
    return encode_varint(number << 3 | 2) + encode_varint(len(content)) + content


def _attr(key: bytes, raw_value: bytes) -> bytes:
    return _field(9, _field(1, key) + _field(2, raw_value))


def _deep(levels: int) -> bytes:
    raw = _field(1, b"leaf bob@example.com")
    for _ in range(levels):
        raw = _field(6, _field(1, _field(1, b"k") + _field(2, raw)))
    return raw


def poison_request() -> tuple[bytes, dict[str, str]]:
    """One request, three spans: invalid UTF-8, 60 levels of kvlist, and an innocent one with PII."""
    ids: dict[str, str] = {}
    spans = []
    for name, extra in (
        ("bad-utf8", _attr(b"note", _field(1, b"mail jane@example.org caf\xe9 \xff"))),
        ("deep", _attr(b"nested", _deep(60))),
        ("innocent", _attr(b"msg", _field(1, b"call +1 415 555 2671"))),
    ):
        sp = span(name, {}, start_time_unix_nano=1, end_time_unix_nano=2)
        sp.trace_id, sp.span_id = os.urandom(16), os.urandom(8)
        ids[name] = sp.span_id.hex()
        spans.append(sp.SerializeToString() + extra)
    resource = _field(1, _field(1, _field(1, b"service.name") + _field(2, _field(1, b"poison-test"))))
    scope = b"".join(_field(2, s) for s in spans)
    return _field(1, resource + _field(2, scope)), ids


def test_invalid_utf8_and_deep_nesting_cost_nothing_but_their_own_field(
    collector_bin: Path, tmp_path: Path
) -> None:
    raw, ids = poison_request()
    with collector_with_sidecar(tmp_path) as loop:
        assert post_raw(loop.collector, raw) == 200

        def all_there() -> dict[str, list[dict[str, object]]] | None:
            found = exported_by_id(loop.collector)
            return found if set(ids.values()) <= found.keys() else None

        exported = wait_for(all_there, 30, "the three spans in traces.jsonl", interval=0.5)
        text = loop.collector.traces_file.read_text()
    assert all(len(exported[i]) == 1 for i in ids.values())
    assert attr(exported[ids["bad-utf8"]][0], "note") == "mail <EMAIL> caf\ufffd \ufffd"
    assert "cut by llm-otel-sidecar" in str(attr(exported[ids["deep"]][0], "nested"))
    assert attr(exported[ids["innocent"]][0], "msg") == "call <PHONE>"
    assert "jane@example.org" not in text and "bob@example.com" not in text


class PoisonedPipeline(Pipeline):
    """The real pipeline, except that any batch holding ``MARKER`` fails to process, every time (a bug that
    only this batch triggers)."""

    MARKER = b"poison-that-breaks-processing"

    def __init__(self, config: SidecarConfig) -> None:
        super().__init__(config)
        self.poisoned_attempts = 0

    def trace_parts(self, raw: bytes) -> Parts:
        if self.MARKER in raw:
            self.poisoned_attempts += 1
            raise RuntimeError("processing bug")
        return super().trace_parts(raw)


def test_a_batch_that_always_fails_is_quarantined_and_the_queue_moves_on(
    collector_bin: Path, tmp_path: Path
) -> None:
    dead_letter = tmp_path / "dead-letter"
    config = SidecarConfig(
        server=build(
            ServerConfig, {"max_attempts_per_batch": 3, "dead_letter_dir": str(dead_letter)}, "server"
        )
    )
    pipeline = PoisonedPipeline(config)
    with collector_with_sidecar(tmp_path / "col", config, pipeline) as loop:
        col = loop.collector
        poison = span("poison", {"note": PoisonedPipeline.MARKER.decode()})
        poison.trace_id, poison.span_id = os.urandom(16), os.urandom(8)
        assert post_traces(col, trace_request(poison)) == 200
        wait_for(lambda: pipeline.poisoned_attempts, 15, "the poison batch at the sidecar")
        innocent_ids = []
        for i in range(8):  # sent after it: behind it in the Collector's queue
            one = span(f"innocent-{i}", {"i": i})
            one.trace_id, one.span_id = os.urandom(16), os.urandom(8)
            innocent_ids.append(one.span_id.hex())
            assert post_traces(col, trace_request(one)) == 200
        t0 = time.monotonic()
        wait_for(
            lambda: set(innocent_ids) <= exported_by_id(col).keys(), 30, "the innocent spans", interval=0.5
        )
        flowed_after = time.monotonic() - t0
        wait_for(lambda: list(dead_letter.glob("traces-processing_failed-*.pb")), 30, "the dead-letter file")
        time.sleep(2)  # a retry of the poison after its quarantine would show here
        attempts = pipeline.poisoned_attempts
    assert attempts == 3  # bounded: exactly max_attempts_per_batch, then never again
    assert poison.span_id.hex() not in exported_by_id(col)  # never forwarded unprocessed
    (kept,) = dead_letter.glob("traces-processing_failed-*.pb")
    kept_spans = (
        ExportTraceServiceRequest.FromString(kept.read_bytes()).resource_spans[0].scope_spans[0].spans
    )
    assert poison.span_id in {s.span_id for s in kept_spans}
    assert flowed_after < 30
