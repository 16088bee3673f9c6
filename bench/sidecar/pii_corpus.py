# ruff: noqa: E501
"""A labelled PII corpus generated offline: Faker values from many locales (checksum-valid cards and IBANs),
synthetic secrets of every supported kind, embedded in prose, log lines and JSON; plus hard negatives that
look like PII but are not (ids, digests, timestamps, versions, order numbers, code, URLs without credentials,
Luhn-invalid card-like numbers, IBANs with a wrong checksum)."""

from __future__ import annotations

import hashlib
import json
import random
import string
import uuid
from dataclasses import dataclass

from faker import Faker

from processors.redaction.patterns import BUILTIN_NAMES, SECRET_TYPES

LOCALES = [
    "en_US",
    "en_GB",
    "de_DE",
    "fr_FR",
    "es_ES",
    "it_IT",
    "nl_NL",
    "pt_BR",
    "ja_JP",
    "zh_CN",
    "ko_KR",
    "ru_RU",
    "pl_PL",
    "sv_SE",
    "en_AU",
    "en_IN",
    "hi_IN",
    "tr_TR",
    "da_DK",
    "fi_FI",
    "cs_CZ",
    "en_CA",
]
IBAN_LOCALES = [
    "de_DE",
    "fr_FR",
    "en_GB",
    "es_ES",
    "it_IT",
    "nl_NL",
    "pl_PL",
    "pt_PT",
    "fi_FI",
    "no_NO",
    "sv_SE",
    "da_DK",
    "de_AT",
    "de_CH",
    "en_IE",
    "cs_CZ",
    "tr_TR",
    "ro_RO",
    "hu_HU",
]
CARD_TYPES = [
    "visa16",
    "visa13",
    "visa19",
    "mastercard",
    "amex",
    "discover",
    "jcb16",
    "jcb15",
    "diners",
    "maestro",
]
TEMPLATES = [
    "Please contact me at {v} as soon as possible.",
    "{v}",
    "user={v} action=login status=ok",
    "My {label} is {v}, thanks!",
    '{{"role": "user", "content": "Here it is: {v}\\nregards"}}',
    "ERROR 2024-05-01T10:00:00Z handler failed for {v} (attempt 3)",
    'Customer said: "you can reach me on {v}".',
]


# Path and key placements: the value directly after "/", "." or "_" (a REST path segment, a span name, an
# attribute key). Only for the types detected there (processors/redaction/patterns.py, _KEY_SEP): cards,
# SSNs, IPv4 and phone numbers in international format.
SEPARATOR_TEMPLATES = [
    "GET /api/v1/{seg}/{v}/details",
    "POST /{seg}/{v}",
    "{seg}.{v}",
    "user.{seg}_{v}",
    "DELETE /v2/tenants/{n}/{seg}/{v}",
]
SEPARATOR_SEGMENTS = {"credit_card": "cards", "us_ssn": "ssn", "ipv4": "hosts", "phone": "phones"}
SEPARATOR_SHARE = 0.3


@dataclass(frozen=True)
class Sample:
    kind: str | None  # None = benign
    text: str
    value: str  # the sensitive part that must disappear (empty for benign)


def _tok(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


AL = string.ascii_letters + string.digits


def _secret(rng: random.Random, kind: str) -> tuple[str, str]:
    """(text as it would appear, value that must disappear)."""
    if kind == "openai_key":
        v = "sk-proj-" + _tok(rng, AL + "_-", 56)
        return v, v
    if kind == "anthropic_key":
        v = "sk-ant-api03-" + _tok(rng, AL + "_-", 93) + "AA"
        return v, v
    if kind == "aws_access_key":
        v = rng.choice(["AKIA", "ASIA"]) + _tok(rng, string.ascii_uppercase + "234567", 16)
        return v, v
    if kind == "github_token":
        v = (
            rng.choice(["ghp_", "gho_", "ghs_"]) + _tok(rng, AL, 36)
            if rng.random() < 0.5
            else "github_pat_" + _tok(rng, AL, 22) + "_" + _tok(rng, AL, 59)
        )
        return v, v
    if kind == "slack_token":
        v = (
            rng.choice(["xoxb-", "xoxp-"])
            + f"{rng.randint(10**10, 10**12)}-{rng.randint(10**10, 10**12)}-"
            + _tok(rng, AL, 24)
        )
        return v, v
    if kind == "google_api_key":
        v = "AIza" + _tok(rng, AL + "_-", 35)
        return v, v
    if kind == "stripe_key":
        v = rng.choice(["sk_live_", "rk_live_"]) + _tok(rng, AL, 24)
        return v, v
    if kind == "gitlab_token":
        v = rng.choice(["glpat-", "glpat-", "gldt-", "glrt-"]) + _tok(rng, AL + "_-", 20)
        return v, v
    if kind == "huggingface_token":
        v = "hf_" + _tok(rng, string.ascii_letters, 34)
        return v, v
    if kind == "npm_token":
        v = "npm_" + _tok(rng, AL, 36)
        return v, v
    if kind == "sendgrid_key":
        v = "SG." + _tok(rng, AL + "_-", 22) + "." + _tok(rng, AL + "_-", 43)
        return v, v
    if kind == "google_oauth_token":
        v = "ya29." + _tok(rng, AL + "_-", 120) if rng.random() < 0.7 else "1//0" + _tok(rng, AL + "_-", 99)
        return v, v
    if kind == "google_client_secret":
        v = "GOCSPX-" + _tok(rng, AL + "_-", 28)
        return v, v
    if kind == "jwt":
        import base64

        def b64(d: dict[str, object]) -> str:
            return base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")

        v = (
            f"{b64({'alg': 'HS256', 'typ': 'JWT'})}.{b64({'sub': str(rng.randint(1, 10**9)), 'iat': 1700000000})}."
            + _tok(rng, AL + "_-", 43)
        )
        return v, v
    if kind == "bearer_token":
        t = _tok(rng, AL + "._-", 40)
        return f"Authorization: Bearer {t}", t
    if kind == "private_key":
        body = "\n".join(_tok(rng, AL + "+/", 64) for _ in range(8))
        label = rng.choice(["RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY"])
        shape = rng.random()
        if shape < 0.2:  # cut short: no END line (a log line or preview that was truncated)
            v = f"-----BEGIN {label}-----\n{body[: rng.randint(300, len(body))]}"
        elif shape < 0.4:  # a PGP secret key block with its armour headers and checksum
            v = (
                f"-----BEGIN PGP PRIVATE KEY BLOCK-----\nVersion: GnuPG v2\n\n{body}\n="
                f"{_tok(rng, AL, 4)}\n-----END PGP PRIVATE KEY BLOCK-----"
            )
        elif shape < 0.5:  # newlines flattened to spaces (an environment variable)
            v = f"-----BEGIN {label}----- {body.replace(chr(10), ' ')} -----END {label}-----"
        else:
            v = f"-----BEGIN {label}-----\n{body}\n-----END {label}-----"
        return v, body.split("\n")[3]
    if kind == "aws_secret_key":
        key = _tok(rng, AL + "/+", 40)
        form = rng.choice(
            [
                "aws_secret_access_key = {}",
                "AWS_SECRET_ACCESS_KEY={}",
                '"SecretAccessKey": "{}"',
                "secret_key: {}",
            ]
        )
        return form.format(key), key
    if kind == "azure_key":
        shape = rng.random()
        if shape < 0.4:
            key = _tok(rng, AL + "+/", 86) + "=="
            text = (
                f"DefaultEndpointsProtocol=https;AccountName={_tok(rng, string.ascii_lowercase, 10)};"
                f"AccountKey={key};EndpointSuffix=core.windows.net"
            )
            return text, key
        if shape < 0.7:
            key = _tok(rng, AL + "+/", 43) + "="
            text = (
                f"Endpoint=sb://{_tok(rng, string.ascii_lowercase, 8)}.servicebus.windows.net/;"
                f"SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey={key}"
            )
            return text, key
        sig = _tok(rng, AL, 30) + "%2B" + _tok(rng, AL, 10) + "%3D"
        text = (
            f"https://{_tok(rng, string.ascii_lowercase, 10)}.blob.core.windows.net/c/b.txt?sv=2022-11-02"
            f"&ss=b&srt=co&sp=r&se=2026-01-01T00:00:00Z&spr=https&sig={sig}"
        )
        return text, sig
    if kind == "url_password":
        pw = _tok(rng, AL + "!$*", 14)
        return (
            f"{rng.choice(['postgres', 'mysql', 'redis', 'https', 'amqp'])}://app_user:{pw}@db.internal:5432/x",
            pw,
        )
    if kind == "password_pair":
        pw = _tok(rng, AL + "!#$%", 12)
        return rng.choice([f"password={pw}", f'"password": "{pw}"', f"PASSWORD: {pw}", f"api_key={pw}"]), pw
    raise ValueError(kind)


# every built-in type of the sidecar, PII first, then secrets in the scanner's priority order
SECRET_KINDS = [name for name in BUILTIN_NAMES if name in SECRET_TYPES]
PII_KINDS = ["email", "phone", "credit_card", "us_ssn", "iban", "ipv4", "ipv6"]
assert sorted(PII_KINDS + SECRET_KINDS) == sorted(BUILTIN_NAMES), "a built-in type has no corpus generator"
KINDS = PII_KINDS + SECRET_KINDS


def _value(rng: random.Random, fakers: dict[str, Faker], kind: str) -> tuple[str, str, str]:
    """(value text, must-disappear value, label word used in templates)."""
    loc = rng.choice(LOCALES)
    f = fakers[loc]
    if kind == "email":
        v = _email_shape(rng, f.email())
        return v, v, "email"
    if kind == "phone":
        v = f.phone_number()
        if rng.random() < 0.1:
            v = _digits_shape(rng, v)
        return v, v, "phone number"
    if kind == "credit_card":
        v = fakers["en_US"].credit_card_number(rng.choice(CARD_TYPES))
        if rng.random() < 0.5:
            sep = rng.choice(CARD_SEPARATORS)
            v = sep.join(v[i : i + 4] for i in range(0, len(v), 4))
        if rng.random() < 0.1:
            v = _digits_shape(rng, v)
        return v, v, "card number"
    if kind == "us_ssn":
        v = fakers["en_US"].ssn()
        if rng.random() < 0.1:
            v = _digits_shape(rng, v.replace("-", rng.choice(["-", "\u2011", "\u00a0"])))
        return v, v, "SSN"
    if kind == "iban":
        v = fakers[rng.choice(IBAN_LOCALES)].iban()
        if rng.random() < 0.3:
            v = " ".join(v[i : i + 4] for i in range(0, len(v), 4))
        if rng.random() < 0.2:
            v = v.lower()
        return v, v, "IBAN"
    if kind == "ipv4":
        v = f.ipv4()
        return v, v, "IP"
    if kind == "ipv6":
        v = f.ipv6()
        return v, v, "IP"
    text, value = _secret(rng, kind)
    return text, value, "token"


# the separators of grouped card numbers: the usual two, then dots, slashes, underscores, no-break, thin and
# narrow no-break spaces, en dashes
CARD_SEPARATORS = [" ", "-", " ", "-", ".", "/", "_", "\u00a0", "\u2009", "\u202f", "\u2013"]
# zeros of some decimal digit blocks (Unicode Nd): Arabic-Indic, Devanagari, Bengali, Thai, fullwidth
DIGIT_ZEROS = ["\u0660", "\u06f0", "\u0966", "\u09e6", "\u0e50", "\uff10"]


def _digits_shape(rng: random.Random, v: str) -> str:
    """The number written in another script's digits."""
    zero = ord(rng.choice(DIGIT_ZEROS))
    return "".join(chr(zero + int(c)) if c.isascii() and c.isdigit() else c for c in v)


def _email_shape(rng: random.Random, v: str) -> str:
    """Most addresses as they are; some percent-encoded, JSON-escaped, fullwidth or with a zero-width char."""
    r = rng.random()
    if r < 0.04:
        return v.replace("@", "%40")
    if r < 0.08:
        return v.replace("@", "\\u0040")
    if r < 0.11:
        return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in v)
    if r < 0.14:
        i = rng.randint(1, len(v) - 1)
        return v[:i] + rng.choice(["\u200b", "\u200d", "\u00ad", "\u2060"]) + v[i:]
    return v


def _negatives(rng: random.Random, n: int) -> list[str]:
    f = Faker("en_US")
    f.seed_instance(rng.randint(0, 10**9))
    makers = [
        lambda: str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        lambda: hashlib.sha256(rng.randbytes(16)).hexdigest(),
        lambda: hashlib.sha1(rng.randbytes(16)).hexdigest(),
        lambda: f"trace_id={rng.randbytes(16).hex()} span_id={rng.randbytes(8).hex()}",
        lambda: f.iso8601() + "Z",
        lambda: f.date_time().strftime("%a, %d %b %Y %H:%M:%S +0000"),
        lambda: (
            f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:"
            f"{rng.randint(0, 59):02d}.{rng.randint(0, 999):03d}"
        ),
        lambda: str(rng.randint(1_500_000_000, 1_800_000_000)),
        lambda: str(rng.randint(1_500_000_000_000, 1_800_000_000_000)),
        lambda: str(rng.randint(1_500_000_000_000_000_000, 1_800_000_000_000_000_000)),
        lambda: f"v{rng.randint(0, 20)}.{rng.randint(0, 40)}.{rng.randint(0, 200)}",
        lambda: f"{rng.randint(0, 20)}.{rng.randint(0, 40)}.{rng.randint(0, 200)}-rc.{rng.randint(1, 9)}",
        lambda: rng.choice(
            [
                "gpt-4o-mini-2024-07-18",
                "claude-3-5-sonnet-20241022",
                "gemini-2.5-flash-preview-05-20",
                "llama-3.1-405b-instruct",
                "mistral-large-2411",
                "text-embedding-3-large",
            ]
        ),
        lambda: f"ORD-{rng.randint(2019, 2025)}-{rng.randint(0, 999999):06d}",
        lambda: f"order #{rng.randint(10000, 99999999)}",
        lambda: f"INV-{rng.randint(100000, 999999)}-{rng.choice(string.ascii_uppercase)}",
        lambda: (
            f"checkout-{_tok(rng, 'abcdef0123456789', 9)}-{_tok(rng, 'abcdefghijklmnopqrstuvwxyz0123456789', 5)}"
        ),
        lambda: f"sha256:{hashlib.sha256(rng.randbytes(8)).hexdigest()}",
        lambda: f"https://{f.domain_name()}/{f.uri_path()}?page={rng.randint(1, 99)}",
        lambda: f"/var/log/app/{f.file_name(extension='log')}",
        lambda: f"${rng.randint(1, 99999):,}.{rng.randint(0, 99):02d}",
        lambda: f"{rng.random() * 100:.2f}%",
        lambda: f"took {rng.randint(1, 99999)}ms (p99 {rng.random() * 1000:.3f} ms)",
        lambda: rng.choice(
            [
                "def add(a, b):\n    return a + b",
                "for i in range(10):\n    print(i * 2)",
                'std::map<std::string, int> m; m["k"] = 1;',
                "SELECT count(*) FROM t WHERE id > 100;",
                "x := []int{1, 2, 3}",
                "if (a::b::c) { return 0x7fffffff; }",
            ]
        ),
        lambda: f"HTTP/1.1 {rng.choice([200, 404, 500])} {f.word()}",
        lambda: f.sentence(nb_words=12),
        lambda: (
            f"user_id={rng.randint(1, 10**6)} tenant=t-{rng.randint(1, 999)} tokens={rng.randint(1, 100000)}"
        ),
        lambda: (
            f"ISBN 978-{rng.randint(0, 9)}-{rng.randint(10, 99)}-{rng.randint(100000, 999999)}-{rng.randint(0, 9)}"
        ),
        lambda: f"lat {f.latitude()} lon {f.longitude()}",
        lambda: _luhn_invalid_card(rng),
        lambda: _bad_iban(rng, f),
        lambda: f"build {rng.randint(20200101, 20251231)}.{rng.randint(1, 9)}",
        lambda: f"{f.user_name()} pushed {rng.randint(1, 50)} commits to main",
        # percent-encoded URLs, JSON \u escapes and non-ASCII digits/spaces that hold no PII
        lambda: f"https://{f.domain_name()}/search?q={f.word()}%20{f.word()}&page={rng.randint(1, 99)}",
        lambda: f"redirect_uri=https%3A%2F%2F{f.domain_name()}%2Fcallback%3Fstate%3D{rng.randbytes(6).hex()}",
        lambda: f"name=Fran%C3%A7ois%20M%C3%BCller&city=K%C3%B6ln&n={rng.randint(1, 9999)}",
        lambda: json.dumps({"content": Faker("ja_JP").sentence(), "n": rng.randint(1, 10**6)}),
        lambda: json.dumps({"content": Faker("ru_RU").sentence()}),
        lambda: (
            f"\u0627\u0644\u0633\u0639\u0631 {_digits_shape(rng, str(rng.randint(1, 99999)))} \u0631\u064a\u0627\u0644"
        ),
        lambda: f"{rng.randint(1, 999)}\u00a0{rng.randint(100, 999)}\u00a0€ le {rng.randint(1, 28)}\u00a0mai",
        lambda: (
            f"{rng.randint(2019, 2026)}\u2013{rng.randint(2019, 2026)} season, {rng.randint(1, 99)}\u2009km"
        ),
        lambda: f"\uff08{rng.randint(1, 99)}\uff09\u4ef6\uff0c\u4ef7\u683c {rng.randint(1, 9999)}\u5143",
        lambda: f"ver\u200bsion {rng.randint(0, 9)}.{rng.randint(0, 99)}.{rng.randint(0, 999)}\ufeff",
        lambda: hashlib.md5(rng.randbytes(8)).hexdigest(),
        # REST paths with numeric ids (auto-increment, epoch ms, snowflakes, a 16-digit id failing Luhn),
        # versions, decimals, dates, UUIDs and hashes right after "/", "." or "_" (span names, keys)
        lambda: f"GET /api/v{rng.randint(1, 3)}/orders/{rng.randint(1, 99_999_999)}",
        lambda: f"/users/{rng.randint(1, 9_999_999_999)}/posts/{rng.randint(1, 999_999)}",
        lambda: f"GET /events/{rng.randint(1_500_000_000_000, 1_800_000_000_000)}",
        lambda: f"/channels/{rng.randint(10**18, 2 * 10**18)}/messages/{rng.randint(10**18, 2 * 10**18)}",
        lambda: f"GET /orders/{_luhn_invalid_card(rng).replace(' ', '')}",
        lambda: (
            f"/pkg/v{rng.randint(0, 20)}.{rng.randint(0, 40)}.{rng.randint(0, 200)}.{rng.randint(0, 255)}/x.tgz"
        ),
        lambda: f"lib.so.{rng.randint(0, 9)}.{rng.randint(0, 99)}.{rng.randint(0, 99)}",
        lambda: f"python{rng.randint(2, 3)}.{rng.randint(0, 13)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}",
        lambda: f"score.{rng.random()!r} ratio={rng.random()!r}",
        lambda: f"metric.p{rng.randint(50, 99)}.{rng.randint(0, 9999)}",
        lambda: f"oid 1.3.6.1.4.1.{rng.randint(1, 60000)}.{rng.randint(1, 99)}.{rng.randint(1, 9)}",
        lambda: (
            f"/archive/{rng.randint(2000, 2026)}/{rng.randint(1, 12):02d}/{rng.randint(1, 28):02d}/index.html"
        ),
        lambda: f"/objects/{uuid.UUID(int=rng.getrandbits(128), version=4)}",
        lambda: f"/blobs/sha1/{hashlib.sha1(rng.randbytes(8)).hexdigest()}",
        lambda: f"cache_{rng.randint(1, 99_999_999)}.hits",
    ]
    return [rng.choice(makers)() if rng.random() < 0.6 else _number_line(rng) for _ in range(n)]


def _number_line(rng: random.Random) -> str:
    """Counters, ids, durations, ports, epoch numbers, prices and quantities next to each other: ordinary
    numbers that a loose phone pattern glues together ("request 60 698216")."""
    r = rng.randint
    makers = [
        lambda: f"handled synthetic request {r(0, 99999)} {rng.randbytes(3).hex()}",
        lambda: f"request {r(0, 999)} {r(0, 999999):06d}",
        lambda: f"took {r(1, 999)} {r(100000, 999999)} ns",
        lambda: f"retry {r(1, 5)} of {r(5, 9)}, {r(1_600_000_000, 1_800_000_000)}",
        lambda: f"build {r(2019, 2026)} {r(1, 12):02d} {r(1, 28):02d}",
        lambda: f"port {r(1024, 65535)} pid {r(100, 4_194_304)}",
        lambda: f"worker {r(0, 64)} pid {r(1000, 999999)} fd {r(3, 65535)} conn {r(1, 99999)}",
        lambda: (
            f"GET /api/v1/items/{r(1, 99999)} {rng.choice([200, 201, 404, 500])} {r(0, 99999)} {r(1, 9999)}ms"
        ),
        lambda: f"batch {r(1, 9999)} items {r(1, 99999)} bytes {r(1000, 99_999_999)}",
        lambda: f"order {r(1000, 99999)} {r(100000, 9999999)} qty {r(1, 500)}",
        lambda: f"price {r(1, 99)} {r(100, 999)}.{r(0, 99):02d} EUR",
        lambda: f"total: {r(1, 9)} {r(100, 999)} {r(100, 999)}.{r(0, 99):02d}",
        lambda: f"{r(1, 999)} {r(100, 999)} {r(100, 999)} rows scanned",
        lambda: f"seq {r(1, 99_999_999)} ts {r(1_600_000_000_000, 1_800_000_000_000)}",
        lambda: f"tokens in {r(1, 99999)} out {r(1, 9999)} total {r(1, 999999)}",
        lambda: f"span {r(0, 511)} of {r(512, 4096)} epoch {r(1_600_000_000, 1_800_000_000)}",
        lambda: f"line {r(1, 9999)} col {r(1, 200)} offset {r(1000, 9_999_999)}",
        lambda: (
            f"{r(10, 99)} {r(1000, 9999)} {r(1000, 9999)} {rng.choice(['ok', 'hits', 'misses', 'evicted'])}"
        ),
        lambda: f"id {r(100, 999)} {r(100, 999)} {r(100, 999)} status {r(0, 9)}",
        lambda: (
            f"step {r(1, 99)}/{r(100, 999)} loss {rng.random():.4f} lr {r(1, 9)}e-{r(3, 6)} {r(10000, 999999)} samples"
        ),
        lambda: f"shard {r(0, 99)} {r(10_000_000, 99_999_999)} keys",
        lambda: f"v{r(1, 9)} {r(0, 99)} {r(0, 999)} {r(100000, 999999)}",
        lambda: f"{r(1, 9)} {r(100, 999)} {r(100, 999)} {r(100, 999)} bytes",
        lambda: (
            f"elapsed {r(0, 23):02d}:{r(0, 59):02d}:{r(0, 59):02d}.{r(100000, 999999)} ({r(1, 99)} {r(100, 999)} µs)"
        ),
        lambda: f"[{r(0, 99999)}] {r(10000, 99999)}-{r(10000, 99999)} queued",
        lambda: f"queue depth {r(0, 999)} {r(0, 999)} {r(0, 999)} {r(0, 999)}",
        lambda: f"{r(1, 9)} {r(100, 999)}.{r(0, 99):02d} USD for {r(1, 99)} units",
        lambda: f"gc {r(1, 99)} freed {r(10000, 99_999_999)} bytes in {r(1, 999)} ms",
        lambda: f"cpu {r(0, 99)} {r(0, 999999)} {r(0, 999999)} {r(0, 999999)}",
        lambda: f"node-{r(1, 99)} {r(1_600_000_000, 1_800_000_000)} {r(0, 999)}",
    ]
    return rng.choice(makers)()


def _luhn_invalid_card(rng: random.Random) -> str:
    from processors.redaction.validators import luhn_ok

    while True:
        digits = "4" + "".join(rng.choice(string.digits) for _ in range(15))
        if not luhn_ok(digits):
            return " ".join(digits[i : i + 4] for i in range(0, 16, 4))


def _bad_iban(rng: random.Random, f: Faker) -> str:
    iban = Faker("de_DE").iban()
    check = int(iban[2:4])
    return iban[:2] + f"{(check + rng.randint(1, 50)) % 97 + 2:02d}"[-2:] + iban[4:]


def build_corpus(per_kind: int, negatives: int, seed: int = 11) -> list[Sample]:
    rng = random.Random(seed)
    # sorted: the same seed for the same locale in every run (set order depends on PYTHONHASHSEED)
    fakers = {loc: Faker(loc) for loc in sorted(set(LOCALES) | set(IBAN_LOCALES))}
    for i, fk in enumerate(fakers.values()):
        fk.seed_instance(seed + i)
    samples: list[Sample] = []
    for kind in KINDS:
        for _ in range(per_kind):
            text, value, label = _value(rng, fakers, kind)
            template = rng.choice(TEMPLATES)
            if (
                kind in SEPARATOR_SEGMENTS
                and (kind != "phone" or text.startswith("+"))
                and rng.random() < SEPARATOR_SHARE
            ):
                template = rng.choice(SEPARATOR_TEMPLATES).replace("{seg}", SEPARATOR_SEGMENTS[kind])
                template = template.replace("{n}", str(rng.randint(1, 99999)))
            if template.startswith('{{"role"'):
                text = json.dumps(text)[1:-1]  # as it appears inside a JSON string
                value = json.dumps(value)[1:-1]  # (non-ASCII characters as \u escapes)
            samples.append(Sample(kind, template.format(v=text, label=label), value))
    samples += [Sample(None, t, "") for t in _negatives(rng, negatives)]
    return samples
