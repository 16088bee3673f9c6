"""JSON on the request path: orjson where it reads what ``json`` reads, ``json`` elsewhere, and a clean 400
for request bodies the gateway cannot forward as standard JSON."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app import jsonio
from tests.app.conftest import Gateway

VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(value=VALUES)
def test_standard_json_reads_and_writes_as_the_standard_library_does(value: Any) -> None:
    text = json.dumps(value, ensure_ascii=False).encode()
    assert jsonio.loads(text) == json.loads(text)
    assert jsonio.loads_request(text) == json.loads(text)
    assert json.loads(jsonio.dumps(value)) == json.loads(text)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (b'{"a": NaN}', "NaN"),
        (b'{"a": -Infinity}', "-Infinity"),
        (b'{"a": 1e999}', "too large for a double"),
        (b'{"a": 123456789012345678901234567890}', "64-bit"),
        (b'{"a": -9223372036854775809}', "64-bit"),
        (b'{"a": "\\ud800"}', "surrogate"),
    ],
)
def test_what_cannot_be_forwarded_is_refused_naming_it(text: bytes, why: str) -> None:
    json.loads(text)  # Python's json takes it...
    with pytest.raises(jsonio.NotPortableJSON, match=why):
        jsonio.loads_request(text)  # ...the gateway does not forward it


def test_big_floats_and_the_64_bit_edges_are_kept_exactly() -> None:
    text = b'{"f": 1e300, "g": -9.3e18, "u": 18446744073709551615, "i": -9223372036854775808}'
    assert jsonio.loads_request(text) == json.loads(text)
    ours, theirs = jsonio.loads_request(text), json.loads(text)
    assert [(type(v), v) for v in ours.values()] == [(type(v), v) for v in theirs.values()]


def test_other_texts_json_takes_are_read_as_it_reads_them() -> None:
    for text in (b'\xef\xbb\xbf{"a": 1}', '{"a": 1}'.encode("utf-16")):
        assert jsonio.loads(text) == jsonio.loads_request(text) == json.loads(text)


def test_errors_are_jsons_own() -> None:
    for text in (b"{not json", b"", b'{"a": 1,}'):
        with pytest.raises(ValueError) as ours:
            jsonio.loads_request(text)
        with pytest.raises(ValueError) as theirs:
            json.loads(text)
        assert str(ours.value) == str(theirs.value)


def test_a_body_that_cannot_be_forwarded_is_a_400_naming_the_problem(gateway: Gateway) -> None:
    r = httpx.post(
        gateway.openai_base_url + "/chat/completions",
        content=b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "seed": NaN}',
        headers={"content-type": "application/json"},
        timeout=10,
    )
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and "NaN" in err["message"]
    assert r.headers["x-request-id"].startswith("req_")
