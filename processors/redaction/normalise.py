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
  parentheses),

and a match found in the copy replaces the original characters it came from. Percent escapes of letters and
digits (no URL encoder writes them) and of other punctuation are left as they are.

The raw-bytes trigger ``RAW_ENCODED_TRIGGER`` fires on every one of these forms in a serialized batch (the
UTF-8 bytes of every folded character, every decoded percent escape, every decoded ``\\u`` escape), so a
batch whose only PII is encoded is still looked at (tests/processors/redaction/test_triggers.py).
"""

from __future__ import annotations

import bisect
import re
import threading
import unicodedata
from dataclasses import dataclass

import hyperscan

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
    # Not folded: the ideographic full stop U+3002 (sometimes written for the dot of an address) ends every
    # Japanese and Chinese sentence, so the raw trigger would fire on all CJK text for a rare disguise.
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
_PCT_RX = "(?:" + "|".join(sorted("%" + h.lower() for h in _PCT)) + ")"


def _hex_digit_class(digits: set[str]) -> str:
    """Lower-case hex digits: the patterns are compiled caseless, which keeps them literals for Hyperscan
    (classes such as [Ff] would make every \\u of a JSON text full of escapes a candidate)."""
    low = sorted({d.lower() for d in digits})
    return low[0] if len(low) == 1 else "[" + "".join(low) + "]"


def _hex(prefix: str) -> str:
    return "".join(_hex_digit_class({d}) for d in prefix)


def _escape_rx(pairs: bool) -> str:
    """``\\uXXXX`` escapes that decode to something the copy changes: ASCII, every folded BMP character, and
    (``pairs``) the surrogate pair of every folded astral character, else just its high half. Escapes of
    other characters (most non-ASCII text that ``json.dumps`` writes) are not matched at all, so they cost
    nothing. One backslash is matched; more before it (JSON escaped twice, a JSON document in a string of
    another, writes ``\\\\u0040``) belong to the token too (``_token_start``)."""
    alts = [f"00{d}[0-9a-f]" for d in "01234567"]  # ASCII, as eight literal prefixes
    bmp: dict[str, set[str]] = {}
    astral: dict[tuple[str, str], set[str]] = {}
    for cp in FOLD:
        if cp <= 0xFFFF:
            h = f"{cp:04x}"
            bmp.setdefault(h[:3], set()).add(h[3])
        else:
            hi, lo = 0xD800 + ((cp - 0x10000) >> 10), 0xDC00 + ((cp - 0x10000) & 0x3FF)
            low = f"{lo:04x}"
            astral.setdefault((f"{hi:04x}", low[:3]), set()).add(low[3])
    alts += [_hex(prefix) + _hex_digit_class(last) for prefix, last in sorted(bmp.items())]
    if pairs:
        alts += [
            _hex(hi) + r"\\+u" + _hex(low) + _hex_digit_class(last)
            for (hi, low), last in sorted(astral.items())
        ]
    else:
        alts += sorted({_hex(hi) for hi, _ in astral})
    # the \\u inside each alternative, not factored out: Hyperscan then looks for "\\u00a", "\\u066", … as
    # literals, not for every "\\u" of a JSON text full of escapes
    return "(?:" + "|".join(r"\\u" + a for a in alts) + ")"


_TOKEN_ESCAPE_RX = _escape_rx(pairs=True)


def _raw_trigger() -> str:
    """A byte regex (for Hyperscan over serialized batches) that matches every form the copy decodes: the
    decoded percent and ``\\u`` escapes, and the UTF-8 encoding of every folded character (its leading
    bytes, then a class of last bytes)."""
    alts: list[str] = [_PCT_RX, _escape_rx(pairs=False)]
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
"""Compile caseless (hex digits are written in lower case)."""
_TOKEN_RX = RAW_ENCODED_TRIGGER.replace(_escape_rx(pairs=False), _TOKEN_ESCAPE_RX)


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


_HEX4 = re.compile(r"[0-9a-f]{4}")


def _decode_escape(token: str) -> str:
    quads = [int(h, 16) for h in _HEX4.findall(token.lower().replace("\\", "").replace("u", " "))]
    cp = quads[0] if len(quads) == 1 else 0x10000 + ((quads[0] - 0xD800) << 10) + (quads[1] - 0xDC00)
    return chr(cp) if cp < 0x80 else FOLD[cp]


def may_change(text: str) -> bool:
    """Cheap test: could ``normalise`` change this text?"""
    if text.isascii():
        return "%" in text or "\\u" in text
    return True


_DB = hyperscan.Database()
_DB.compile(expressions=[_TOKEN_RX.encode()], ids=[0], flags=[hyperscan.HS_FLAG_CASELESS])
_LOCAL = threading.local()
_BACKSLASH, _PERCENT = 0x5C, 0x25


def _token_start(data: bytes, end: int) -> int:
    """Where the token that ends at ``end`` starts: a percent escape (3 bytes), a \\u escape or pair (its
    backslashes included), or one UTF-8 encoded character."""
    if data[end - 1] >= 0x80:  # a character: back over its continuation bytes to the lead byte
        pos = end - 1
        while data[pos] < 0xC0:
            pos -= 1
        return pos
    if data[end - 3] == _PERCENT:
        return end - 3
    pos = end - 5  # the "u"
    while pos > 0 and data[pos - 1] == _BACKSLASH:
        pos -= 1
    if 0xDC00 <= int(data[end - 4 : end], 16) < 0xE000:  # the low half of a pair: the high half before it
        pos -= 5
        while pos > 0 and data[pos - 1] == _BACKSLASH:
            pos -= 1
    return pos


def _token_spans(data: bytes) -> list[tuple[int, int]]:
    """Byte spans of the decodable tokens in UTF-8 text, in order. Hyperscan finds them, so a text full of
    escapes the copy does not decode (the \\u escapes json.dumps writes for Cyrillic or CJK text) costs no
    Python work per escape."""
    scratch = getattr(_LOCAL, "scratch", None)
    if scratch is None:
        scratch = _LOCAL.scratch = hyperscan.Scratch(_DB)
    ends: list[int] = []

    def on_match(_id: int, _start: int, end: int, _flags: int, _ctx: object) -> None:
        ends.append(end)

    _DB.scan(data, on_match, scratch=scratch)
    return [(_token_start(data, e), e) for e in ends]


def normalise(text: str) -> Normalised | None:
    """The normalised copy of ``text``, or None when it would equal the text. Linear in ``len(text)``."""
    if not may_change(text):
        return None
    data = text.encode("utf-8", "surrogatepass")
    spans = _token_spans(data)
    if not spans:
        return None
    ascii_text = len(data) == len(text)
    out: list[str] = []
    n0: list[int] = []
    n1: list[int] = []
    o0: list[int] = []
    o1: list[int] = []
    last = 0  # characters of the text copied so far
    npos = 0
    byte_at, char_at = 0, 0  # a known byte offset and its character offset
    for bs, be in spans:
        if ascii_text:
            s, e = bs, be
        else:
            if bs < byte_at:
                continue  # overlaps the token before
            s = char_at + len(data[byte_at:bs].decode("utf-8", "surrogatepass"))
            e = s + len(data[bs:be].decode("utf-8", "surrogatepass"))
            byte_at, char_at = be, e
        if s < last:
            continue
        token = text[s:e]
        if token[0] == "%":
            repl = chr(int(token[1:], 16))
        elif token[0] == "\\":
            repl = _decode_escape(token)
        else:
            repl = FOLD[ord(token)]
        out.append(text[last:s])
        npos += s - last
        out.append(repl)
        n0.append(npos)
        npos += len(repl)
        n1.append(npos)
        o0.append(s)
        o1.append(e)
        last = e
    out.append(text[last:])
    return Normalised("".join(out), n0, n1, o0, o1)
