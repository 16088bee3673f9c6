"""The built-in PII and secret detectors: one regex (Python syntax, also fed to Hyperscan in prefilter mode)
plus a validator per type.

Regexes avoid ``\\b``, ``^`` and ``$``: Hyperscan also scans the raw protobuf bytes, where the byte before a
string is its length prefix and may be a letter, so a boundary assertion could miss. Boundaries are written as
lookarounds instead, which Hyperscan's prefilter mode drops (making it a superset) and Python enforces.
If a pattern has a group named ``v`` only that group is replaced (e.g. the password in ``user:pass@host``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from processors.redaction import validators as v


@dataclass(frozen=True)
class PiiType:
    name: str
    """Config id (lower case) and, upper-cased, the placeholder label."""
    regex: str
    validator: Callable[[str], bool]
    caseless: bool = False
    shrink_at: str = ""
    """When the validator rejects a match, retry it cut back at each of these separator characters: a number
    followed by another number in prose is otherwise swallowed by the greedy match and rejected whole."""
    shrink_prefix: str = ""
    """Only shrink matches that start with this (e.g. "+" for international phone numbers)."""
    reach: int = 512
    """Upper bound on how far before the end of a trigger hit a match of the full regex can start (the
    trigger matches inside every match, so the regex search skips text farther than this from every hit).
    0: unknown, search the whole text (private keys: the trigger is the start of the block anyway)."""
    needs_context: Callable[[str], bool] | None = None
    """For a validated match: is its shape ambiguous, so that it only counts with ``context_ok``?"""
    context_ok: Callable[[str, int, int], bool] | None = None
    """(text, start, end) → does the text around an ambiguous match make it this type?"""

    @property
    def label(self) -> str:
        return self.name.upper()

    def compile(self) -> re.Pattern[str]:
        return re.compile(self.regex, re.IGNORECASE if self.caseless else 0)


def _left(excluded: str) -> str:
    """Left edge: the previous char is not in ``excluded`` (nor a backslash), or it is a JSON escape like the
    ``\\n`` of a newline inside JSON carried in a string (which would otherwise glue "n" to the value)."""
    return r"(?:(?<=\\[nrt])|(?<![\\" + excluded + r"]))"


_L = _left(r"\w.+\-/@#")  # not inside a word, number, version, path or address
# Path and key separators, a left edge only for numbers whose shape or checksum says what they are (Luhn-valid
# cards, valid SSNs, IPv4 with valid octets, phone numbers starting with "+"): a "/" that does not end a
# 4-digit group ("/cards/4111…", "/v1/+1415…", not "1234/5678/…") and a "." or "_" right after a letter
# ("user.203.0.113.7", "card_4111…"; not "3.14159…", "1.2.3.4.5" or a version's "v1.2"). "=" and ":" pass _L.
_KEY_SEP = r"(?<=/)(?<!\d{4}/)|(?<=[^\W\d][._])"
_LV = r"(?:" + _L + r"|" + _KEY_SEP + r")"  # left edge of the validated types above
_R = r"(?![\w\-@]|\.\d)"  # right edge

_KEY_LABEL = r"(?:[A-Z0-9]+ )*(?:PRIVATE|SECRET) KEY(?: BLOCK)?"
_SEP = r"(?:\r?\n|\\r\\n|\\n|[ \t])"  # a line break (real or JSON-escaped) or a blank inside a key block

# Order matters: earlier types win when matches overlap (a secret beats the phone-like digits inside it).
BUILTIN_TYPES: tuple[PiiType, ...] = (
    PiiType(
        "private_key",
        # PEM (RSA, EC, OPENSSH, ENCRYPTED, …) and PGP armour. A complete block ends at its END line; a block
        # cut short (no END before the next "-----") is redacted to the end of its headers and base64 body.
        # Possessive repeats: a block that is not complete is given up without backtracking (linear cost).
        # Cut short: armour headers ("Proc-Type: …", "Version: …"), then base64 lines one separator apart.
        r"-----BEGIN " + _KEY_LABEL + r"-----(?:(?:(?!-----)[\s\S])*+-----END " + _KEY_LABEL + r"-----"
        r"|(?:" + _SEP + r"++[A-Za-z][A-Za-z-]*+:[^\r\n\\]*+)*+(?:" + _SEP + r"++[A-Za-z0-9+/=]++"
        r"(?:" + _SEP + r"[A-Za-z0-9+/=]++)*+)?)",
        v.always_ok,
        reach=0,
    ),
    PiiType(
        "aws_secret_key",
        # aws_secret_access_key=…, AWS_SECRET_ACCESS_KEY: …, "SecretAccessKey": "…", secret_key = "…"
        _left("A-Za-z0-9") + r"(?:aws)?secret[_.-]?(?:access[_.-]?)?key(?:\\?[\"'])?\s*[=:]\s*(?:\\?[\"'])?"
        r"(?P<v>[A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])",
        v.always_ok,
        caseless=True,
    ),
    PiiType(
        "azure_key",
        # AccountKey= / SharedAccessKey= in connection strings, sig= in SAS URLs (also percent-encoded)
        r"(?:" + _left("A-Za-z0-9") + r"(?:account|sharedaccess)key\s*=\s*|(?:[?&;]|%26|%3f)sig(?:=|%3d))"
        r"(?P<v>[A-Za-z0-9+/%=_-]{20,})",
        v.always_ok,
        caseless=True,
    ),
    PiiType("anthropic_key", _left(r"\w-") + r"sk-ant-[A-Za-z0-9_-]{20,}", v.always_ok),
    PiiType(
        "openai_key", _left(r"\w-") + r"sk-(?:proj-|svcacct-|admin-|None-)?[A-Za-z0-9_-]{20,}", v.always_ok
    ),
    PiiType(
        "aws_access_key",
        _left("A-Za-z0-9")
        + r"(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}(?![A-Za-z0-9])",
        v.always_ok,
    ),
    PiiType(
        "github_token",
        _left("A-Za-z0-9_") + r"(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})",
        v.always_ok,
    ),
    PiiType(
        "slack_token",
        _left(r"\w-") + r"(?:xox[abposr]-[A-Za-z0-9-]{10,}|xapp-\d-[A-Za-z0-9-]{10,}"
        r"|https://hooks\.slack\.com/services/T[A-Za-z0-9_]+/B[A-Za-z0-9_]+/[A-Za-z0-9_]+)",
        v.always_ok,
    ),
    PiiType("google_api_key", _left(r"\w-") + r"AIza[0-9A-Za-z_-]{35}(?![\w-])", v.always_ok),
    PiiType("stripe_key", _left(r"\w-") + r"(?:sk|rk)_live_[0-9A-Za-z]{16,}", v.always_ok),
    PiiType(
        "gitlab_token",
        # personal/project/group (glpat-), deploy, runner, trigger, OAuth app, feed, incoming-mail tokens
        _left(r"\w-") + r"gl(?:pat|dt|rt|ptt|cbt|soat|oas|ft|imt|agent)-[0-9A-Za-z_-]{20,}"
        r"(?:\.[0-9A-Za-z_-]+)*",
        v.always_ok,
    ),
    PiiType("huggingface_token", _left(r"\w-") + r"hf_[A-Za-z0-9]{30,}(?![A-Za-z0-9])", v.always_ok),
    PiiType("npm_token", _left(r"\w-") + r"npm_[A-Za-z0-9]{36}(?![A-Za-z0-9])", v.always_ok),
    PiiType(
        "sendgrid_key", _left(r"\w.-") + r"SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}(?![\w-])", v.always_ok
    ),
    PiiType(
        "google_oauth_token",
        # access tokens (ya29.) and refresh tokens (1//0…)
        _left(r"\w./-") + r"(?:ya29\.[0-9A-Za-z_-]{20,}|1//0[0-9A-Za-z_-]{40,})",
        v.always_ok,
    ),
    PiiType("google_client_secret", _left(r"\w-") + r"GOCSPX-[0-9A-Za-z_-]{28}(?![\w-])", v.always_ok),
    PiiType(
        "jwt", _left(r"\w-") + r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*", v.always_ok
    ),
    PiiType(
        "bearer_token", _left(r"\w-") + r"bearer\s+(?P<v>[A-Za-z0-9._~+/=-]{8,})", v.always_ok, caseless=True
    ),
    PiiType(
        "url_password",
        _left(r"\w+.-") + r"[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@\"'<>\\]*:(?P<v>[^/\s@\"'<>\\]+)@",
        v.always_ok,
    ),
    PiiType(
        "password_pair",
        _left(r"\w-") + r"(?:password|passwd|pwd|pass|passphrase|secret|client[_-]?secret|api[_-]?key|apikey"
        r"|access[_-]?token|auth[_-]?token|refresh[_-]?token)(?:\\?[\"'])?\s*[=:]\s*(?:\\?[\"'])?"
        r"(?P<v>[^\s&\"',;<>\\]{1,256})",
        v.always_ok,
        caseless=True,
    ),
    PiiType(
        "email",
        # the local part may hold any letters ("grace.müller47@…", RFC 6531); the domain is written in ASCII
        _left(r"\w.+%-") + r"[^\W_][\w.%+-]{0,63}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
        r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.[A-Za-z]{2,24}(?![\w-])",
        v.always_ok,
    ),
    PiiType(
        "iban",
        # upper or lower case, not mixed (iban_ok)
        _left("A-Za-z0-9") + r"(?:[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?"
        r"|[a-z]{2}\d{2}(?: ?[a-z0-9]{4}){2,7}(?: ?[a-z0-9]{1,3})?)(?![A-Za-z0-9])",
        v.iban_ok,
        shrink_at=" ",
    ),
    PiiType(
        "credit_card",
        # grouped by spaces, dashes, dots, slashes or underscores (one kind per number: card_ok); no-break,
        # thin and other spaces and other dashes are folded to these in the normalised copy (normalise.py)
        _LV
        + r"(?:\d{12,19}|\d{4}(?:[ ._/-]\d{4}){2,3}(?:[ ._/-]\d{1,4})?|\d{4}[ ._/-]\d{6}[ ._/-]\d{4,5})"
        + _R,
        v.card_ok,
        shrink_at=" -._/",
    ),
    PiiType("us_ssn", _LV + r"\d{3}([- ])\d{2}\1\d{4}" + _R, v.ssn_ok),
    PiiType(
        "ipv4",
        r"(?:" + _left(r"\w.") + r"|(?<=[^\W\d][._]))"
        r"(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
        r"(?![\w]|\.\d)",
        v.ipv4_ok,
    ),
    PiiType(
        "ipv6",
        _left(r"\w:.") + r"(?:(?:[0-9A-Fa-f]{0,4}:){1,7}(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})"
        r"|(?:[0-9A-Fa-f]{1,4}:){1,7}:)"
        # a colon may follow ("2001:db8::1: connection refused"), but not one that continues the address
        r"(?![\w]|:[0-9A-Fa-f:])",
        v.ipv6_ok,
    ),
    PiiType(
        "phone",
        # a path or key separator only before an international number ("+…", "(+…)")
        r"(?:" + _L + r"|(?:" + _KEY_SEP + r")(?=\(?\+))(?:"
        r"\+\d{1,3}[ .-]?(?:\(0\)[ .-]?)?(?:\(\d{1,5}\)[ .-]?)?\d{1,14}(?:[ .-]\d{1,14}){0,5}"
        r"|\(\d{2,5}\)[ .-]?\d{2,5}(?:[ .-]?\d{2,5}){0,3}"
        r"|\(\+\d{1,3}\)[ .-]?\d{1,14}(?:[ .-]\d{1,14}){0,5}"
        r"|\(?\d{1,5}\)?(?:[ .-]\(?\d{1,8}\)?){1,5}"
        r"|0\d{8,11}"
        r"|1[3-9]\d{9}"
        r"|8\d{10}"
        r"|[2-9]\d{2}[2-9]\d{6}"  # NANP: area code and exchange start with 2-9
        r"|\d{8,12}"  # any other plain digit run: a phone only with a context word (phone_needs_context)
        r")(?:\s?(?:x|ext\.?)\s?\d{1,6})?" + r"(?![\w\-@]|\.\d)",
        v.phone_ok,
        shrink_at=" ",
        shrink_prefix="+",
        needs_context=v.phone_needs_context,
        context_ok=v.phone_context_ok,
    ),
)

BUILTIN_NAMES = tuple(t.name for t in BUILTIN_TYPES)
SECRET_TYPES = frozenset(
    {
        "private_key",
        "aws_secret_key",
        "azure_key",
        "anthropic_key",
        "openai_key",
        "aws_access_key",
        "github_token",
        "slack_token",
        "google_api_key",
        "stripe_key",
        "gitlab_token",
        "huggingface_token",
        "npm_token",
        "sendgrid_key",
        "google_oauth_token",
        "google_client_secret",
        "jwt",
        "bearer_token",
        "url_password",
        "password_pair",
    }
)

# The grouped-number alternatives of the phone and card triggers, shared with RAW_TRIGGER_OVERRIDES below
# (which drops only their pure digit-run alternatives).
# phone: 2 groups hold >= 8 digits, so one side has 4; 3+ groups have digits between two separators
_PHONE_GROUPS = r"\(?\+\d|\(\d\d|\d{4}\)?[ .-]\(?\d|\d\)?[ .-]\(?\d{4}|\d\)?[ .-]\(?\d{1,8}\)?[ .-]\(?\d"
_CARD_GROUPS = r"\d{4}[ ._/-]\d{4}"

# Lower-case IBANs: two letters, check digits and the start of the BBAN. Codes made of hex letters (ad,
# ae, ba, be, de, ee) also start countless hex ids ("…de12cafe…"); those countries' BBANs begin with 8 digits,
# which the trigger then requires (a hex id rarely has 10 digits in a row).
_HEX_COUNTRIES = sorted(c.lower() for c in v.IBAN_LENGTHS if set(c.lower()) <= set("abcdef"))
_LOWER_IBAN = (
    r"(?:[g-z][a-z]|[a-f][g-z])\d{2} ?[a-z0-9]{4}|(?:" + "|".join(_HEX_COUNTRIES) + r")\d{2} ?\d{4} ?\d{4}"
)

# Hyperscan triggers: a cheap pattern per type that matches inside EVERY match of the type's full regex (a
# superset), so one Hyperscan pass over a whole batch finds every place worth a closer look. Full regexes
# with long bounded repeats are several times slower in Hyperscan; the exact check is Python's job.
# tests/processors/redaction/test_triggers.py checks the superset property.
TRIGGERS: dict[str, tuple[str, bool]] = {
    "private_key": (r"-----BEGIN ", False),
    "aws_secret_key": (r"secret[_.-]?(?:access[_.-]?)?key", True),
    "azure_key": (r"(?:account|sharedaccess)key\s*=|(?:[?&;]|%26|%3f)sig(?:=|%3d)", True),
    "anthropic_key": (r"sk-ant-", False),
    "openai_key": (r"sk-[A-Za-z0-9_-]{8}", False),
    "aws_access_key": (r"A(?:KIA|SIA|BIA|CCA|GPA|IDA|ROA|NPA|NVA|IPA)[A-Z0-9]{4}", False),
    "github_token": (r"gh[pousr]_|github_pat_", False),
    "slack_token": (r"xox[abposr]-|xapp-|hooks\.slack\.com", False),
    "google_api_key": (r"AIza", False),
    "stripe_key": (r"[sr]k_live_", False),
    "gitlab_token": (r"gl(?:pat|dt|rt|ptt|cbt|soat|oas|ft|imt|agent)-", False),
    "huggingface_token": (r"hf_[A-Za-z0-9]{8}", False),
    "npm_token": (r"npm_[A-Za-z0-9]{8}", False),
    "sendgrid_key": (r"SG\.[A-Za-z0-9_-]{22}\.", False),
    "google_oauth_token": (r"ya29\.|1//0[0-9A-Za-z_-]{8}", False),
    "google_client_secret": (r"GOCSPX-", False),
    "jwt": (r"eyJ[A-Za-z0-9_-]{8}", False),
    "bearer_token": (r"bearer\s", True),
    "url_password": (r"://[^/\s@]*:", False),
    "password_pair": (
        r"(?:pass(?:word|wd|phrase)?|pwd|secret|api[_-]?key|apikey|token)\\?[\"']?\s*[=:]",
        True,
    ),
    # or the UTF-8 encoding of a non-ASCII letter ending the local part ("josé@…")
    "email": (r"(?:[A-Za-z0-9._%+-]|[\xc2-\xf4][\x80-\xbf]{1,3})@[A-Za-z0-9]", False),
    "iban": (r"[A-Z]{2}\d{2} ?[A-Z0-9]{4}|" + _LOWER_IBAN, False),
    "credit_card": (r"\d{12}|" + _CARD_GROUPS, False),
    "us_ssn": (r"\d{3}[- ]\d{2}[- ]\d{4}", False),
    "ipv4": (r"\d\.\d{1,3}\.\d{1,3}\.\d", False),
    "ipv6": (r":[0-9A-Fa-f]{0,4}:", False),
    "phone": (_PHONE_GROUPS + r"|(?:^|[^0-9A-Fa-f])\d{8}", False),
}

# The scan of whole raw batches only needs to know *where* something may be, not which type it is. There the
# pure digit-run alternatives of phone and credit_card (\d{8}, \d{12}) are served by one shared
# \d{8}, which each of them contains: one digit-run automaton instead of three (~1.5 ms less per 1.4 MB).
RAW_TRIGGER_OVERRIDES: dict[str, tuple[str, bool]] = {
    "phone": (_PHONE_GROUPS, False),
    "credit_card": (r"\d{4}[ -]\d{4}", False),
    "iban": (r"[A-Z]{2}\d{2} ?[A-Z0-9]{4}", False),
}
# The rest of those types' triggers, in a second Hyperscan database for the raw scan together with the
# normalised copy's trigger: each database stays small enough for Hyperscan's fast engines (one database with
# everything scanned a 1.4 MB batch in ~6 ms, the two take ~3 ms, main's one ~2 ms).
RAW_SECOND_PASS: dict[str, tuple[str, bool]] = {
    "credit_card": (r"\d{4}[._/]\d{4}", False),
    "iban": (_LOWER_IBAN, False),
}
# Only the run itself: in the raw bytes the byte before a string is its length prefix (any byte, letters and
# digits included) and the byte after it the next field's tag, so no context may be required around it.
RAW_DIGIT_RUN: tuple[str, bool] = (r"\d{8}", False)
