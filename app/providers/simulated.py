"""The simulated provider: the zero-config default, clearly labelled as simulated.

Deterministic: the completion text and token counts are a pure function of (seed, model, messages), and the
sequence of injected faults is drawn from a generator seeded with ``seed``. It reports real model names and
the provider name that model really belongs to (so downstream pricing shows realistic costs), while spans,
metrics and the response's ``system_fingerprint`` say it is simulated.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import time
import uuid
from collections.abc import AsyncGenerator
from typing import Any

from app.config import ProviderConfig
from app.providers.base import (
    ChatCall,
    ProviderError,
    SimulatedDisconnect,
    StreamBatch,
    StreamBroken,
    UpstreamTimeout,
)

SYSTEM_FINGERPRINT = "fp_simulated"
FAULTS = ("429", "500", "timeout", "disconnect")

_PROVIDER_PREFIXES = (
    (("gpt-", "o1", "o3", "o4", "chatgpt-", "text-"), "openai"),
    (("claude",), "anthropic"),
    (("gemini",), "gcp.gemini"),
    (("mistral", "mixtral", "codestral", "ministral"), "mistral_ai"),
    (("deepseek",), "deepseek"),
    (("grok",), "x_ai"),
    (("command",), "cohere"),
)

_TEXT = (
    "the gateway forwards each request to the configured model and records one span per call "
    "with token usage latency and the finish reason so dashboards alerts and cost reports stay "
    "consistent across tenants while sensitive prompt content is only captured when explicitly enabled "
    "observability pipelines batch retry and export telemetry over otlp to a collector that routes traces "
    "logs and metrics to their backends"
)
_WORDS = _TEXT.split()


def provider_name_for_model(model: str) -> str:
    lowered = model.lower()
    for prefixes, name in _PROVIDER_PREFIXES:
        if lowered.startswith(prefixes):
            return name
    return "simulated"


def count_prompt_tokens(messages: list[dict[str, Any]]) -> int:
    """A deterministic stand-in for a tokenizer: ~4 characters per token plus per-message overhead."""
    total = 3
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            text = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        else:
            text = "" if content is None else str(content)
        total += 4 + (len(text) + 3) // 4
    return total


class SimulatedProvider:
    simulated = True
    server_address: str | None = None
    server_port: int | None = None

    def __init__(self, config: ProviderConfig) -> None:
        self.id = config.id
        self.settings = config.simulated
        self._provider_name = config.provider_name
        self._fault_rng = random.Random(self.settings.seed)

    def provider_name_for(self, model: str) -> str:
        return self._provider_name or provider_name_for_model(model)

    def next_fault(self, header: str | None) -> str | None:
        """Draw the next fault from the seeded sequence (always drawn, so the sequence stays reproducible)."""
        s = self.settings
        r = self._fault_rng.random()
        if header is not None and s.allow_fault_header:
            return header if header in FAULTS else None
        edge = 0.0
        for fault, rate in zip(
            FAULTS,
            (s.error_rate_429, s.error_rate_500, s.error_rate_timeout, s.error_rate_disconnect),
            strict=True,
        ):
            edge += rate
            if r < edge:
                return fault
        return None

    def _plan(self, call: ChatCall) -> tuple[list[str], str, int, int]:
        s = self.settings
        messages = call.body.get("messages", [])
        digest = hashlib.blake2b(
            json.dumps(
                [s.seed, call.upstream_model, messages, call.body.get("seed")], sort_keys=True, default=str
            ).encode(),
            digest_size=8,
        ).digest()
        rng = random.Random(int.from_bytes(digest, "big"))
        n = rng.randint(s.min_output_tokens, s.max_output_tokens)
        limit = call.body.get("max_completion_tokens") or call.body.get("max_tokens")
        finish = "stop"
        if isinstance(limit, int) and 0 < limit < n:
            n, finish = limit, "length"
        start = rng.randrange(len(_WORDS))
        words = [_WORDS[(start + i * 7 + rng.randrange(3)) % len(_WORDS)] for i in range(n)]
        tokens = [(w if i == 0 else " " + w) for i, w in enumerate(words)]
        prompt_tokens = count_prompt_tokens(messages)
        cached = 0
        if rng.random() < s.cache_hit_rate:
            cached = int(prompt_tokens * s.cached_input_share)
        return tokens, finish, prompt_tokens, cached

    def _usage(self, prompt: int, completion: int, cached: int) -> dict[str, Any]:
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    async def _raise_fault(self, fault: str) -> None:
        s = self.settings
        if fault == "429":
            raise ProviderError(
                429,
                "429",
                "simulated rate limit (injected fault)",
                code="rate_limit_exceeded",
                retry_after_s=s.retry_after_ms / 1000.0,
            )
        if fault == "500":
            raise ProviderError(
                500, "500", "simulated upstream server error (injected fault)", code="server_error"
            )
        if fault == "timeout":
            await asyncio.sleep(s.timeout_after_s)
            raise UpstreamTimeout("simulated upstream timeout (injected fault)")

    async def _start(self, call: ChatCall) -> str | None:
        """Draw this call's fault and raise it now, unless it is a disconnect (which strikes later)."""
        fault = self.next_fault(call.fault)
        if fault is not None and fault != "disconnect":
            await self._raise_fault(fault)
        return fault

    @staticmethod
    def _envelope(call: ChatCall, obj: str) -> dict[str, Any]:
        """The fields a completion and each of its chunks start with."""
        return {
            "id": f"chatcmpl-sim{uuid.uuid4().hex[:24]}",
            "object": obj,
            "created": int(time.time()),
            "model": call.upstream_model,
            "system_fingerprint": SYSTEM_FINGERPRINT,
        }

    async def complete(self, call: ChatCall) -> dict[str, Any]:
        fault = await self._start(call)
        tokens, finish, prompt, cached = self._plan(call)
        delay = self.settings.ttft_ms / 1000.0
        if self.settings.tokens_per_second > 0:
            delay += len(tokens) / self.settings.tokens_per_second
        if delay > 0:
            await asyncio.sleep(delay)
        if fault == "disconnect":
            raise StreamBroken("simulated upstream connection drop (injected fault)")
        completion = self._envelope(call, "chat.completion")
        completion["choices"] = [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "".join(tokens), "refusal": None},
                "logprobs": None,
                "finish_reason": finish,
            }
        ]
        completion["usage"] = self._usage(prompt, len(tokens), cached)
        return completion

    async def stream(self, call: ChatCall) -> AsyncGenerator[dict[str, Any], None]:
        fault = await self._start(call)
        tokens, finish, prompt, cached = self._plan(call)
        s = self.settings
        base = self._envelope(call, "chat.completion.chunk")
        if s.ttft_ms > 0:
            await asyncio.sleep(s.ttft_ms / 1000.0)
        yield {
            **base,
            "choices": [
                {
                    "index": 0,
                    "delta": {"role": "assistant", "content": ""},
                    "logprobs": None,
                    "finish_reason": None,
                }
            ],
        }
        gap = 1.0 / s.tokens_per_second if s.tokens_per_second > 0 else 0.0
        break_at = len(tokens) // 2 if fault == "disconnect" else -1
        for i, token in enumerate(tokens):
            if i == break_at:
                raise SimulatedDisconnect()
            if gap > 0 and i > 0:
                await asyncio.sleep(gap)
            yield {
                **base,
                "choices": [
                    {"index": 0, "delta": {"content": token}, "logprobs": None, "finish_reason": None}
                ],
            }
        yield {**base, "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": finish}]}
        # Always produced; the API layer drops it unless the client asked for stream_options.include_usage.
        yield {**base, "choices": [], "usage": self._usage(prompt, len(tokens), cached)}

    async def complete_raw(self, call: ChatCall) -> tuple[dict[str, Any], bytes | None]:
        return await self.complete(call), None

    async def stream_batches(self, call: ChatCall) -> AsyncGenerator[StreamBatch, None]:
        async for chunk in self.stream(call):
            yield [(chunk, None)]

    async def ready(self) -> tuple[bool, str]:
        return True, "simulated"

    async def aclose(self) -> None:
        return None
