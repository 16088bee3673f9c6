"""A normalised copy of a text for the detectors, and the way back to the original characters.

PII hides from ASCII-minded regexes behind encodings and look-alike characters: ``jane%40example.com``,
``jane\\u0040example.com`` (JSON escapes inside a string), the same address in fullwidth letters (U+FF4A…), a
zero-width space inside an address, a card in Arabic-Indic digits (U+0660…), a card grouped with no-break or
thin spaces or en dashes. The scanner runs its detectors over the original text *and* over this copy, in which

* percent escapes of the characters detectors key on (``PERCENT_DECODED``) are decoded,
* JSON ``\\uXXXX`` escapes (and surrogate pairs) of ASCII characters and of the characters below are decoded,
* every decimal digit (Unicode category Nd) becomes its ASCII digit,
* every space separator (Zs: no-break, thin, ideographic, … spaces) becomes a space,
* every format character (Cf: zero-width space / joiners, soft hyphen, BOM, bidi marks, tags) is dropped,
* every dash (Pd, and the minus sign) becomes ``-``,
* every other character whose NFKC form is one ASCII letter, digit or one of ``NFKC_KEPT`` becomes that
  character (fullwidth and mathematical letters, circled digits, the fullwidth at sign, dot, colon and
  parentheses, the ideographic full stop U+3002 as a dot),

and a match found in the copy replaces the original characters it came from. Percent escapes of letters and
digits (no URL encoder writes them) and of other punctuation are left as they are.

The raw-bytes trigger ``RAW_ENCODED_TRIGGER`` fires on every one of these forms in a serialized batch (the
UTF-8 bytes of every folded character, every decoded percent escape, every decoded ``\\u`` escape), so a
batch whose only PII is encoded is still looked at (tests/processors/redaction/test_triggers.py).
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from dataclasses import dataclass

PERCENT_DECODED = " \t\n\"'()+-./:=@_"
"""Characters whose percent escapes are decoded: the separators and delimiters detectors key on."""

NFKC_KEPT = "@.:+-()/=_'\" "
"""Punctuation that compatibility forms (fullwidth and small forms) are folded to; others are left alone."""


def _fold_table() -> dict[int, str]:
    fold: dict[int, str] = {}
    ranges = (range(0x80, 0x20000), range(0xE0000, 0xE1000))  # planes 0-1 and the tags/variation selectors
    for cp in (cp for r in ranges for cp in r):
        if 0xD800 <= cp < 0xE000:
            continue
        c = chr(cp)
        cat = unicodedata.category(c)
        if cat == "Nd":
            fold[cp] = str(unicodedata.digit(c))
        elif cat == "Zs":
            fold[cp] = " "
        elif cat == "Cf":
            fold[cp] = ""
        elif cat == "Pd" or cp == 0x2212:
            fold[cp] = "-"
        else:
            k = unicodedata.normalize("NFKC", c)
            if len(k) == 1 and ((k.isascii() and k.isalnum()) or k in NFKC_KEPT):
                fold[cp] = k
    fold[0x3002] = fold[0xFF61] = "."  # ideographic full stops, written for the dot in addresses
    return fold


FOLD: dict[int, str] = _fold_table()
"""Code point → ASCII replacement ("" = dropped) of every non-ASCII character the copy changes."""


def _class(cps: list[int]) -> str:
    """A regex character class of code points, as ranges."""
    parts: list[str] = []
    cps = sorted(cps)
    i = 0
    while i < len(cps):
        j = i
        while j + 1 < len(cps) and cps[j + 1] == cps[j] + 1:
            j += 1
        lo, hi = cps[i], cps[j]
        parts.append(re.escape(chr(lo)) if lo == hi else re.escape(chr(lo)) + "-" + re.escape(chr(hi)))
        i = j + 1
    return "[" + "".join(parts) + "]"


_PCT = {f"{ord(c):02X}" for c in PERCENT_DECODED}
_PCT_RX = "%(?:" + "|".join(sorted(f"{h[0]}[{h[1].upper()}{h[1].lower()}]" for h in _PCT)) + ")"
# any number of backslashes: JSON escaped twice (a JSON document in a string of another) writes "\\\\u0040"
_U_ESCAPE = r"\\+u([0-9A-Fa-f]{4})(?:\\+u([dD][c-fC-F][0-9A-Fa-f]{2}))?"
_TOKENS = re.compile(_PCT_RX + "|" + _U_ESCAPE + "|" + _class(list(FOLD)))


def _hex_digit_class(digits: set[str]) -> str:
    both = sorted({d.upper() for d in digits} | {d.lower() for d in digits})
    return both[0] if len(both) == 1 else "[" + "".join(both) + "]"


def _raw_trigger() -> str:
    """A byte regex (for Hyperscan over serialized batches) that matches every form the copy decodes."""
    alts: list[str] = [_PCT_RX]
    # \u escapes of ASCII, of every folded BMP character, and any escaped surrogate (astral characters)
    alts.append(r"\\u00[0-7][0-9A-Fa-f]")
    by_prefix: dict[str, set[str]] = {}
    for cp in FOLD:
        if cp <= 0xFFFF:
            h = f"{cp:04x}"
            by_prefix.setdefault(h[:3], set()).add(h[3])
    for prefix, last in sorted(by_prefix.items()):
        alts.append(r"\\u" + "".join(_hex_digit_class({d}) for d in prefix) + _hex_digit_class(last))
    alts.append(r"\\u[dD][89abAB][0-9A-Fa-f]{2}")
    # the UTF-8 encoding of every folded character: its leading bytes, then a class of last bytes
    by_lead: dict[bytes, set[int]] = {}
    for cp in FOLD:
        b = chr(cp).encode("utf-8")
        by_lead.setdefault(b[:-1], set()).add(b[-1])
    for lead, lasts in sorted(by_lead.items()):
        alts.append("".join(f"\\x{x:02x}" for x in lead) + _byte_class(sorted(lasts)))
    return "(?:" + "|".join(alts) + ")"


def _byte_class(values: list[int]) -> str:
    parts: list[str] = []
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[j] + 1:
            j += 1
        parts.append(f"\\x{values[i]:02x}" if i == j else f"\\x{values[i]:02x}-\\x{values[j]:02x}")
        i = j + 1
    return "[" + "".join(parts) + "]"


RAW_ENCODED_TRIGGER: str = _raw_trigger()


@dataclass(frozen=True)
class Normalised:
    text: str
    """The normalised copy."""
    _n0: list[int]
    _n1: list[int]
    _o0: list[int]
    _o1: list[int]
    """Edits in order: copy characters [n0, n1) stand for original characters [o0, o1)."""

    def _orig(self, c: int, end: bool) -> int:
        """Original index of copy character ``c`` (end: the index just after the characters it came from)."""
        j = bisect.bisect_right(self._n1, c)  # edits wholly before c: [0, j)
        if j < len(self._n0) and self._n0[j] <= c:  # c was produced by edit j
            return self._o1[j] if end else self._o0[j]
        base = c if j == 0 else self._o1[j - 1] + (c - self._n1[j - 1])
        return base + 1 if end else base

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """The original characters behind copy characters [start, end) (end > start)."""
        return self._orig(start, False), self._orig(end - 1, True)


def _decode_escape(first: str, low: str | None) -> str | None:
    cp = int(first, 16)
    if low is not None:
        if not 0xD800 <= cp < 0xDC00:
            return None
        cp = 0x10000 + ((cp - 0xD800) << 10) + (int(low, 16) - 0xDC00)
    if 0xD800 <= cp < 0xE000:
        return None
    if cp < 0x80:
        return chr(cp)
    return FOLD.get(cp)


def may_change(text: str) -> bool:
    """Cheap test: could ``normalise`` change this text?"""
    if text.isascii():
        return "%" in text or "\\u" in text
    return True


def normalise(text: str) -> Normalised | None:
    """The normalised copy of ``text``, or None when it would equal the text. Linear in ``len(text)``."""
    if not may_change(text):
        return None
    out: list[str] = []
    n0: list[int] = []
    n1: list[int] = []
    o0: list[int] = []
    o1: list[int] = []
    last = 0
    npos = 0
    for m in _TOKENS.finditer(text):
        token = m.group(0)
        if token[0] == "%":
            repl: str | None = chr(int(token[1:], 16))
        elif token[0] == "\\":
            repl = _decode_escape(m.group(1), m.group(2))
        else:
            repl = FOLD[ord(token)]
        if repl is None:
            continue
        s, e = m.span()
        out.append(text[last:s])
        npos += s - last
        out.append(repl)
        n0.append(npos)
        npos += len(repl)
        n1.append(npos)
        o0.append(s)
        o1.append(e)
        last = e
    if not n0:
        return None
    out.append(text[last:])
    return Normalised("".join(out), n0, n1, o0, o1)
