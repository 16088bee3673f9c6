# ruff: noqa: RUF001
"""Shapes that used to slip by: encoded text (percent, JSON \\u), look-alike characters (fullwidth,
zero-width, non-ASCII digits, other spaces and dashes), lower-case IBANs, cards with other separators.
Positive and negative cases, as text and through the whole pipeline (the raw-bytes trigger must see them)."""

from __future__ import annotations

import json
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from processors.config import SidecarConfig
from processors.handlers import Pipeline
from processors.redaction.config import RedactionConfig
from processors.redaction.normalise import FOLD, normalise
from processors.redaction.scanner import PiiScanner
from tests.processors.helpers import span, trace_request
from tests.processors.redaction import pii_strategies as ps

SCANNER = PiiScanner(RedactionConfig())
PIPELINE = Pipeline(SidecarConfig())


def scan(text: str) -> str:
    hits = SCANNER.candidate_hits([text])
    if 0 not in hits:
        return text
    result = SCANNER.redact_text(text, hits[0], hits[0])
    return text if result is None else result[0]


def through_pipeline(text: str) -> str:
    raw = trace_request(span("s", {"note": text})).SerializeToString()
    out = ExportTraceServiceRequest.FromString(PIPELINE.process_traces(raw).payload)
    return str(out.resource_spans[0].scope_spans[0].spans[0].attributes[0].value.string_value)


def fullwidth(s: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in s)


def digits_in(zero: str, s: str) -> str:
    """``s`` with its ASCII digits written in the digit block starting at ``zero``."""
    return "".join(chr(ord(zero) + int(c)) if c.isascii() and c.isdigit() else c for c in s)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail jane.doe%40example.com now", "mail <EMAIL> now"),
        ("next=%2Fhome%3Fuser%3Djane%40example.com&x=1", "next=%2Fhome%3Fuser%3D<EMAIL>&x=1"),
        ('{"content": "mail jane\\u0040example.com"}', '{"content": "mail <EMAIL>"}'),
        ("ｊａｎｅ＠ｅｘａｍｐｌｅ．ｃｏｍ", "<EMAIL>"),
        ("jo\u200bhn.doe@exa\u200dmple.com", "<EMAIL>"),
        ("jane\u00ad@example.com", "<EMAIL>"),
        ("card ٤١١١ ١١١١ ١١١١ ١١١١", "card <CREDIT_CARD>"),
        ("card ４１１１ １１１１ １１１１ １１１１", "card <CREDIT_CARD>"),
        ("card 4111\u00a01111\u00a01111\u00a01111", "card <CREDIT_CARD>"),
        ("card 4111\u20091111\u20091111\u20091111", "card <CREDIT_CARD>"),
        ("card 4111\u202f1111\u202f1111\u202f1111", "card <CREDIT_CARD>"),
        ("card 4111\u20131111\u20131111\u20131111", "card <CREDIT_CARD>"),
        ("card 4111.1111.1111.1111 ok", "card <CREDIT_CARD> ok"),
        ("card 4111/1111/1111/1111", "card <CREDIT_CARD>"),
        ("card 4111_1111_1111_1111", "card <CREDIT_CARD>"),
        ("card 4111%201111%201111%201111", "card <CREDIT_CARD>"),
        ("ssn 078\u201105\u20111120", "ssn <US_SSN>"),
        ("ssn ०७८-०५-११२०", "ssn <US_SSN>"),
        ("iban de89 3704 0044 0532 0130 00", "iban <IBAN>"),
        ("iban gb82west12345698765432.", "iban <IBAN>."),
        ("tel:%2B49%2030%20123456789", "tel:<PHONE>"),
        ("call +49\u00a030\u00a0123456789", "call <PHONE>"),
        ("from 10\uff0e1\uff0e2\uff0e3", "from <IPV4>"),
        ("key=ＡＫＩＡＩＯＳＦＯＤＮＮ７ＥＸＡＭＰＬＥ", "key=<AWS_ACCESS_KEY>"),
        ("postgres://app:hunter2%40x@db:5432/x", "postgres://app:<URL_PASSWORD>@db:5432/x"),
    ],
)
def test_encoded_and_look_alike_pii_is_found(text: str, expected: str) -> None:
    assert scan(text) == expected
    assert through_pipeline(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "https://example.com/search?q=hello%20world&lang=en",
        "https://example.com/a%2Fb%2Fc?redirect=%2Fhome%3Ftab%3D2",
        "path=%2Fvar%2Flog%2Fapp.log size=100%25",
        "name=Fran%C3%A7ois%20M%C3%BCller",
        '{"text": "caf\\u00e9 cr\\u00e8me \\u4e2d\\u6587"}',
        "price ４５０円, ＶＥＲＳＩＯＮ １．２．３",
        "2024\u201305\u201301 – the release",
        "sha de12a3b4c5d6e7f8a9b0c1d2e3f4a5b6c7d8e9f0 ok",
        "ab12cdef34 de45 6789",
        "v1.2.3 build 2024/05/01 took 1234.5678 ms",
        "uuid 123e4567-e89b-12d3-a456-426614174000",
        "De89 3704 0044 0532 0130 00 mixed case",
        "card-like 4111.1111.1111.1112 (Luhn fails)",
        "zero\u200bwidth\u200cjoin\u200d text \ufeff",
        "١٢٣ items, ٤٥ minutes",
    ],
)
def test_benign_encoded_and_unicode_text_is_untouched(text: str) -> None:
    assert scan(text) == text
    assert through_pipeline(text) == text


def test_a_replacement_covers_the_whole_encoded_span() -> None:
    text = "x jo\u200bhn%2Edoe\\u0040ex\uff41mple.com y"
    assert scan(text) == "x <EMAIL> y"


@settings(max_examples=150, deadline=None)
@given(
    value=st.one_of(ps.cards(), ps.ssns(), ps.phones_international),
    zero=st.characters(categories=["Nd"]).map(lambda c: chr(ord(c) - unicodedata.digit(c))),
    before=ps.benign_texts,
)
def test_pii_in_any_unicode_digits_is_redacted(value: str, zero: str, before: str) -> None:
    text = before + " " + digits_in(zero, value)
    out = through_pipeline(text)
    assert digits_in(zero, value) not in out


@settings(max_examples=150, deadline=None)
@given(
    value=st.one_of(ps.cards().filter(lambda c: " " in c), ps.ssns(), ps.phones_international),
    sep=st.one_of(st.characters(categories=["Zs"]), st.characters(categories=["Pd"])),
)
def test_pii_grouped_with_any_unicode_space_or_dash_is_redacted(value: str, sep: str) -> None:
    shaped = value.replace(" ", sep) if " " in value else value.replace("-", sep)
    assert shaped not in through_pipeline("note " + shaped)


@settings(max_examples=150, deadline=None)
@given(
    email=ps.emails(),
    fmt=st.characters(categories=["Cf"]).filter(lambda c: ord(c) in FOLD),
    at=st.integers(1, 30),
    how=st.sampled_from(["cf", "fullwidth", "percent", "json"]),
)
def test_emails_hidden_by_format_chars_fullwidth_or_escapes_are_redacted(
    email: str, fmt: str, at: int, how: str
) -> None:
    if how == "cf":
        i = min(at, len(email) - 1)
        shaped = email[:i] + fmt + email[i:]
    elif how == "fullwidth":
        shaped = fullwidth(email)
    elif how == "percent":
        shaped = email.replace("@", "%40").replace(".", "%2E")
    else:
        shaped = email.replace("@", "\\u0040")
    out = through_pipeline("mail " + shaped + " ok")
    assert out == "mail <EMAIL> ok", (shaped, out)


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=60))
def test_the_offset_map_gives_back_the_original_characters(text: str) -> None:
    for candidate in (text, json.dumps(text), json.dumps(text, ensure_ascii=False)):
        norm = normalise(candidate)
        if norm is None:
            continue
        # every character of the copy maps to a non-empty, ordered span of the original
        last = 0
        for i in range(len(norm.text)):
            s, e = norm.original_span(i, i + 1)
            assert last <= s < e <= len(candidate)
            last = s
        assert norm.original_span(0, len(norm.text))[1] <= len(candidate)


# --- token formats --------------------------------------------------------------------------------------
_A20 = "aB3dE6gH9jK2mN5pQ8sT"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"GITLAB_TOKEN=glpat-{_A20}", "GITLAB_TOKEN=<GITLAB_TOKEN>"),
        (f"deploy gldt-{_A20}xyz ok", "deploy <GITLAB_TOKEN> ok"),
        (f"runner glrt-{_A20}.01.abc9", "runner <GITLAB_TOKEN>"),
        ("HF_TOKEN=hf_" + "abcdefghijklmnopqrstuvwxyzABCDEFGH", "HF_TOKEN=<HUGGINGFACE_TOKEN>"),
        ("//registry.npmjs.org/:_authToken=npm_" + "a1" * 18, "//registry.npmjs.org/:_authToken=<NPM_TOKEN>"),
        ("key SG." + _A20 + "xy." + _A20 * 2 + "abc", "key <SENDGRID_KEY>"),
        ('{"access_token": "ya29.' + _A20 * 3 + '"}', '{"access_token": "<GOOGLE_OAUTH_TOKEN>"}'),
        ("refresh_token 1//0g" + _A20 * 2, "refresh_token <GOOGLE_OAUTH_TOKEN>"),
        ("client GOCSPX-" + _A20 + "12345678", "client <GOOGLE_CLIENT_SECRET>"),
    ],
)
def test_token_formats_are_found(text: str, expected: str) -> None:
    assert scan(text) == expected
    assert through_pipeline(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "hf_hub_download(repo_id='gpt2') and hf_transfer",
        "hf_model_configuration_loader_for_tokenizers",
        "npm_config_registry npm_package_version=1.2.3",
        "glpat- is the GitLab prefix; gl-rt-runner",
        "SG.x.y SG.short.token",
        "ya29 and ya29.short; 1//0 in a path",
        "GOCSPX-short",
        "sha256 " + "a1b2" * 16,
    ],
)
def test_token_look_alikes_are_untouched(text: str) -> None:
    assert scan(text) == text


# --- PEM / PGP blocks, cloud KEY=value ----------------------------------------------------------------
_BODY = (
    "MIIEowIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MhgHcTz6sE2I2yPB\naFDrBz9vFqU4yOnMQf3NdvPLDeLyEzRvk+P4"
)
_AWS = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
_AZ = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            f"-----BEGIN RSA PRIVATE KEY-----\n{_BODY}\n-----END RSA PRIVATE KEY-----\nnext",
            "<PRIVATE_KEY>\nnext",
        ),
        (f"cut: -----BEGIN PRIVATE KEY-----\n{_BODY[:70]}", "cut: <PRIVATE_KEY>"),
        (
            f"cut: -----BEGIN PRIVATE KEY-----\n{_BODY[:70]}\n\nthat was all",
            "cut: <PRIVATE_KEY>\n\nthat was all",
        ),
        (
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,0A1B\n\n"
            + _BODY,
            "<PRIVATE_KEY>",
        ),
        (
            '{"k": "-----BEGIN EC PRIVATE KEY-----\\n' + _BODY.replace("\n", "\\n") + '\\n"}',
            '{"k": "<PRIVATE_KEY>\\n"}',
        ),
        (
            f"-----BEGIN PGP PRIVATE KEY BLOCK-----\nVersion: GnuPG v2\n\nlQOYBF{_BODY}\n=abCD\n"
            "-----END PGP PRIVATE KEY BLOCK-----",
            "<PRIVATE_KEY>",
        ),
        (f"-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlQOYBF{_BODY}", "<PRIVATE_KEY>"),
        (f"aws_secret_access_key = {_AWS}", "aws_secret_access_key = <AWS_SECRET_KEY>"),
        (f"export AWS_SECRET_ACCESS_KEY={_AWS}", "export AWS_SECRET_ACCESS_KEY=<AWS_SECRET_KEY>"),
        (f'{{"SecretAccessKey": "{_AWS}"}}', '{"SecretAccessKey": "<AWS_SECRET_KEY>"}'),
        (f'secret_key = "{_AWS}"', 'secret_key = "<AWS_SECRET_KEY>"'),
        (
            f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={_AZ};EndpointSuffix=core.windows.net",
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=<AZURE_KEY>;EndpointSuffix=core.windows.net",
        ),
        (
            "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=Root;SharedAccessKey=" + _AZ[:44],
            "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=Root;SharedAccessKey=<AZURE_KEY>",
        ),
        (
            "https://a.blob.core.windows.net/c/b?sv=2022-11-02&sp=r&sig=abcDEF%2Bghi%2FjklMNOpqrST%3D&x=1",
            "https://a.blob.core.windows.net/c/b?sv=2022-11-02&sp=r&sig=<AZURE_KEY>&x=1",
        ),
    ],
)
def test_key_blocks_and_cloud_secrets_are_found(text: str, expected: str) -> None:
    assert scan(text) == expected
    assert through_pipeline(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n-----END PUBLIC KEY-----",
        "-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+gAwIBAgIEAgAAuTANBgkqhkiG\n-----END CERTIFICATE-----",
        "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmQENBF\n-----END PGP PUBLIC KEY BLOCK-----",
        "set secret_key and aws_secret_access_key in ~/.aws/credentials",
        "secret_key = short-value",
        "AccountKeyName=primary; sig=abc; ?signature=none",
        f"sha1 {'ab' * 20} and {_AWS[:39]}",
    ],
)
def test_key_block_and_cloud_look_alikes_are_untouched(text: str) -> None:
    assert scan(text) == text
