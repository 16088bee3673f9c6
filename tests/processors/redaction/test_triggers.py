"""Each Hyperscan trigger must match inside every accepted match of its type's full regex (else PII could
slip by unseen)."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from processors.redaction.patterns import BUILTIN_TYPES, RAW_DIGIT_RUN, RAW_TRIGGER_OVERRIDES, TRIGGERS
from tests.processors.redaction import pii_strategies as ps

FULL = {t.name: t.compile() for t in BUILTIN_TYPES}
VALID = {t.name: t.validator for t in BUILTIN_TYPES}
TRIG = {name: re.compile(rx, re.IGNORECASE if caseless else 0) for name, (rx, caseless) in TRIGGERS.items()}
# what the raw-batch scan uses: per-type trigger (or its override) or the shared digit run
RAW = {
    name: re.compile(
        "(?:"
        + RAW_TRIGGER_OVERRIDES.get(name, TRIGGERS[name])[0]
        + ")"
        + ("|" + RAW_DIGIT_RUN[0] if name in RAW_TRIGGER_OVERRIDES else ""),
        re.IGNORECASE if TRIGGERS[name][1] else 0,
    )
    for name in TRIGGERS
}


def test_every_type_has_a_trigger() -> None:
    assert set(TRIGGERS) == set(FULL)


@settings(max_examples=600, deadline=None)
@given(
    text=st.one_of(
        ps.pii_values,
        ps.marked_secrets.map(lambda m: m[0]),
        ps.benign_texts,
        st.text(alphabet="0123456789 .-()+:abcdefABCDEF@xX", max_size=40),
    )
)
def test_trigger_is_a_superset_of_the_full_regex(text: str) -> None:
    for name, full in FULL.items():
        for m in full.finditer(text):
            if not VALID[name](m.group(0)):
                continue  # rejected anyway: the trigger need not see it
            assert TRIG[name].search(m.group(0)), f"{name}: trigger misses full match {m.group(0)!r}"
            assert RAW[name].search(m.group(0)), f"{name}: raw-scan trigger misses full match {m.group(0)!r}"


def test_a_card_at_the_start_of_a_string_whose_length_byte_is_a_hex_letter_is_found() -> None:
    # In the raw batch the byte before such a string is its length: 97..102 bytes read as "a".."f", a hex
    # letter, as if the digits were inside a hex token. The raw scan must still flag the span.
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from processors.config import SidecarConfig
    from processors.handlers import Pipeline
    from tests.processors.helpers import span, trace_request

    pipeline = Pipeline(SidecarConfig())
    for length in range(97, 103):
        text = ("4111111111111111 is my card" + " thanks" * 20)[:length]
        raw = trace_request(span("s", {"note": text})).SerializeToString()
        assert bytes([length]) + b"4111111111111111" in raw
        out = ExportTraceServiceRequest.FromString(pipeline.process_traces(raw).payload)
        assert "4111111111111111" not in str(out), length


def test_a_widest_match_bound_holds_for_every_bounded_builtin_type() -> None:
    # the scanner stops a regex search this far past a trigger hit (plus a lookahead margin): the bound must
    # be the regex's real maximum width
    from processors.config import SidecarConfig
    from processors.redaction.scanner import _LOOKAROUND, PiiScanner

    scanner = PiiScanner(SidecarConfig().redaction)
    for det in scanner.detectors:
        if det.width:
            assert det.reach <= det.width
            lookaheads = re.findall(r"\(\?[=!][^)]*\)", det.pattern.pattern)
            assert all(len(a) < _LOOKAROUND for a in lookaheads), det.name
