"""Each Hyperscan trigger must match inside every accepted match of its type's full regex (else PII could
slip by unseen)."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from processors.pii_patterns import BUILTIN_TYPES, RAW_DIGIT_RUN, RAW_TRIGGER_OVERRIDES, TRIGGERS
from tests.processors import pii_strategies as ps

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
