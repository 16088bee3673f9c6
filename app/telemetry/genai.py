"""GenAI semantic conventions (v1.41): attribute names, request/response attributes, message JSON."""

from __future__ import annotations

import contextlib
import json
from typing import Any

# Attribute names, as in opentelemetry-semantic-conventions (incubating gen_ai_attributes).
OPERATION_NAME = "gen_ai.operation.name"
PROVIDER_NAME = "gen_ai.provider.name"
REQUEST_MODEL = "gen_ai.request.model"
REQUEST_TEMPERATURE = "gen_ai.request.temperature"
REQUEST_TOP_P = "gen_ai.request.top_p"
REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
REQUEST_STREAM = "gen_ai.request.stream"
REQUEST_SEED = "gen_ai.request.seed"
REQUEST_STOP = "gen_ai.request.stop_sequences"
REQUEST_FREQUENCY_PENALTY = "gen_ai.request.frequency_penalty"
REQUEST_PRESENCE_PENALTY = "gen_ai.request.presence_penalty"
REQUEST_CHOICE_COUNT = "gen_ai.request.choice.count"
RESPONSE_MODEL = "gen_ai.response.model"
RESPONSE_ID = "gen_ai.response.id"
RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
RESPONSE_TIME_TO_FIRST_CHUNK = "gen_ai.response.time_to_first_chunk"
USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
USAGE_CACHE_READ_INPUT_TOKENS = "gen_ai.usage.cache_read.input_tokens"
USAGE_REASONING_OUTPUT_TOKENS = "gen_ai.usage.reasoning.output_tokens"
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"
OUTPUT_TYPE = "gen_ai.output.type"
TOKEN_TYPE = "gen_ai.token.type"
OPENAI_SYSTEM_FINGERPRINT = "openai.response.system_fingerprint"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
ERROR_TYPE = "error.type"
ENDUSER_PSEUDO_ID = "enduser.pseudo.id"

# Gateway-specific attributes (namespaced, bounded).
TENANT = "llm_gateway.tenant"
SIMULATED = "llm_gateway.provider.simulated"
PROVIDER_ID = "llm_gateway.provider.id"
REQUEST_ID = "llm_gateway.request.id"

OPERATION_CHAT = "chat"


def request_attributes(body: dict[str, Any], request_model: str, stream: bool) -> dict[str, Any]:
    """The request's span attributes, as values the SDK keeps unchanged (a span may take them as they are)."""
    attrs: dict[str, Any] = {
        OPERATION_NAME: OPERATION_CHAT,
        REQUEST_MODEL: request_model,
        REQUEST_STREAM: stream,
    }
    for key, attr in (
        ("temperature", REQUEST_TEMPERATURE),
        ("top_p", REQUEST_TOP_P),
        ("frequency_penalty", REQUEST_FREQUENCY_PENALTY),
        ("presence_penalty", REQUEST_PRESENCE_PENALTY),
    ):
        value = body.get(key)
        # Absent parameters (most of them, on most requests) are skipped before any type check.
        if value is not None and isinstance(value, int | float) and not isinstance(value, bool):
            attrs[attr] = float(value)
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None and isinstance(max_tokens, int) and not isinstance(max_tokens, bool):
        attrs[REQUEST_MAX_TOKENS] = max_tokens
    seed = body.get("seed")
    if seed is not None and isinstance(seed, int) and not isinstance(seed, bool):
        attrs[REQUEST_SEED] = seed
    stop = body.get("stop")
    if stop is None:
        pass
    elif isinstance(stop, str):
        attrs[REQUEST_STOP] = (stop,)
    elif isinstance(stop, list) and stop:
        attrs[REQUEST_STOP] = tuple(str(s) for s in stop)
    n = body.get("n")
    if n is not None and isinstance(n, int) and n != 1:
        attrs[REQUEST_CHOICE_COUNT] = n
    fmt = body.get("response_format")
    if fmt is not None and isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema"):
        attrs[OUTPUT_TYPE] = "json"
    return attrs


def usage_attributes(usage: dict[str, Any] | None) -> dict[str, int]:
    """OpenAI usage → semconv: input tokens include cached ones (as OpenAI's prompt_tokens already do)."""
    if not isinstance(usage, dict):
        return {}
    attrs: dict[str, int] = {}
    if isinstance(usage.get("prompt_tokens"), int):
        attrs[USAGE_INPUT_TOKENS] = usage["prompt_tokens"]
    if isinstance(usage.get("completion_tokens"), int):
        attrs[USAGE_OUTPUT_TOKENS] = usage["completion_tokens"]
    details = usage.get("prompt_tokens_details")
    if isinstance(details, dict) and isinstance(details.get("cached_tokens"), int):
        attrs[USAGE_CACHE_READ_INPUT_TOKENS] = details["cached_tokens"]
    out_details = usage.get("completion_tokens_details")
    if (
        isinstance(out_details, dict)
        and isinstance(out_details.get("reasoning_tokens"), int)
        and out_details["reasoning_tokens"] > 0
    ):
        attrs[USAGE_REASONING_OUTPUT_TOKENS] = out_details["reasoning_tokens"]
    return attrs


def _text_parts(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    parts: list[dict[str, Any]] = []
    if isinstance(content, list):
        for part in content:
            if not isinstance(part, dict):
                continue
            if part.get("type") == "text":
                parts.append({"type": "text", "content": part.get("text", "")})
            elif part.get("type") == "image_url":
                url = (part.get("image_url") or {}).get("url", "")
                if isinstance(url, str) and url.startswith("data:"):
                    parts.append({"type": "blob", "modality": "image", "content": "<omitted>"})
                else:
                    parts.append({"type": "uri", "modality": "image", "uri": url})
            else:
                parts.append({"type": str(part.get("type", "unknown"))})
    return parts


def _tool_call_part(call: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI tool call as a semconv tool_call part (arguments parsed when they are JSON)."""
    fn = call.get("function") or {}
    args: Any = fn.get("arguments")
    with contextlib.suppress(ValueError):
        args = json.loads(args) if isinstance(args, str) else args
    return {"type": "tool_call", "id": call.get("id"), "name": fn.get("name"), "arguments": args}


def input_messages(messages: list[dict[str, Any]]) -> tuple[str, str | None]:
    """(gen_ai.input.messages JSON, gen_ai.system_instructions JSON or None) per the semconv JSON schemas."""
    converted: list[dict[str, Any]] = []
    system: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend(_text_parts(message.get("content")))
            continue
        if role == "tool":
            converted.append(
                {
                    "role": "tool",
                    "parts": [
                        {
                            "type": "tool_call_response",
                            "id": message.get("tool_call_id"),
                            "response": message.get("content"),
                        }
                    ],
                }
            )
            continue
        parts = _text_parts(message.get("content"))
        parts.extend(
            _tool_call_part(call) for call in message.get("tool_calls") or [] if isinstance(call, dict)
        )
        entry: dict[str, Any] = {"role": role, "parts": parts}
        if message.get("name"):
            entry["name"] = message["name"]
        converted.append(entry)
    return (
        json.dumps(converted, ensure_ascii=False),
        json.dumps(system, ensure_ascii=False) if system else None,
    )


def output_messages(choices: list[dict[str, Any]]) -> str:
    """Choices as {"message": {...}, "finish_reason": ...} (non-streamed, or assembled from a stream)."""
    out = []
    for choice in choices:
        message = choice.get("message") or {}
        parts = _text_parts(message.get("content"))
        parts.extend(_tool_call_part(call) for call in message.get("tool_calls") or [])
        out.append(
            {
                "role": message.get("role") or "assistant",
                "parts": parts,
                "finish_reason": choice.get("finish_reason") or "error",
            }
        )
    return json.dumps(out, ensure_ascii=False)
