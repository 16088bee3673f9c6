"""Checks run in Python on regex candidates only (never on every string): checksums and shape tests."""

from __future__ import annotations

import ipaddress
import re

# IBAN length per country (ISO 13616 registry)
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24,
    "AE": 23,
    "AL": 28,
    "AT": 20,
    "AZ": 28,
    "BA": 20,
    "BE": 16,
    "BG": 22,
    "BH": 22,
    "BI": 27,
    "BR": 29,
    "BY": 28,
    "CH": 21,
    "CR": 22,
    "CY": 28,
    "CZ": 24,
    "DE": 22,
    "DJ": 27,
    "DK": 18,
    "DO": 28,
    "EE": 20,
    "EG": 29,
    "ES": 24,
    "FI": 18,
    "FK": 18,
    "FO": 18,
    "FR": 27,
    "GB": 22,
    "GE": 22,
    "GI": 23,
    "GL": 18,
    "GR": 27,
    "GT": 28,
    "HR": 21,
    "HU": 28,
    "IE": 22,
    "IL": 23,
    "IQ": 23,
    "IS": 26,
    "IT": 27,
    "JO": 30,
    "KW": 30,
    "KZ": 20,
    "LB": 28,
    "LC": 32,
    "LI": 21,
    "LT": 20,
    "LU": 20,
    "LV": 21,
    "LY": 25,
    "MC": 27,
    "MD": 24,
    "ME": 22,
    "MK": 19,
    "MN": 20,
    "MR": 27,
    "MT": 31,
    "MU": 30,
    "NI": 28,
    "NL": 18,
    "NO": 15,
    "OM": 23,
    "PK": 24,
    "PL": 28,
    "PS": 29,
    "PT": 25,
    "QA": 29,
    "RO": 24,
    "RS": 22,
    "RU": 33,
    "SA": 24,
    "SC": 31,
    "SD": 18,
    "SE": 24,
    "SI": 19,
    "SK": 24,
    "SM": 27,
    "SO": 23,
    "ST": 25,
    "SV": 28,
    "TL": 23,
    "TN": 24,
    "TR": 26,
    "UA": 29,
    "VA": 22,
    "VG": 24,
    "XK": 20,
    "YE": 30,
}


_NOT_DIGIT = re.compile(r"\D")


def digits_of(text: str) -> str:
    return _NOT_DIGIT.sub("", text)


_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)


def luhn_ok(digits: str) -> bool:
    """Luhn check; ``int`` reads any Unicode decimal digit, so ``٤١١١…`` is checked as 4111…"""
    rev = digits[::-1]
    return (sum(map(int, rev[0::2])) + sum(_DOUBLED[int(c)] for c in rev[1::2])) % 10 == 0


# Issuer prefixes and lengths of the card networks.
_CARD_BRANDS: tuple[tuple[re.Pattern[str], frozenset[int]], ...] = tuple(
    (re.compile(prefix), frozenset(lengths))
    for prefix, lengths in (
        (r"4", (13, 16, 19)),  # Visa
        (r"5[1-5]|222[1-9]|22[3-9]\d|2[3-6]\d\d|27[01]\d|2720", (16,)),  # Mastercard
        (r"3[47]", (15,)),  # American Express
        (r"6011|64[4-9]|65", (16, 17, 18, 19)),  # Discover
        (r"35", (16, 17, 18, 19)),  # JCB (3528-3589 issued; the whole 35 block is accepted)
        (r"2131|1800", (15,)),  # JCB (old ranges)
        (r"30[0-5]|309|36|3[89]", (14, 15, 16, 17, 18, 19)),  # Diners Club
        (r"62", (16, 17, 18, 19)),  # UnionPay
        (r"50|5[6-9]|6\d|0604", (12, 13, 14, 15, 16, 17, 18, 19)),  # Maestro
    )
)
_CARD_GROUPINGS = {(4, 6, 5), (4, 6, 4)}  # Amex and Diners print 4-6-5 / 4-6-4


def card_ok(candidate: str) -> bool:
    digits = digits_of(candidate)
    n = len(digits)
    if not 12 <= n <= 19 or not luhn_ok(digits):
        return False
    if not any(p.match(digits) and n in lengths for p, lengths in _CARD_BRANDS):
        return False
    if len(set(digits)) == 1:
        return False
    seps = {c for c in candidate if not c.isdigit()}
    if len(seps) > 1:
        return False  # separators, if any, are of one kind
    if seps:
        groups = tuple(len(g) for g in re.split(r"[ ._/-]", candidate))
        four_blocks = all(g == 4 for g in groups[:-1]) and 1 <= groups[-1] <= 4
        if not four_blocks and groups not in _CARD_GROUPINGS:
            return False
    return True


def ssn_ok(candidate: str) -> bool:
    digits = digits_of(candidate)
    if len(digits) != 9:
        return False
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def iban_ok(candidate: str) -> bool:
    if candidate != candidate.upper() and candidate != candidate.lower():
        return False  # "De89…": a word, not an IBAN written in one case
    compact = candidate.replace(" ", "").upper()
    expected = IBAN_LENGTHS.get(compact[:2])
    if expected is None or len(compact) != expected:
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(c, 36)) for c in rearranged)
    return int(number) % 97 == 1


def ipv6_ok(candidate: str) -> bool:
    if candidate.count(":") < 2:
        return False
    try:
        ipaddress.IPv6Address(candidate)
    except ValueError:
        return False
    # "::" and "::1" identify nobody; every other address has at least two groups written out
    return sum(1 for g in candidate.split(":") if g) >= 2


_DATE_LIKE = re.compile(r"(?:\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{4})(?!\d)")


def _phone_main(candidate: str) -> tuple[str, bool]:
    parts = re.split(r"\s?(?:x|ext\.?)\s?\d", candidate, maxsplit=1)
    return parts[0], len(parts) > 1


def phone_ok(candidate: str) -> bool:
    main = _phone_main(candidate)[0]
    digits = digits_of(main)
    if main.startswith("+"):
        return 8 <= len(digits) <= 15
    if not 8 <= len(digits) <= 15:
        return False
    if _DATE_LIKE.match(main):
        return False
    if len(digits) == 13 and digits.startswith(("978", "979")) and main.count("-") == 4:
        return False  # ISBN-13
    if "." in main:
        if " " in main:
            return False  # "100 0.000": numbers in prose, not one phone number
        if not any(c in main for c in "-()") and (main.count(".") == 1 or len(digits) < 9):
            return False  # dots only: "557.531.8229" is a phone, "1234.5678" a decimal, "10.10.100" a version
    return len(set(digits)) != 1


_NANP = re.compile(r"(?:1[ .-]?)?[2-9]\d\d(?:[2-9]\d{6}|[ .-][2-9]\d\d[ .-]\d{4})")
_INTL_OR_TRUNK = re.compile(
    r"\(?(?:\+|00[1-9]|0[1-9]|8(?:\d{10}|[ (-][3-9]\d\d[ )-]+\d{3}[ -]?\d\d[ -]?\d\d)$)"
)
_CN_MOBILE = re.compile(r"1[3-9]\d{9}")


def phone_needs_context(candidate: str) -> bool:
    """True for phone-shaped numbers that ordinary text is full of too: digit groups separated by single
    spaces ("request 60 698216", "took 12 345678 ns", "2 815 933 413 bytes") or by one dash/dot, and bare
    digit runs that fit no national plan. Such a candidate is only a phone number with a context word nearby
    (tel, phone, call, mobile, whatsapp, ...). Unambiguous shapes need none: a leading ``+``/``00``/``(``, a
    trunk ``0`` (or Russia's ``8``) before the national number, an extension, a NANP number (area code and
    exchange 2-9, with or without separators), a Chinese mobile, or three or more groups joined by dashes or
    dots ("03-1234-5678", "11 2345-6789", "555.123.4567")."""
    main, has_ext = _phone_main(candidate)
    if has_ext or "(" in main or _INTL_OR_TRUNK.match(main):
        return False
    if _NANP.fullmatch(main) or _CN_MOBILE.fullmatch(main):
        return False
    groups = re.split(r"[ .-]", main)
    if len(groups) >= 4 and len(groups[-1]) == len(groups[-2]) == 2:
        return False  # "47 03 44 17", "22 057 84 29": ending in pairs, as Nordic/French/Polish numbers go
    return not (len(groups) >= 3 and any(c in main for c in "-."))


PHONE_CONTEXT = re.compile(
    r"(?:\btel\b|tél|phone|call|mobile?|cell|whats\s?app|fax|sms|contact|reach|dial|ring"
    r"|telef|teléf|tlf|handy|móvil|movil|celular|cellulare|numer|puhelin|ponsel|điện|телеф|тел\.|моб"
    r"|電話|电话|手机|携帯|전화|휴대)",
    re.IGNORECASE,
)
PHONE_CONTEXT_CHARS = 48
"""How far before (or after) an ambiguous phone-shaped number a context word is looked for."""


def phone_context_ok(text: str, start: int, end: int) -> bool:
    before = text[max(0, start - PHONE_CONTEXT_CHARS) : start]
    after = text[end : end + 16]
    if PHONE_CONTEXT.search(before) or PHONE_CONTEXT.search(after):
        return True
    # a value that is nothing but the number (an attribute such as "user.phone" holding "512 345 678")
    return (
        _blank_to_edge(text, start, -1, " \t\"'")
        and _blank_to_edge(text, end, 1, " \t\"'.")
        and (" " in text[start:end])
    )


def _blank_to_edge(text: str, pos: int, step: int, blanks: str) -> bool:
    """Is everything from ``pos`` to the start (step -1) or end (step 1) of ``text`` made of ``blanks``?
    Walks the blank run only (not a slice of the whole text per match, which made long texts quadratic)."""
    i = pos - 1 if step < 0 else pos
    while 0 <= i < len(text):
        if text[i] not in blanks:
            return False
        i += step
    return True


_NOT_PERSONAL_V4 = re.compile(r"(?:127\.\d{1,3}\.\d{1,3}\.\d{1,3}|0\.0\.0\.0)")


def ipv4_ok(candidate: str) -> bool:
    """Loopback (127.0.0.0/8) and the unspecified address identify nobody: every host has them."""
    return _NOT_PERSONAL_V4.fullmatch(candidate) is None


def always_ok(candidate: str) -> bool:
    return True
