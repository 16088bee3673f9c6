"""Bounded cost: the confirming regexes' work grows linearly with the text (counted, never timed).

PiiScanner counts its regex attempts (``regex_calls``) and the characters those attempts may search
(``regex_chars``: the window of each search). For worst-case texts (a repeated short unit that keeps a
detector busy) four times the text must cost at most about four times the attempts and characters, and no
text may make the regexes search more than a small multiple of its own length."""

from __future__ import annotations

import pytest

from processors.redaction.config import RedactionConfig
from processors.redaction.scanner import PiiScanner

SCANNER = PiiScanner(RedactionConfig())

UNITS = [
    "12 34 56 78 ",
    "1-2 ",
    "(12) 345 ",
    "+1 2 ",
    "1234567890",
    "4111 1111 ",
    "1.2.",
    "1:2:",
    "a@a.a@",
    "-----BEGIN ",
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n",
    "password=",
    "Bearer ",
    "DE89 3704 ",
    "%40%2E",
    "\\u0040",
    "\uff11\uff12 \uff13\uff14 ",
    "\u0661\u0662 \u0663\u0664 ",
]


def _cost(text: str) -> tuple[int, int]:
    SCANNER.regex_calls = SCANNER.regex_chars = 0
    hits = SCANNER.candidate_hits([text])
    if 0 in hits:
        SCANNER.redact_text(text, hits[0], hits[0])
    return SCANNER.regex_calls, SCANNER.regex_chars


@pytest.mark.parametrize("unit", UNITS)
def test_regex_work_is_linear_in_the_text(unit: str) -> None:
    small, large = 10_000, 40_000
    calls_s, chars_s = _cost((unit * small)[:small])
    calls_l, chars_l = _cost((unit * large)[:large])
    slack = 64  # a few attempts at the edges do not scale
    assert calls_l <= 4.5 * calls_s + slack, (calls_s, calls_l)
    assert chars_l <= 4.5 * chars_s + slack * 100, (chars_s, chars_l)
    # each character is searched a bounded number of times (once per detector that fires, a few more
    # where a rejected run of groups is searched again from its next group)
    assert chars_l <= 12 * large, chars_l


def test_a_long_text_with_one_hit_searches_a_window_not_the_text() -> None:
    text = "lorem ipsum " * 20_000 + "mail jane@example.com now" + " dolor sit" * 20_000
    calls, chars = _cost(text)
    assert calls <= 4 and chars < 2_000, (calls, chars)
