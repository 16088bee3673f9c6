"""Realistic OTLP batches: GenAI spans with 1-4 KB prompt/completion JSON (about 5% containing PII), HTTP/DB
spans with ~15 attributes, and log records with bodies. Deterministic for a given seed."""

from __future__ import annotations

import json
import random

from faker import Faker
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

SPANS_PER_BATCH = 512
GENAI_SHARE = 0.25
PII_SHARE = 0.05
# (provider, model, input $/Mtok, output $/Mtok); the prices feed the Collector transform config
MODELS = [
    ("openai", "gpt-4o-mini", 0.15, 0.6),
    ("openai", "gpt-4o", 2.5, 10.0),
    ("anthropic", "claude-sonnet-4-5", 3.0, 15.0),
    ("gcp.gemini", "gemini-2.5-flash", 0.3, 2.5),
]


def _kv(key: str, value: object) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=str(value)))


class Workload:
    def __init__(self, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.fake = Faker(["en_US", "de_DE", "fr_FR", "ja_JP"])
        self.fake.seed_instance(seed)
        self._paragraphs = [self.fake.paragraph(nb_sentences=8) for _ in range(200)]

    def _pii(self) -> str:
        f, r = self.fake, self.rng
        return r.choice(
            [
                lambda: f"You can reach me at {f.email()} or {f['en_US'].phone_number()}.",
                lambda: f"My card number is {f.credit_card_number()} exp {f.credit_card_expire()}.",
                lambda: f"My SSN is {f['en_US'].ssn()} and I live at {f['en_US'].address()}.",
                lambda: f"Please wire it to {f['de_DE'].iban()}.",
                lambda: f"The server at {f.ipv4()} returned 500; key sk-proj-{f.sha256()[:40]}.",
            ]
        )()

    def _text(self, size: int, pii: bool) -> str:
        parts: list[str] = []
        while sum(len(p) for p in parts) < size:
            parts.append(self.rng.choice(self._paragraphs))
        if pii:
            parts.insert(self.rng.randrange(len(parts) + 1), self._pii())
        return " ".join(parts)[: size + 200]

    def _ids(self) -> tuple[bytes, bytes]:
        return self.rng.randbytes(16), self.rng.randbytes(8)

    def genai_span(self) -> Span:
        provider, model, _, _ = self.rng.choice(MODELS)
        pii = self.rng.random() < PII_SHARE
        prompt = self._text(self.rng.randint(1000, 4000), pii)
        completion = self._text(self.rng.randint(1000, 4000), False)
        trace_id, span_id = self._ids()
        inp, out = self.rng.randint(200, 6000), self.rng.randint(50, 2000)
        attrs = [
            _kv("gen_ai.operation.name", "chat"),
            _kv("gen_ai.provider.name", provider),
            _kv("gen_ai.request.model", model),
            _kv("gen_ai.response.model", model),
            _kv("gen_ai.response.id", f"chatcmpl-{self.rng.getrandbits(64):x}"),
            _kv("gen_ai.usage.input_tokens", inp),
            _kv("gen_ai.usage.output_tokens", out),
            _kv("gen_ai.request.temperature", 0.7),
            _kv("gen_ai.request.max_tokens", 1024),
            _kv("gen_ai.response.finish_reasons", "stop"),
            _kv(
                "gen_ai.input.messages",
                json.dumps([{"role": "user", "parts": [{"type": "text", "content": prompt}]}]),
            ),
            _kv(
                "gen_ai.output.messages",
                json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": completion}]}]),
            ),
            _kv("server.address", "api.example.com"),
            _kv("server.port", 443),
        ]
        if self.rng.random() < 0.3:
            attrs.append(_kv("gen_ai.usage.cache_read.input_tokens", self.rng.randint(0, inp)))
        return Span(
            trace_id=trace_id,
            span_id=span_id,
            name=f"chat {model}",
            kind=Span.SPAN_KIND_CLIENT,
            start_time_unix_nano=1_700_000_000_000_000_000,
            end_time_unix_nano=1_700_000_001_000_000_000,
            attributes=attrs,
        )

    def http_or_db_span(self) -> Span:
        trace_id, span_id = self._ids()
        r = self.rng
        if r.random() < 0.5:
            route = r.choice(["/api/orders/{id}", "/api/users/{id}/cart", "/healthz", "/v1/chat/completions"])
            attrs = [
                _kv("http.request.method", r.choice(["GET", "POST", "PUT"])),
                _kv("http.route", route),
                _kv("url.path", route.replace("{id}", str(r.randint(1, 10**6)))),
                _kv("url.scheme", "https"),
                _kv("http.response.status_code", r.choice([200, 200, 200, 201, 404, 500])),
                _kv("server.address", "shop.internal"),
                _kv("server.port", 8080),
                _kv("network.protocol.version", "1.1"),
                _kv("user_agent.original", "Mozilla/5.0 (X11; Linux x86_64)"),
                _kv("http.request.body.size", r.randint(0, 5000)),
                _kv("http.response.body.size", r.randint(0, 50000)),
                _kv("client.port", r.randint(1024, 65535)),
                _kv("url.query", f"page={r.randint(1, 50)}&sort=asc"),
                _kv("request.id", f"{r.getrandbits(128):032x}"),
                _kv("deployment.environment", "prod"),
            ]
            name = f"GET {route}"
        else:
            attrs = [
                _kv("db.system.name", "postgresql"),
                _kv("db.namespace", "shop"),
                _kv("db.operation.name", r.choice(["SELECT", "INSERT", "UPDATE"])),
                _kv("db.collection.name", r.choice(["orders", "users", "items"])),
                _kv(
                    "db.query.text",
                    "SELECT id, total, status FROM orders WHERE customer_id = $1 AND created_at > $2",
                ),
                _kv("server.address", "db.internal"),
                _kv("server.port", 5432),
                _kv("db.response.returned_rows", r.randint(0, 500)),
                _kv("network.peer.port", 5432),
                _kv("db.client.connection.pool.name", "main"),
                _kv("thread.id", r.randint(1, 64)),
                _kv("thread.name", "worker-3"),
                _kv("code.function.name", "OrderRepository.find_recent"),
                _kv("code.file.path", "/app/shop/repository.py"),
                _kv("code.line.number", r.randint(1, 900)),
            ]
            name = "SELECT shop.orders"
        return Span(
            trace_id=trace_id,
            span_id=span_id,
            name=name,
            kind=Span.SPAN_KIND_SERVER,
            start_time_unix_nano=1_700_000_000_000_000_000,
            end_time_unix_nano=1_700_000_000_050_000_000,
            attributes=attrs,
            status=Status(code=Status.STATUS_CODE_OK),
        )

    def trace_batch(self) -> bytes:
        spans = [
            self.genai_span() if self.rng.random() < GENAI_SHARE else self.http_or_db_span()
            for _ in range(SPANS_PER_BATCH)
        ]
        resource = Resource(
            attributes=[
                _kv("service.name", "shop-gateway"),
                _kv("service.version", "2.14.3"),
                _kv("host.name", "node-7"),
                _kv("deployment.environment", "prod"),
            ]
        )
        req = ExportTraceServiceRequest(
            resource_spans=[
                ResourceSpans(
                    resource=resource,
                    scope_spans=[
                        ScopeSpans(scope=InstrumentationScope(name="bench", version="1.0"), spans=spans)
                    ],
                )
            ]
        )
        return req.SerializeToString()

    def log_batch(self) -> bytes:
        records = []
        for _ in range(SPANS_PER_BATCH):
            trace_id, span_id = self._ids()
            body = self._text(self.rng.randint(80, 400), self.rng.random() < PII_SHARE)
            records.append(
                LogRecord(
                    time_unix_nano=1_700_000_000_000_000_000,
                    severity_number=9,
                    severity_text="INFO",
                    body=AnyValue(string_value=body),
                    trace_id=trace_id,
                    span_id=span_id,
                    attributes=[
                        _kv("logger.name", "shop.checkout"),
                        _kv("code.function.name", "checkout"),
                        _kv("event.name", "checkout.step"),
                    ],
                )
            )
        req = ExportLogsServiceRequest(
            resource_logs=[
                ResourceLogs(
                    resource=Resource(attributes=[_kv("service.name", "shop-gateway")]),
                    scope_logs=[ScopeLogs(log_records=records)],
                )
            ]
        )
        return req.SerializeToString()
