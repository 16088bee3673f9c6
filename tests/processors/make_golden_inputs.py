# ruff: noqa: E501  (test data: long literal strings)
"""Regenerates the golden *.input.json files.

Run: PYTHONPATH=. .venv/bin/python tests/processors/make_golden_inputs.py

Then UPDATE_GOLDEN=1 pytest tests/processors/test_golden.py rewrites the expected files; review the diff."""

import json
from pathlib import Path

from google.protobuf import json_format
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from tests.processors.helpers import attrs, logs_request, span, trace_request, value

cost = trace_request(
    span(
        "chat gpt-4o-mini",
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
            "gen_ai.usage.input_tokens": 1200,
            "gen_ai.usage.output_tokens": 350,
            "gen_ai.usage.cache_read.input_tokens": 1024,
        },
        1,
    ),
    span(
        "chat claude",
        {
            "gen_ai.provider.name": "anthropic",
            "gen_ai.request.model": "claude-sonnet-4-5",
            "gen_ai.usage.input_tokens": 20000,
            "gen_ai.usage.output_tokens": 900,
            "gen_ai.usage.cache_read.input_tokens": 8000,
            "gen_ai.usage.cache_creation.input_tokens": 2000,
        },
        2,
    ),
    span(
        "generate_content gemini",
        {
            "gen_ai.provider.name": "gcp.vertex_ai",
            "gen_ai.request.model": "gemini-2.5-flash",
            "gen_ai.usage.input_tokens": 5000,
            "gen_ai.usage.output_tokens": 1500,
            "gen_ai.usage.reasoning.output_tokens": 700,
        },
        3,
    ),
    span(
        "chat legacy gen_ai.system",
        {
            "gen_ai.system": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.prompt_tokens": 100,
            "gen_ai.usage.completion_tokens": 50,
        },
        4,
    ),
    span(
        "chat bedrock",
        {
            "gen_ai.provider.name": "aws.bedrock",
            "gen_ai.request.model": "anthropic.claude-3-haiku-20240307-v1:0",
            "gen_ai.usage.input_tokens": 3000,
            "gen_ai.usage.output_tokens": 400,
        },
        5,
    ),
    span(
        "chat self-hosted",
        {
            "gen_ai.provider.name": "vllm",
            "gen_ai.request.model": "my-org/llama-3-70b-ft",
            "gen_ai.usage.input_tokens": 1000,
            "gen_ai.usage.output_tokens": 1000,
        },
        6,
    ),
    span(
        "chat already priced",
        {
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.input_tokens": 10,
            "gen_ai.usage.output_tokens": 10,
            "gen_ai.usage.cost": 0.5,
        },
        7,
    ),
    span("GET /health", {"http.request.method": "GET", "http.response.status_code": 200}, 8),
    span(
        "chat with new cache_write name",
        {
            "gen_ai.provider.name": "anthropic",
            "gen_ai.request.model": "claude-3-5-haiku-latest",
            "gen_ai.usage.input_tokens": 4000,
            "gen_ai.usage.output_tokens": 100,
            "gen_ai.usage.cache_write.input_tokens": 3000,
        },
        9,
    ),
    span(
        "chat unknown model",
        {
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "totally-unknown-model-x",
            "gen_ai.usage.input_tokens": 10,
            "gen_ai.usage.output_tokens": 10,
        },
        10,
    ),
    span(
        "chat azure",
        {
            "gen_ai.provider.name": "azure.ai.openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.usage.input_tokens": 10000,
            "gen_ai.usage.output_tokens": 2000,
        },
        11,
    ),
)
Path("tests/processors/cost/testdata/cost_traces.input.json").write_text(
    json_format.MessageToJson(cost, indent=1)
)

s1 = span(
    "chat",
    {
        "gen_ai.input.messages": json.dumps(
            [
                {
                    "role": "user",
                    "parts": [
                        {
                            "type": "text",
                            "content": "Hi, I'm Jane (jane.doe@example.org, +44 20 7946 0958). My card is 4111 1111 1111 1111 and SSN 123-45-6789.",
                        }
                    ],
                }
            ]
        ),
        "gen_ai.output.messages": json.dumps(
            [
                {
                    "role": "assistant",
                    "parts": [
                        {
                            "type": "text",
                            "content": "Thanks Jane. I have noted IBAN GB82 WEST 1234 5698 7654 32 for the refund.",
                        }
                    ],
                }
            ]
        ),
        "gen_ai.response.id": "chatcmpl-4111111111111111",
        "http.request.header.authorization": ["Bearer sk-proj-abcdefghijklmnopqrstuvwxyz0123456789"],
        "client.address": "203.0.113.42",
        "db.connection_string": "postgresql://app:S3cr3tPass@db.internal:5432/orders",
        "config": {
            "aws_key": "AKIAIOSFODNN7EXAMPLE",
            "nested": ["ghp_abcdefghijklmnopqrstuvwxyz0123456789", "ok value"],
        },
        "benign": "trace 4bf92f3577b34da6a3ce929d0e0e4736 v1.22.3 at 2024-05-01T12:00:00Z took 1234.5678 ms, order ORD-2024-000123",
    },
    1,
    events=[
        Span.Event(
            name="gen_ai.choice",
            attributes=attrs({"message": "call me on 555-867-5309 or mail bob@corp.example"}),
        )
    ],
    links=[
        Span.Link(
            trace_id=b"\x05" * 16,
            span_id=b"\x06" * 8,
            attributes=attrs({"note": "peer at 2001:db8::8a2e:370:7334 via fe80::1"}),
        )
    ],
    status=Status(code=2, message="login failed for admin@example.com"),
)
s2 = span(
    "SELECT orders",
    {
        "db.system": "postgresql",
        "db.query.text": "SELECT * FROM orders WHERE id = $1",
        "server.address": "db.internal",
        "server.port": 5432,
    },
    2,
)
red = trace_request(
    s1, s2, resource={"service.name": "checkout", "host.ip": ["10.0.0.7"], "deployment.environment": "prod"}
)
Path("tests/processors/redaction/testdata/redaction_traces.input.json").write_text(
    json_format.MessageToJson(red, indent=1)
)

logs = logs_request(
    LogRecord(
        body=value("user alice@example.com (badge EMP-004211) logged in from 198.51.100.7"),
        attributes=attrs({"event.name": "login", "session.token": "abc123xyz"}),
    ),
    LogRecord(
        body=value(
            {
                "msg": "payment",
                "card": "5500-0000-0000-0004",
                "amount": 12.5,
                "tags": [
                    "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
                ],
            }
        )
    ),
    LogRecord(
        body=value("cache hit ratio 0.93 for key user:42 in 12ms"),
        attributes=attrs({"code.function": "get_user"}),
    ),
)
Path("tests/processors/redaction/testdata/redaction_logs.input.json").write_text(
    json_format.MessageToJson(logs, indent=1)
)
