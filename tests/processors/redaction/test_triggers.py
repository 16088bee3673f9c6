"""Each Hyperscan trigger must match inside every accepted match of its type's full regex (else PII could
slip by unseen)."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from processors.redaction.patterns import (
    BUILTIN_TYPES,
    RAW_DIGIT_RUN,
    RAW_SECOND_PASS,
    RAW_TRIGGER_OVERRIDES,
    TRIGGERS,
)
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
        + ("|" + RAW_DIGIT_RUN[0] if name in RAW_TRIGGER_OVERRIDES else "")
        + ("|" + RAW_SECOND_PASS[name][0] if name in RAW_SECOND_PASS else ""),
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
        ps.ibans().map(str.lower),
        ps.cards().map(lambda c: c.replace(" ", ".").replace("-", "/")),
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


# --- the normalised copy (normalise.py): its raw trigger fires on every form the copy decodes -------------
def _encoded_db() -> object:
    from processors.redaction.normalise import RAW_ENCODED_TRIGGER
    from processors.redaction.scanner import _compile

    return _compile([(RAW_ENCODED_TRIGGER, True)])


_ENCODED_DB = _encoded_db()


def _fires(data: bytes) -> bool:
    hits: list[int] = []
    _ENCODED_DB.scan(data, lambda *_a: hits.append(1))  # type: ignore[attr-defined]
    return bool(hits)


def test_the_encoded_trigger_fires_on_every_folded_character_and_escape() -> None:
    import json

    from processors.redaction.normalise import FOLD, PERCENT_DECODED

    assert not _fires(b"plain ascii text 0123456789 a@b.c %zz \\n \\\\ u0040")
    missed = [
        hex(cp)
        for cp in FOLD
        if not _fires(b"x" + chr(cp).encode() + b"x") or not _fires(json.dumps(chr(cp)).encode())
    ]
    assert not missed
    for c in PERCENT_DECODED:
        assert _fires(f"x%{ord(c):02X}x".encode()) and _fires(f"x%{ord(c):02x}x".encode()), c
    for cp in range(0x80):
        assert _fires(f"\\u{cp:04x}".encode()) and _fires(f"\\u{cp:04X}".encode())


def test_every_decimal_digit_space_separator_and_format_character_is_folded() -> None:
    import sys
    import unicodedata

    from processors.redaction.normalise import FOLD

    claimed = {"Nd", "Zs", "Cf", "Pd"}
    missing = [
        hex(cp)
        for cp in range(0x80, sys.maxunicode + 1)
        if unicodedata.category(chr(cp)) in claimed and cp not in FOLD
    ]
    assert not missing


@settings(max_examples=400, deadline=None)
@given(
    c=st.one_of(
        st.characters(categories=["Nd"]),
        st.characters(categories=["Zs"]),
        st.characters(categories=["Cf"]),
        st.characters(categories=["Pd"]),
    ),
    before=st.text(max_size=10),
    after=st.text(max_size=10),
)
def test_the_raw_trigger_fires_on_any_unicode_digit_separator_or_format_character(
    c: str, before: str, after: str
) -> None:
    import json

    if ord(c) < 0x80:
        return  # ASCII digits, space and "-": the ordinary triggers' business
    text = before + c + after
    assert _fires(text.encode("utf-8", "surrogatepass"))
    assert _fires(json.dumps(text).encode())  # as a JSON-escaped string


@settings(max_examples=400, deadline=None)
@given(text=st.text(max_size=40))
def test_the_raw_trigger_fires_wherever_the_normalised_copy_differs(text: str) -> None:
    import json

    from processors.redaction.normalise import normalise

    for candidate in (text, json.dumps(text)):
        if normalise(candidate) is not None:
            assert _fires(candidate.encode("utf-8", "surrogatepass")), candidate


@settings(max_examples=300, deadline=None)
@given(
    text=st.one_of(
        ps.pii_values.map(lambda v: v.replace("@", "%40").replace(" ", "\u00a0")),
        ps.pii_values.map(lambda v: "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in v)),
        ps.pii_values.map(lambda v: v.replace("@", "\\u0040").replace("-", "\u2013")),
    )
)
def test_triggers_are_a_superset_on_the_normalised_copy(text: str) -> None:
    # the value triggers run on the copy as on any text: every validated match there holds a trigger hit
    from processors.redaction.normalise import normalise

    norm = normalise(text)
    copy = text if norm is None else norm.text
    for name, full in FULL.items():
        for m in full.finditer(copy):
            if VALID[name](m.group(0)):
                assert TRIG[name].search(m.group(0)), (name, m.group(0))
