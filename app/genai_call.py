"""One GenAI model call as telemetry: the `chat {model}` CLIENT span, its metrics and its request log."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from app.identifiers import model_name_problem
from app.providers.base import Provider
from app.request_log import RequestLog
from app.telemetry import genai as g
from app.telemetry.lean_trace import OwnedSpanStarter, context_with_span, set_owned_attributes
from app.telemetry.metrics import GatewayMetrics

# The context of a call without telemetry: no span in it (the request log reads no trace ids from it).
_NO_SPAN_CONTEXT = trace.set_span_in_context(trace.INVALID_SPAN)


class CardinalityGuard:
    """Caps the distinct values of one metric attribute (model names come from clients)."""

    def __init__(self, limit: int = 64) -> None:
        self._seen: set[str] = set()
        self._limit = limit

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        if len(self._seen) < self._limit:
            self._seen.add(value)
            return value
        return "_OTHER"


# Per-request records are plain slotted dataclasses: a frozen one's __init__ (object.__setattr__ per field)
# costs 2-3x as much, on every request.
@dataclass(slots=True)
class RecordedResponse:
    model: str
    provider_name: str
    tenant: str
    span_context: trace.SpanContext


class ResponseIndex:
    """Recent response ids → what feedback needs to attribute a score (bounded LRU)."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._items: OrderedDict[str, RecordedResponse] = OrderedDict()
        self._capacity = capacity

    def add(self, response_id: str, item: RecordedResponse) -> None:
        self._items[response_id] = item
        self._items.move_to_end(response_id)
        while len(self._items) > self._capacity:
            self._items.popitem(last=False)

    def get(self, response_id: str) -> RecordedResponse | None:
        return self._items.get(response_id)


@dataclass(slots=True)
class CallMeta:
    request_id: str
    tenant: str
    user_hash: str | None
    requested_model: str
    upstream_model: str
    stream: bool


class GenAICall:
    def __init__(
        self,
        *,
        start_span: OwnedSpanStarter,
        metrics: GatewayMetrics,
        request_log: RequestLog,
        provider: Provider,
        meta: CallMeta,
        body: dict[str, Any],
        capture_content: bool,
        model_guard: CardinalityGuard,
        responses: ResponseIndex,
        telemetry: bool = True,
        log: bool = True,
    ) -> None:
        self.meta = meta
        self.provider = provider
        self.metrics = metrics
        self.request_log = request_log
        self.capture = capture_content
        self.responses = responses
        self._guard = model_guard
        self.provider_name = provider.provider_name_for(meta.upstream_model)
        # With telemetry off (OTEL_SDK_DISABLED) there is no span and no metric to feed: none of their
        # attributes are built. The request log (stderr) and the response index (feedback) still are.
        self.telemetry = telemetry
        self._log_on = log
        self.finished = False
        self.retries = 0
        if not telemetry:
            self.span: trace.Span = trace.INVALID_SPAN
            self.context = _NO_SPAN_CONTEXT
            self.metric_attrs: dict[str, Any] = {}
            self.started = time.perf_counter()
            return
        attrs = g.request_attributes(body, meta.upstream_model, meta.stream)
        attrs[g.PROVIDER_NAME] = self.provider_name
        attrs[g.TENANT] = meta.tenant
        attrs[g.SIMULATED] = provider.simulated
        attrs[g.PROVIDER_ID] = provider.id
        attrs[g.REQUEST_ID] = meta.request_id
        server: dict[str, Any] = {}  # on the span and on the metrics
        if provider.server_address:
            server[g.SERVER_ADDRESS] = provider.server_address
            if provider.server_port:
                server[g.SERVER_PORT] = provider.server_port
        attrs.update(server)
        if meta.user_hash:
            attrs[g.ENDUSER_PSEUDO_ID] = meta.user_hash
        # With content capture the whole input is on the span (where the sidecar redacts it whole); the
        # request log carries no content at all, not even a preview: a cut secret no longer matches.
        if capture_content:
            messages = body.get("messages", [])
            inputs, system = g.input_messages(messages)
            attrs[g.INPUT_MESSAGES] = inputs
            if system:
                attrs[g.SYSTEM_INSTRUCTIONS] = system
        self.span = start_span(f"chat {meta.upstream_model}", None, SpanKind.CLIENT, attrs)
        self.context = context_with_span(self.span)
        self.metric_attrs = {
            g.OPERATION_NAME: g.OPERATION_CHAT,
            g.PROVIDER_NAME: self.provider_name,
            g.REQUEST_MODEL: model_guard(meta.upstream_model),
            g.TENANT: meta.tenant,
            g.SIMULATED: provider.simulated,
            **server,
        }
        self.started = time.perf_counter()

    def on_retry(self, reason: str) -> None:
        self.retries += 1
        if not self.telemetry:
            return
        self.span.add_event(
            "gen_ai.upstream.retry", {"error.type": reason, "llm_gateway.retry.attempt": self.retries}
        )
        self.metrics.retries.add(
            1,
            {g.PROVIDER_ID: self.provider.id, g.PROVIDER_NAME: self.provider_name, g.ERROR_TYPE: reason},
            context=self.context,
        )

    def record_first_chunk(self, elapsed_s: float) -> None:
        if self.telemetry:
            set_owned_attributes(self.span, {g.RESPONSE_TIME_TO_FIRST_CHUNK: elapsed_s})

    def finish(
        self,
        *,
        status: int,
        response_id: str | None = None,
        response_model: str | None = None,
        finish_reasons: list[str] | None = None,
        usage: dict[str, Any] | None = None,
        choices: list[dict[str, Any]] | None = None,
        system_fingerprint: str | None = None,
        error_type: str | None = None,
        error_message: str | None = None,
        ttft_s: float | None = None,
        stream_end_s: float | None = None,
    ) -> None:
        if self.finished:
            return
        self.finished = True
        duration = time.perf_counter() - self.started
        # An upstream's id/model/fingerprint are whatever its JSON held: only well-formed strings are kept (an
        # odd model never becomes an attribute or a label; an odd id never a feedback key).
        if response_model is not None and (
            response_model.__class__ is not str or model_name_problem(response_model) is not None
        ):
            response_model = None
        if response_id is not None and response_id.__class__ is not str:
            response_id = None
        if system_fingerprint is not None and system_fingerprint.__class__ is not str:
            system_fingerprint = None
        if not self.telemetry:
            self._remember(response_id, response_model, error_type)
            if self._log_on:
                usage_attrs = g.usage_attributes(usage)
                self._log(status, duration, response_id, response_model, usage_attrs, error_type, ttft_s)
            return
        span = self.span
        usage_attrs = g.usage_attributes(usage)
        if response_model:
            self.metric_attrs[g.RESPONSE_MODEL] = self._guard(response_model)
        if span.is_recording():  # not for traces sampled out
            # One set_attributes call: the SDK takes its lock and validates once per call.
            end_attrs: dict[str, Any] = {}
            if response_model:
                end_attrs[g.RESPONSE_MODEL] = response_model
            if response_id:
                end_attrs[g.RESPONSE_ID] = response_id
            if finish_reasons:
                end_attrs[g.RESPONSE_FINISH_REASONS] = tuple(finish_reasons)
            if system_fingerprint:
                end_attrs[g.OPENAI_SYSTEM_FINGERPRINT] = system_fingerprint
            end_attrs.update(usage_attrs)
            if self.capture and choices is not None:
                end_attrs[g.OUTPUT_MESSAGES] = g.output_messages(choices)
            if error_type is not None:
                end_attrs[g.ERROR_TYPE] = error_type
            # Each value is a str, bool, int or tuple of str here (upstream fields were checked above).
            set_owned_attributes(span, end_attrs)
        if error_type is not None:
            span.set_status(Status(StatusCode.ERROR, error_message or error_type))
        ctx = self.context
        per_token = None
        if error_type is None and ttft_s is not None:
            out = usage_attrs.get(g.USAGE_OUTPUT_TOKENS)
            if out is not None and out > 1 and stream_end_s is not None:
                per_token = max(0.0, stream_end_s - ttft_s) / (out - 1)
        self.metrics.record_call(
            self.metric_attrs,
            duration,
            usage_attrs if error_type is None else {},
            error_type,
            ctx,
            ttft_s if error_type is None else None,
            per_token,
        )
        if error_type is not None:
            self.metrics.errors.add(
                1,
                {**self.metric_attrs, g.ERROR_TYPE: error_type, "http.response.status_code": status},
                context=ctx,
            )
        self._remember(response_id, response_model, error_type)
        if self._log_on:
            self._log(status, duration, response_id, response_model, usage_attrs, error_type, ttft_s)
        span.end()

    def _remember(self, response_id: str | None, response_model: str | None, error_type: str | None) -> None:
        """What feedback on this response needs (POST /v1/feedback works with telemetry off too)."""
        if response_id and error_type is None:
            self.responses.add(
                response_id,
                RecordedResponse(
                    response_model or self.meta.upstream_model,
                    self.provider_name,
                    self.meta.tenant,
                    self.span.get_span_context(),
                ),
            )

    def _log(
        self,
        status: int,
        duration: float,
        response_id: str | None,
        response_model: str | None,
        usage_attrs: dict[str, int],
        error_type: str | None,
        ttft_s: float | None,
    ) -> None:
        record: dict[str, Any] = {
            g.REQUEST_ID: self.meta.request_id,
            g.TENANT: self.meta.tenant,
            g.REQUEST_MODEL: self.meta.upstream_model,
            g.PROVIDER_NAME: self.provider_name,
            g.SIMULATED: self.provider.simulated,
            g.REQUEST_STREAM: self.meta.stream,
            "http.response.status_code": status,
            "llm_gateway.duration_ms": round(duration * 1000.0, 3),
            "llm_gateway.upstream.retries": self.retries,
            **usage_attrs,
        }
        if self.meta.requested_model != self.meta.upstream_model:
            record["llm_gateway.requested_model"] = self.meta.requested_model
        if response_model:
            record[g.RESPONSE_MODEL] = response_model
        if response_id:
            record[g.RESPONSE_ID] = response_id
        if ttft_s is not None:
            record["llm_gateway.ttft_ms"] = round(ttft_s * 1000.0, 3)
        if error_type:
            record[g.ERROR_TYPE] = error_type
        if self.meta.user_hash:
            record[g.ENDUSER_PSEUDO_ID] = self.meta.user_hash
        self.request_log.emit(
            logging.INFO if error_type is None else logging.WARNING,
            "chat completion ok" if error_type is None else f"chat completion {error_type}",
            "llm_gateway.request",
            record,
            self.context,
            # Every value is one the gateway made or validated (str, bool, int, float), except the
            # upstream's response id and model, which may be any JSON value: those are then checked.
            plain=(not response_id or response_id.__class__ is str)
            and (not response_model or response_model.__class__ is str),
        )
