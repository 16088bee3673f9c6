"""A short, bounded fuzz run of the handlers: random bytes and mutated valid batches never crash them.

Every input must end as either a processed batch or a Rejected (INVALID_ARGUMENT); nothing else may escape,
since anything else is answered with INTERNAL and the batch would be dropped by a fail-closed error path.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from processors.forwarding import Rejected
from processors.handlers import Pipeline
from tests.processors.helpers import logs_request, span, trace_request, value

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))

SEED_TRACES = trace_request(
    span(
        "chat",
        {
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.usage.input_tokens": 100,
            "gen_ai.usage.output_tokens": 20,
            "gen_ai.input.messages": '[{"role":"user","content":"hi bob@example.com 4111 1111 1111 1111"}]',
            "db.password": "x",
            "nested": {"a": ["10.0.0.1", 3, 2.5, True]},
        },
    ),
).SerializeToString()
SEED_LOGS = logs_request(
    LogRecord(body=value({"msg": "card 5500-0000-0000-0004", "list": ["a@b.example"]}), severity_text="INFO"),
).SerializeToString()


def _run(handler: object, raw: bytes) -> None:
    try:
        processed = handler(raw)  # type: ignore[operator]
    except Rejected:
        return
    assert isinstance(processed.payload, bytes)


def _mutate(seed: bytes, edits: list[tuple[int, int]]) -> bytes:
    data = bytearray(seed)
    for pos, byte in edits:
        data[pos % len(data)] = byte
    return bytes(data)


@FUZZ
@given(raw=st.binary(max_size=512))
def test_random_bytes(pipeline: Pipeline, raw: bytes) -> None:
    _run(pipeline.process_traces, raw)
    _run(pipeline.process_logs, raw)


@FUZZ
@given(edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=8))
def test_mutated_valid_batches(pipeline: Pipeline, edits: list[tuple[int, int]]) -> None:
    _run(pipeline.process_traces, _mutate(SEED_TRACES, edits))
    _run(pipeline.process_logs, _mutate(SEED_LOGS, edits))


@FUZZ
@given(text=st.text(max_size=300), number=st.integers(-(2**63), 2**63 - 1) | st.none())
def test_arbitrary_attribute_text_and_usage(pipeline: Pipeline, text: str, number: int | None) -> None:
    attrs: dict[str, object] = {
        "gen_ai.request.model": text,
        "gen_ai.input.messages": text,
        "k": [text, {"v": text}],
    }
    if number is not None:
        attrs["gen_ai.usage.input_tokens"] = number
        attrs["gen_ai.usage.cache_read.input_tokens"] = number // 2
    raw = trace_request(span(text[:50], attrs)).SerializeToString()
    out = pipeline.process_traces(raw)
    ExportTraceServiceRequest.FromString(out.payload)
    raw_logs = logs_request(LogRecord(body=value(text))).SerializeToString()
    ExportLogsServiceRequest.FromString(pipeline.process_logs(raw_logs).payload)
