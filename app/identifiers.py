"""Client-supplied identifiers that become telemetry attributes: model names and request ids.

A model name lands in span and log attributes and in metric labels (Prometheus series), and a request id in
span and log attributes and on the stderr log, which no sidecar redacts. So both are accepted only when they
are shaped like what they claim to be: ASCII, bounded, from a small alphabet, and free of anything the
pipeline treats as personal data or a secret (e-mail addresses, phone, card and SSN-like digit sequences,
IP addresses, API-key-like tokens). The rules are deliberately shape rules, not a PII scanner: a name that
is not a model name is refused (the client learns which field), never silently passed on.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re

MAX_MODEL_NAME_CHARS = 128
MAX_REQUEST_ID_CHARS = 128

# Letters, digits and the separators real model ids use (`gpt-4o-mini`, `meta-llama/Llama-3.1-8B`,
# `ft:gpt-4o-mini:org::abc`, `anthropic.claude-3-5-sonnet-20240620-v1:0`); `@` only as a final version tag
# without dots (`claude-3-5-sonnet-v2@20241022`), so no `user@domain.tld` fits.
_MODEL_SHAPE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._:/-])*(?:@[A-Za-z0-9_-]+)?")
_REQUEST_ID_SHAPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_LETTER = re.compile(r"[A-Za-z]")

# A calendar date as model versions write it (2024-08-06, 20240806): not a phone number.
_DATE = re.compile(
    r"(?<![0-9])(?:19|20)[0-9]{2}[-_.]?(?:0[1-9]|1[0-2])[-_.]?(?:0[1-9]|[12][0-9]|3[01])(?![0-9])"
)
# Nine or more digits, optionally one separator between them: phones (555-123-4567), SSNs (123-45-6789),
# cards (4111-1111-1111-1111, 4111111111111111), account numbers.
_LONG_DIGITS = re.compile(r"[0-9](?:[-._:/]?[0-9]){8,}")
_IPV4 = re.compile(r"(?<![0-9])[0-9]{1,3}(?:\.[0-9]{1,3}){3}(?![0-9])")
_IPV6_CANDIDATE = re.compile(r"[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*")
_EMAIL = re.compile(r"[^@\s]@[^@\s]*\.")
# Key prefixes of common providers (OpenAI, Stripe, GitHub, GitLab, Hugging Face, npm, Slack, AWS,
# Google, SendGrid) followed by key material.
_SECRET_PREFIX = re.compile(
    r"(?:^|[^A-Za-z0-9])(?:sk|pk|rk)[-_][A-Za-z0-9_-]{12,}|gh[pousr]_[A-Za-z0-9]{10,}|github_pat_|glpat-"
    r"|(?:^|[^A-Za-z0-9])hf_[A-Za-z0-9]{10,}|npm_[A-Za-z0-9]{10,}|xox[abprs]-|(?:AKIA|ASIA)[A-Z0-9]{12,}"
    r"|AIza[A-Za-z0-9_-]{20,}|ya29\.|SG\.[A-Za-z0-9_-]{10,}"
)
# A long run of mixed letters and digits is key material, not a model name.
_TOKEN_RUN = re.compile(r"[A-Za-z0-9]{20,}")
_HEX_ID = re.compile(r"(?<![0-9A-Za-z])(?=[0-9]*[a-fA-F])[0-9a-fA-F]{16,}(?![0-9A-Za-z])")


def _is_ipv6(candidate: str) -> bool:
    for start in range(len(candidate)):  # the address may start after a hex letter of a word (`db:...`)
        try:
            ipaddress.IPv6Address(candidate[start:].rstrip(":."))
            return True
        except ValueError:
            continue
    return False


def _sensitive(text: str, *, hex_runs_ok: bool) -> str | None:
    """Why ``text`` looks like personal data or a secret, or None."""
    if _EMAIL.search(text):
        return "contains an e-mail address"
    if _SECRET_PREFIX.search(text):
        return "contains an API key or token"
    undated = _DATE.sub("-", text)
    if hex_runs_ok:  # a long hex id with letters in it is not a phone or card number
        undated = _HEX_ID.sub("-", undated)
    if _LONG_DIGITS.search(undated):
        return "contains a long digit sequence (a phone, card or account number)"
    if _IPV4.search(text) or any(_is_ipv6(c) for c in _IPV6_CANDIDATE.findall(text)):
        return "contains an IP address"
    for run in _TOKEN_RUN.findall(text):
        if hex_runs_ok and all(c in "0123456789abcdefABCDEF" for c in run):
            continue
        if _LETTER.search(run) and any(c.isdigit() for c in run):
            return "contains a token-like run of letters and digits"
    return None


@functools.lru_cache(maxsize=4096)  # the same few names on every request
def model_name_problem(name: str) -> str | None:
    """Why ``name`` is not accepted as a model name, or None when it is model-shaped."""
    if len(name) > MAX_MODEL_NAME_CHARS:
        return f"must be at most {MAX_MODEL_NAME_CHARS} characters"
    if not _MODEL_SHAPE.fullmatch(name):
        return (
            "must be a model id: ASCII letters, digits and . _ - : / (an @version suffix allowed), "
            "starting with a letter or digit, without spaces or control characters"
        )
    if not _LETTER.search(name):
        return "must contain a letter"
    problem = _sensitive(name, hex_runs_ok=False)
    return f"is not a model name: it {problem}" if problem else None


def acceptable_request_id(value: str) -> bool:
    """True when a client's ``x-request-id`` may become an attribute (else the gateway makes its own)."""
    if len(value) > MAX_REQUEST_ID_CHARS or not _REQUEST_ID_SHAPE.fullmatch(value):
        return False
    if _UUID.fullmatch(value):
        return True
    # Ids are often hex (trace ids, uuid4().hex); letters-and-digits keys are not.
    return _sensitive(value, hex_runs_ok=True) is None


def request_id_for(client_id: str | None) -> str:
    """The request id for spans, logs and the stderr log: the client's own ``x-request-id`` when it is
    id-shaped (no e-mail, phone, key...), else a new one: ``req_`` and 128 random bits in hex, as
    ``uuid4().hex`` gave them (without building a UUID)."""
    if client_id and acceptable_request_id(client_id):
        return client_id
    return "req_" + os.urandom(16).hex()
