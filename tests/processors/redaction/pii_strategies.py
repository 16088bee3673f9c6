"""Hypothesis strategies for PII values (checksum-valid where a checksum exists) and benign look-alikes."""

from __future__ import annotations

import hashlib
import string

from hypothesis import strategies as st

from processors.redaction.validators import IBAN_LENGTHS

_alnum = string.ascii_letters + string.digits


def _luhn_complete(body: str) -> str:
    for check in "0123456789":
        digits = body + check
        total = 0
        for i, ch in enumerate(reversed(digits)):
            d = int(ch)
            if i % 2:
                d = d * 2 - 9 if d > 4 else d * 2
            total += d
        if total % 10 == 0:
            return digits
    raise AssertionError("unreachable")


@st.composite
def cards(draw: st.DrawFn) -> str:
    prefix, length = draw(
        st.sampled_from(
            [
                ("4", 16),
                ("4", 13),
                ("51", 16),
                ("55", 16),
                ("2221", 16),
                ("34", 15),
                ("37", 15),
                ("6011", 16),
                ("65", 16),
                ("3528", 16),
                ("36", 14),
                ("62", 19),
            ]
        )
    )
    body = prefix + "".join(
        draw(
            st.lists(
                st.sampled_from("0123456789"),
                min_size=length - len(prefix) - 1,
                max_size=length - len(prefix) - 1,
            )
        )
    )
    number = _luhn_complete(body)
    sep = draw(st.sampled_from(["", " ", "-"]))
    if sep:
        number = sep.join(number[i : i + 4] for i in range(0, len(number), 4))
    return number


@st.composite
def ssns(draw: st.DrawFn) -> str:
    area = draw(st.integers(1, 899).filter(lambda a: a != 666))
    return f"{area:03d}-{draw(st.integers(1, 99)):02d}-{draw(st.integers(1, 9999)):04d}"


@st.composite
def ibans(draw: st.DrawFn) -> str:
    country = draw(st.sampled_from(sorted(IBAN_LENGTHS)))
    bban = "".join(
        draw(
            st.lists(
                st.sampled_from(string.digits),
                min_size=IBAN_LENGTHS[country] - 4,
                max_size=IBAN_LENGTHS[country] - 4,
            )
        )
    )
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    check = 98 - int(numeric) % 97
    iban = f"{country}{check:02d}{bban}"
    if draw(st.booleans()):
        iban = " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))
    return iban


@st.composite
def emails(draw: st.DrawFn) -> str:
    local = draw(st.from_regex(r"[a-z0-9]([a-z0-9._+-]{0,20}[a-z0-9])?", fullmatch=True))
    labels = draw(
        st.lists(st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True), min_size=1, max_size=3)
    )
    tld = draw(st.sampled_from(["com", "org", "de", "co.uk", "io", "fr", "jp", "example"]))
    return f"{local}@{'.'.join(labels)}.{tld}"


ipv4s = st.ip_addresses(v=4).filter(lambda a: not (a.is_loopback or a.is_unspecified)).map(str)
ipv6s = (
    st.ip_addresses(v=6).map(lambda a: a.compressed).filter(lambda s: sum(1 for g in s.split(":") if g) >= 2)
)


def _token(alphabet: str, n: int) -> st.SearchStrategy[str]:
    return st.text(alphabet, min_size=n, max_size=n)


secrets = st.one_of(
    _token(_alnum, 48).map(lambda t: "sk-proj-" + t),
    _token(_alnum + "_-", 90).map(lambda t: "sk-ant-api03-" + t),
    _token(string.ascii_uppercase + string.digits, 16).map(lambda t: "AKIA" + t),
    _token(_alnum, 36).map(lambda t: "ghp_" + t),
    _token(_alnum + "_", 82).map(lambda t: "github_pat_" + t),
    _token(_alnum, 24).map(lambda t: "xoxb-1234567890-" + t),
    _token(_alnum + "_-", 35).map(lambda t: "AIza" + t),
    _token(_alnum, 24).map(lambda t: "sk_live_" + t),
    _token(_alnum + "_-", 20).map(lambda t: "glpat-" + t),
    _token(string.ascii_letters, 34).map(lambda t: "hf_" + t),
    _token(_alnum, 36).map(lambda t: "npm_" + t),
    st.tuples(_token(_alnum + "_-", 22), _token(_alnum + "_-", 43)).map(lambda p: f"SG.{p[0]}.{p[1]}"),
    _token(_alnum + "_-", 60).map(lambda t: "ya29." + t),
    _token(_alnum + "_-", 28).map(lambda t: "GOCSPX-" + t),
    st.tuples(_token(_alnum, 20), _token(_alnum, 30), _token(_alnum + "_-", 43)).map(
        lambda p: f"eyJ{p[0]}.eyJ{p[1]}.{p[2]}"
    ),
)
# secret values that appear with a marker; the marker is kept, the value must go
marked_secrets = st.one_of(
    _token(_alnum, 32).map(lambda t: (f"Authorization: Bearer {t}", t)),
    _token(_alnum, 12).map(lambda t: (f"postgres://app:{t}@db.internal:5432/x", t)),
    _token(_alnum, 12).map(lambda t: (f"password={t}", t)),
)
phones_international = st.tuples(
    st.sampled_from(["+1", "+44", "+49", "+33", "+81", "+34", "+39", "+55", "+91"]), _token(string.digits, 10)
).map(lambda p: f"{p[0]} {p[1][:3]} {p[1][3:6]} {p[1][6:]}")

pii_values = st.one_of(cards(), ssns(), ibans(), emails(), ipv4s, ipv6s, secrets, phones_international)

# --- benign -----------------------------------------------------------------------------------------
MODEL_NAMES = [
    "gpt-4o-mini",
    "gpt-4.1-2025-04-14",
    "claude-sonnet-4-5-20250929",
    "gemini-2.5-flash",
    "llama-3.1-70b-instruct",
    "mistral-large-2411",
    "o3-mini",
    "text-embedding-3-small",
]
CODE = [
    "def f(x):\n    return x * 2",
    "for (int i = 0; i < n; i++) { sum += a[i]; }",
    "std::vector<int> v{1, 2, 3};",
    "SELECT id, total FROM orders WHERE created_at > now() - interval '1 day'",
    "const re = /^[a-z]+$/i;",
    'if err != nil { return fmt.Errorf("read: %w", err) }',
]

_versions = st.tuples(st.integers(0, 30), st.integers(0, 99), st.integers(0, 999))
# counters, ids, durations, prices next to each other (a loose phone pattern glued them into "<PHONE>")
numbers_in_prose = st.one_of(
    st.tuples(st.integers(0, 99_999), st.binary(min_size=3, max_size=3)).map(
        lambda p: f"handled synthetic request {p[0]} {p[1].hex()}"
    ),
    st.tuples(st.integers(0, 999), st.integers(0, 999_999)).map(lambda p: f"request {p[0]} {p[1]:06d}"),
    st.tuples(st.integers(1, 999), st.integers(100_000, 999_999)).map(lambda p: f"took {p[0]} {p[1]} ns"),
    st.tuples(st.integers(1, 9), st.integers(1_600_000_000, 1_800_000_000)).map(
        lambda p: f"retry {p[0]} of 5, {p[1]}"
    ),
    st.tuples(st.integers(2000, 2030), st.integers(1, 12), st.integers(1, 28)).map(
        lambda p: f"build {p[0]} {p[1]:02d} {p[2]:02d}"
    ),
    st.tuples(st.integers(1, 65535), st.integers(1, 4_194_304)).map(lambda p: f"port {p[0]} pid {p[1]}"),
    st.lists(  # a log line with several labelled numbers
        st.tuples(
            st.sampled_from(["worker", "pid", "fd", "conn", "bytes", "rows", "ms"]), st.integers(0, 10**8)
        ),
        min_size=2,
        max_size=6,
    ).map(lambda kv: " ".join(f"{k} {n}" for k, n in kv)),
    st.tuples(st.integers(1, 99), st.integers(0, 999), st.integers(0, 99)).map(
        lambda p: f"price {p[0]} {p[1]:03d}.{p[2]:02d} EUR"
    ),
    st.tuples(st.integers(1, 999), st.integers(0, 999), st.integers(0, 999)).map(
        lambda p: f"qty {p[0]} {p[1]:03d} {p[2]:03d} units"
    ),
    st.tuples(st.integers(1, 99_999_999), st.integers(1_600_000_000_000, 1_800_000_000_000)).map(
        lambda p: f"seq {p[0]} ts {p[1]}"
    ),
)

benign_tokens = st.one_of(
    st.uuids().map(str),
    st.binary(min_size=1, max_size=64).map(lambda b: hashlib.sha256(b).hexdigest()),
    st.binary(min_size=1, max_size=64).map(lambda b: hashlib.sha1(b).hexdigest()),
    st.binary(min_size=8, max_size=8).map(bytes.hex),  # span ids
    st.binary(min_size=16, max_size=16).map(bytes.hex),  # trace ids
    st.datetimes(
        min_value=__import__("datetime").datetime(1971, 1, 1),
        max_value=__import__("datetime").datetime(2099, 1, 1),
    ).map(lambda d: d.isoformat() + "Z"),
    st.integers(1_000_000_000, 2_000_000_000).map(str),  # epoch seconds
    st.integers(1_000_000_000_000, 2_000_000_000_000).map(str),  # epoch milliseconds
    _versions.map(lambda v: "v{}.{}.{}".format(*v)),
    _versions.map(lambda v: "{}.{}.{}".format(*v)),
    st.sampled_from(MODEL_NAMES),
    st.sampled_from(CODE),
    st.integers(0, 999_999).map(lambda n: f"ORD-2024-{n:06d}"),
    st.integers(0, 99_999).map(lambda n: f"order #{n}"),
    st.tuples(
        st.sampled_from(["https://api.example.com", "http://localhost:8000", "https://docs.python.org"]),
        st.from_regex(r"/[a-z0-9/_-]{0,20}", fullmatch=True),
    ).map("".join),
    st.floats(0, 10_000, allow_nan=False).map(lambda f: f"{f:.3f} ms"),
    st.integers(0, 10**6).map(lambda n: f"{n} tokens"),
    numbers_in_prose,
)
benign_texts = st.lists(benign_tokens, min_size=1, max_size=8).map(" ".join)
separators = st.sampled_from([" ", "\n", ": ", " (", '"', ", ", "\t", "<"])
