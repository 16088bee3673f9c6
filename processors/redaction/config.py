"""Declarative config of the redaction processor (the ``redaction:`` section of the sidecar config)."""

from __future__ import annotations

import os
import re
import string
from dataclasses import dataclass, field
from typing import Literal

from processors.config_loader import ConfigError
from processors.redaction.keys import rule_text
from processors.redaction.patterns import BUILTIN_NAMES

DEFAULT_SECRET_KEYS = [
    "password",
    "passwd",
    "pwd",
    "secret",
    "client_secret",
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "auth_token",
    "api_key",
    "apikey",
    "x_api_key",
    "authorization",
    "proxy_authorization",
    "cookie",
    "set_cookie",
    "ssn",
    "credit_card",
    "card_number",
    "private_key",
    "secret_key",
    "access_key",
    "passphrase",
    "credential",
    "credentials",
]

DEFAULT_ALLOWED_KEYS = [
    "trace_id",
    "span_id",
    "parent_span_id",
    "traceid",
    "spanid",
    "gen_ai.response.id",
    "gen_ai.request.model",
    "gen_ai.response.model",
    "gen_ai.provider.name",
    "gen_ai.system",
    "gen_ai.operation.name",
    "gen_ai.conversation.id",
    "service.name",
    "service.version",
    "service.instance.id",
    "telemetry.sdk.name",
    "telemetry.sdk.version",
    "telemetry.sdk.language",
    "http.request.method",
    "http.route",
    "url.template",
    "pii.redacted.types",
    "gen_ai.cost.status",
    "gen_ai.cost.pricing",
]


@dataclass
class CustomPattern:
    """An extra named detector. Matches are replaced like the built-in types (label = upper-cased name)."""

    name: str
    """Type id, ``[a-z][a-z0-9_]*``; used in placeholders, metrics and pii.redacted.types."""
    regex: str
    """Python regex (a group named ``v`` limits the replacement to that group). Hyperscan must accept it in
    prefilter mode; lookarounds are fine, they are checked by Python."""
    caseless: bool = False
    """Match case-insensitively."""

    def validate(self, path: str) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", self.name):
            raise ConfigError(f"{path}.name", f"must match [a-z][a-z0-9_]*, got {self.name!r}")
        if self.name in BUILTIN_NAMES:
            raise ConfigError(f"{path}.name", f"{self.name!r} is a built-in type; choose another name")
        try:
            compiled = re.compile(self.regex)
        except re.error as exc:
            raise ConfigError(f"{path}.regex", f"bad regex {self.regex!r}: {exc}") from exc
        if compiled.match(""):
            raise ConfigError(f"{path}.regex", "matches the empty string")


@dataclass
class RedactionFields:
    """Which parts of a batch are scanned. Span, log and metric attributes, span names, log severity text and
    event names are always scanned when redaction is on."""

    span_events: bool = True
    """Span event names and attributes."""
    span_links: bool = True
    """Span link attributes."""
    span_status: bool = True
    """Span status message."""
    resource_attributes: bool = True
    """Resource attributes of traces, logs and metrics."""
    scope_attributes: bool = True
    """Instrumentation scope names and attributes."""
    log_body: bool = True
    """Log record bodies (string, kvlist and array bodies, recursively)."""


@dataclass
class RedactionConfig:
    """PII and secret redaction of spans, log records and metrics."""

    enabled: bool = True
    """Scan and redact at all."""
    types: dict[str, bool] = field(default_factory=dict)
    """Turn built-in types on/off, e.g. ``{phone: false}``; unlisted types are on."""
    custom_patterns: list[CustomPattern] = field(default_factory=list)
    """Extra named patterns."""
    secret_keys: list[str] = field(default_factory=lambda: list(DEFAULT_SECRET_KEYS))
    """Attribute keys that name a secret: their value is masked whole, whatever it is. Keys and entries are
    split into words (at separators and case changes, keys.py); a key matches when its last words are an
    entry's words, or its last word is them written together: ``password`` matches ``db.password`` and
    ``userPassword``, ``api_key`` matches ``apiKey``, ``X-API-Key``, ``apikey`` and
    ``http.request.header.x-api-key``."""
    extra_secret_keys: list[str] = field(default_factory=list)
    """Added to ``secret_keys`` (so the defaults need not be repeated)."""
    allowed_keys: list[str] = field(default_factory=lambda: list(DEFAULT_ALLOWED_KEYS))
    """Attribute keys (exact match) whose values are only checked for the high-confidence types (e-mail, card,
    SSN, IBAN, secrets, custom patterns), not for look-alikes such as phone-like ids."""
    extra_allowed_keys: list[str] = field(default_factory=list)
    """Added to ``allowed_keys``."""
    mode: Literal["placeholder", "hmac"] = "placeholder"
    """``placeholder``: replace with a typed placeholder; ``hmac``: with a keyed HMAC-SHA256 token so equal
    values correlate across spans without being revealed."""
    placeholder_format: str = "<{type}>"
    """Placeholder in ``placeholder`` mode; ``{type}`` is the upper-case type label."""
    hmac_format: str = "<{type}:{hmac}>"
    """Token in ``hmac`` mode; ``{type}`` as above, ``{hmac}`` the hex digest prefix."""
    hmac_length: int = 16
    """Hex characters of the digest kept (8-64)."""
    hmac_key_env: str = "SIDECAR_HMAC_KEY"
    """Environment variable holding the HMAC key (``hmac`` mode)."""
    hmac_key_file: str | None = None
    """File holding the HMAC key; wins over ``hmac_key_env``."""
    summary: bool = True
    """Add pii.redacted.count / pii.redacted.types to touched spans and log records. Turn off if even the
    fact that (and which) PII was present must not leave."""
    fields: RedactionFields = field(default_factory=RedactionFields)
    """Which parts of a batch are scanned."""

    def validate(self, path: str) -> None:
        for name in self.types:
            if name not in BUILTIN_NAMES:
                raise ConfigError(f"{path}.types.{name}", f"unknown type (known: {', '.join(BUILTIN_NAMES)})")
        _check_format(f"{path}.placeholder_format", self.placeholder_format, {"type"}, {"type"})
        _check_format(f"{path}.hmac_format", self.hmac_format, {"type", "hmac"}, {"hmac"})
        if not 8 <= self.hmac_length <= 64:
            raise ConfigError(f"{path}.hmac_length", f"must be between 8 and 64, got {self.hmac_length}")
        for name, keys in (("secret_keys", self.secret_keys), ("extra_secret_keys", self.extra_secret_keys)):
            for i, key in enumerate(keys):
                if not rule_text(key):
                    raise ConfigError(f"{path}.{name}[{i}]", f"needs an ASCII letter or digit, got {key!r}")
        names = [p.name for p in self.custom_patterns]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise ConfigError(f"{path}.custom_patterns[{i}].name", f"duplicate name {name!r}")
        if self.mode == "hmac":
            self.hmac_key()  # fail at start, not on the first batch

    def hmac_key(self) -> bytes:
        if self.hmac_key_file:
            try:
                with open(self.hmac_key_file, "rb") as f:
                    key = f.read().strip()
            except OSError as exc:
                raise ConfigError(
                    "redaction.hmac_key_file", f"cannot read {self.hmac_key_file!r}: {exc}"
                ) from exc
            if len(key) < 16:
                raise ConfigError("redaction.hmac_key_file", "key must be at least 16 bytes")
            return key
        key_text = os.environ.get(self.hmac_key_env, "")
        if len(key_text) < 16:
            raise ConfigError(
                "redaction.hmac_key_env",
                f"mode is hmac but env var {self.hmac_key_env} is unset or shorter than 16 bytes",
            )
        return key_text.encode()

    def enabled_builtin_types(self) -> list[str]:
        return [n for n in BUILTIN_NAMES if self.types.get(n, True)]


def _check_format(path: str, fmt: str, allowed: set[str], required: set[str]) -> None:
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(fmt) if f is not None}
    except ValueError as exc:
        raise ConfigError(path, f"bad format {fmt!r}: {exc}") from exc
    if fields - allowed:
        raise ConfigError(path, f"unknown field(s) {sorted(fields - allowed)} (allowed: {sorted(allowed)})")
    if required - fields:
        raise ConfigError(path, f"must contain {', '.join('{' + r + '}' for r in sorted(required))}")
