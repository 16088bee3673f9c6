"""POST /v1/chat/completions: route, call the provider inside a GenAI span, answer as OpenAI does.

A completion is returned as the body to send; a stream as a :class:`ChatStream`, which relays itself over
ASGI ``send`` (app/chat_endpoint.py sends both)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncGenerator, Awaitable
from typing import Any, TypeVar

import anyio

from app import __version__, jsonio
from app.asgi import Message, Receive, Send
from app.errors import ApiError
from app.genai_call import CallMeta, CardinalityGuard, GenAICall, ResponseIndex
from app.providers.base import ChatCall, LastBatch, ProviderError, SimulatedDisconnect, StreamBatch
from app.request_body import CLIENT_CLOSED_REQUEST
from app.request_log import RequestLog
from app.routing import Router, UnknownModel
from app.telemetry.lean_trace import attach_context, detach_context, owned_span_starter
from app.telemetry.metrics import GatewayMetrics
from app.telemetry.setup import Telemetry

T = TypeVar("T")


def provider_error_response(exc: ProviderError) -> ApiError:
    headers: dict[str, str] = {}
    if exc.retry_after_s is not None:
        headers["retry-after"] = str(max(1, round(exc.retry_after_s)))
        headers["retry-after-ms"] = str(int(exc.retry_after_s * 1000))
    return ApiError(
        exc.status,
        exc.message,
        code=exc.code,
        error_type=exc.error_type,
        headers=headers,
        already_counted=True,
    )


class ChatService:
    def __init__(
        self, router: Router, telemetry: Telemetry, metrics: GatewayMetrics, logger: logging.Logger
    ) -> None:
        self.router = router
        self.telemetry = telemetry
        self.metrics = metrics
        self.logger = logger
        self.request_log = RequestLog(logger)
        self.tracer = telemetry.tracer_provider.get_tracer("app.gateway", __version__)
        self._start_span = owned_span_starter(self.tracer)
        self.model_guard = CardinalityGuard()
        self.responses = ResponseIndex()
        # Whether a request log record goes anywhere (OTLP, stderr): else it is not even built.
        self._log_on = any(not isinstance(h, logging.NullHandler) for h in logger.handlers)

    async def handle(
        self,
        body: dict[str, Any],
        *,
        stream: bool,
        include_usage: bool,
        tenant: str,
        request_id: str,
        user_hash: str | None,
        fault: str | None,
    ) -> bytes | ChatStream:
        """The completion's JSON body, or the stream to relay; an :class:`ApiError` for a failed call."""
        model = body["model"]
        try:
            route = self.router.resolve(model)
        except UnknownModel:
            raise ApiError(
                404,
                f"The model `{model}` does not exist or you do not have access to it.",
                param="model",
                code="model_not_found",
                error_type="model_not_found",
            ) from None
        meta = CallMeta(
            request_id=request_id,
            tenant=tenant,
            user_hash=user_hash,
            requested_model=model,
            upstream_model=route.upstream_model,
            stream=stream,
        )
        call = GenAICall(
            start_span=self._start_span,
            metrics=self.metrics,
            request_log=self.request_log,
            provider=route.provider,
            meta=meta,
            body=body,
            capture_content=self.telemetry.capture_content,
            model_guard=self.model_guard,
            responses=self.responses,
            telemetry=self.telemetry.enabled,
            log=self._log_on,
        )
        chat_call = ChatCall(
            body=body, upstream_model=route.upstream_model, stream=stream, fault=fault, on_retry=call.on_retry
        )
        if not stream:
            return await self._complete(call, chat_call)
        return await self._start_stream(call, chat_call, include_usage)

    def _internal_error(self, exc: Exception) -> ApiError:
        self.logger.error("model call failed unexpectedly", exc_info=exc)
        return ApiError(
            500,
            "The gateway hit an internal error.",
            code="internal_error",
            error_type=type(exc).__qualname__,
            already_counted=True,
        )

    async def _complete(self, call: GenAICall, chat_call: ChatCall) -> bytes:
        try:
            if call.telemetry:  # the span is current for the upstream call (its HTTP span, traceparent)
                data, raw = await _in_span(call, call.provider.complete_raw(chat_call))
            else:
                data, raw = await call.provider.complete_raw(chat_call)
        except ProviderError as exc:
            call.finish(status=exc.status, error_type=exc.error_type, error_message=exc.message)
            raise provider_error_response(exc) from None
        except asyncio.CancelledError:
            call.finish(status=CLIENT_CLOSED_REQUEST, error_type="client_disconnect")
            raise
        except Exception as exc:  # a bug or an unmapped failure: the span must still end, with the cause
            call.finish(status=500, error_type=type(exc).__qualname__, error_message=str(exc))
            raise self._internal_error(exc) from exc
        choices = data.get("choices") or []
        call.finish(
            status=200,
            response_id=data.get("id"),
            response_model=data.get("model"),
            finish_reasons=[str(c.get("finish_reason") or "error") for c in choices],
            usage=data.get("usage"),
            choices=choices,
            system_fingerprint=data.get("system_fingerprint"),
        )
        # An upstream's body goes back as it came (no second serialisation); the simulated one is built here.
        return raw if raw is not None else jsonio.dumps(data)

    async def _start_stream(self, call: GenAICall, chat_call: ChatCall, include_usage: bool) -> ChatStream:
        upstream = call.provider.stream_batches(chat_call)
        try:
            # Wait for the first chunk before answering, so upstream errors (429, 5xx, timeouts) become
            # proper HTTP error responses instead of a 200 stream that fails.
            if call.telemetry:
                first = await _in_span(call, anext(upstream))
            else:
                first = await anext(upstream)
        except StopAsyncIteration:
            call.finish(status=502, error_type="empty_upstream_stream", error_message="upstream sent nothing")
            raise ApiError(
                502, "the upstream stream was empty", error_type="empty_upstream_stream", already_counted=True
            ) from None
        except ProviderError as exc:
            await upstream.aclose()
            call.finish(status=exc.status, error_type=exc.error_type, error_message=exc.message)
            raise provider_error_response(exc) from None
        except asyncio.CancelledError:
            with anyio.CancelScope(shield=True):
                await upstream.aclose()
            call.finish(status=CLIENT_CLOSED_REQUEST, error_type="client_disconnect")
            raise
        except Exception as exc:
            with anyio.CancelScope(shield=True):
                await upstream.aclose()
            call.finish(status=500, error_type=type(exc).__qualname__, error_message=str(exc))
            raise self._internal_error(exc) from exc
        ttft = time.perf_counter() - call.started
        call.record_first_chunk(ttft)
        return ChatStream(call, upstream, first, ttft, include_usage)


async def _in_span(call: GenAICall, step: Awaitable[T]) -> T:
    """``step`` with the call's span current, as ``trace.use_span(span, end_on_exit=False)`` runs it (an
    exception is recorded on the span), without that context manager's generator per request."""
    token = attach_context(call.context)
    try:
        return await step
    except Exception as exc:
        if call.span.is_recording():
            call.span.record_exception(exc)
        raise
    finally:
        detach_context(token)


def _sse(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode() + b"\n\n"


_NO_DELTA: dict[str, Any] = {}
_USAGE_NULL = b',"usage":null}'
_DONE = b"data: [DONE]\n\n"
# As Starlette's StreamingResponse(media_type="text/event-stream", headers=...) wrote them.
SSE_HEADERS = [
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
    (b"content-type", b"text/event-stream; charset=utf-8"),
]


class ChatStream:
    """Relays upstream chunks as SSE while assembling what the span needs; always finalises exactly once.

    :meth:`relay` sends the response over ASGI itself. A client that leaves mid-stream is noticed from its
    ``http.disconnect`` at once (not at the next write, which may be long after with a slow model): the
    upstream call is cancelled and the call ends as 499 ``client_disconnect``.
    """

    def __init__(
        self,
        call: GenAICall,
        upstream: AsyncGenerator[StreamBatch, None],
        first: StreamBatch,
        ttft_s: float,
        include_usage: bool,
    ) -> None:
        self.call = call
        self._upstream = upstream
        self._first = first
        self._ttft = ttft_s
        self._include_usage = include_usage
        self._metrics = metrics = call.metrics
        self._contents: dict[int, list[str]] = {}  # index → text deltas (with content capture)
        self._texts: set[int] = set()  # indexes of choices that had text (without content capture)
        self._finish: dict[int, str] = {}
        self._usage: dict[str, Any] | None = None
        self._id: str | None = None
        self._model: str | None = None
        self._fingerprint: str | None = None
        self._relaying = False  # while True, the client leaving cancels the relay
        self._client_gone = False
        self._active = self._collect = call.telemetry
        self._capture = call.telemetry and call.capture
        self._watcher: asyncio.Future[None] | None = None
        self._receive: Receive | None = None
        self._task: asyncio.Task[Any] | None = None
        if self._active:
            self._stream_attrs = {"llm_gateway.tenant": call.meta.tenant}  # llm_gateway.active_streams
            metrics.active_streams.add(1, self._stream_attrs, context=call.context)

    def _forward(self, chunk: dict[str, Any], raw: bytes | None) -> bytes | None:
        """Collect telemetry from a chunk; returns its SSE event for the client (None = drop). An upstream
        chunk the client gets unchanged is passed through as the bytes that came, not re-serialised."""
        self._id = self._id or chunk.get("id")
        self._model = chunk.get("model") or self._model
        if self._collect:  # the choices' text and finish reasons feed the span only
            fingerprint = chunk.get("system_fingerprint")
            if fingerprint:
                self._fingerprint = fingerprint
            for choice in chunk.get("choices") or ():
                idx = choice.get("index", 0)
                if idx.__class__ is not int:
                    idx = int(idx)
                content = (choice.get("delta") or _NO_DELTA).get("content")
                if isinstance(content, str):
                    # The text is kept only for output-message capture; its choice's index always counts.
                    if self._capture:
                        self._contents.setdefault(idx, []).append(content)
                    else:
                        self._texts.add(idx)
                reason = choice.get("finish_reason")
                if reason:
                    self._finish[idx] = reason if reason.__class__ is str else str(reason)
        usage = chunk.get("usage")
        if usage:
            self._usage = usage
            if not self._include_usage:
                # Usage was requested upstream for our telemetry only; the client did not ask for it.
                if not chunk.get("choices"):
                    return None
                exact = json.loads(raw) if raw is not None else chunk  # not orjson's reading: rewritten
                return _sse({k: v for k, v in exact.items() if k != "usage"})
        elif self._include_usage and "usage" not in chunk:
            # OpenAI sends usage: null on every chunk in this mode.
            if raw is not None and raw.endswith(b"}") and raw != b"{}":
                return b"data: " + raw[:-1] + _USAGE_NULL + b"\n\n"
            return _sse({**chunk, "usage": None})
        return b"data: " + raw + b"\n\n" if raw is not None else _sse(chunk)

    def _events(self, batch: StreamBatch) -> bytes:
        """One write's worth: the events of chunks that arrived together."""
        out = [event for chunk, raw in batch if (event := self._forward(chunk, raw)) is not None]
        return b"".join(out)

    def _choices(self, indexes: list[int]) -> list[dict[str, Any]]:
        return [
            {
                "index": i,
                "message": {"role": "assistant", "content": "".join(self._contents.get(i, []))},
                "finish_reason": self._finish.get(i),
            }
            for i in indexes
        ]

    def _finalize(self, status: int, error_type: str | None = None, message: str | None = None) -> None:
        if self._active:
            self._active = False
            self._metrics.active_streams.add(-1, self._stream_attrs, context=self.call.context)
        end = time.perf_counter() - self.call.started
        indexes = sorted(self._contents.keys() | self._texts | self._finish.keys())
        self.call.finish(
            status=status,
            response_id=self._id,
            response_model=self._model,
            finish_reasons=[self._finish.get(i, "error") for i in indexes],
            usage=self._usage,
            # Only output-message capture reads the assembled text; otherwise it is not joined at all.
            choices=self._choices(indexes) if self.call.capture else None,
            system_fingerprint=self._fingerprint,
            error_type=error_type,
            error_message=message,
            ttft_s=self._ttft,
            stream_end_s=end,
        )

    async def relay(self, send: Send, receive: Receive, headers: list[tuple[bytes, bytes]]) -> None:
        """The whole response: its head (``SSE_HEADERS`` + ``headers``), the events, ``[DONE]``."""
        task = asyncio.current_task()
        assert task is not None
        self._relaying = True
        self._receive, self._task = receive, task
        try:
            await self._relay(send, headers)
        except asyncio.CancelledError:
            if not self._client_gone:
                raise
            task.uncancel()  # the cancellation was ours and is handled: the request ends normally
        finally:
            self._relaying = False
            if self._watcher is not None:
                self._watcher.cancel()
            if not self.call.finished:  # pragma: no cover - every path of _relay finalises
                self._finalize(CLIENT_CLOSED_REQUEST, "client_disconnect", "the client disconnected")

    def _watch_for_disconnect(self) -> None:
        """From the first wait on the upstream on (a stream that came whole needs no watching)."""
        if self._watcher is None and self._receive is not None and self._task is not None:
            self._watcher = asyncio.ensure_future(self._watch_disconnect(self._receive, self._task))

    async def _watch_disconnect(self, receive: Receive, task: asyncio.Task[Any]) -> None:
        message: Message = await receive()
        while message["type"] != "http.disconnect":
            message = await receive()
        if self._relaying:
            self._client_gone = True
            task.cancel()

    async def _relay(self, send: Send, headers: list[tuple[bytes, bytes]]) -> None:
        metrics = self._metrics
        latest = self.call.telemetry and metrics.latest
        completed = False
        try:
            await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS + headers})
            last = time.perf_counter()
            batch = self._first
            if latest:  # chunks that came with the first one: no gap
                for _ in batch[1:]:
                    metrics.record_chunk_gap(self.call.metric_attrs, 0.0, self.call.context)
            while type(batch) is not LastBatch:
                events = self._events(batch)
                if events:
                    await send({"type": "http.response.body", "body": events, "more_body": True})
                self._watch_for_disconnect()
                try:
                    batch = await anext(self._upstream)
                except StopAsyncIteration:
                    batch = LastBatch()  # ended without saying which batch was its last
                    break
                if latest:
                    now = time.perf_counter()
                    for i in range(len(batch)):
                        gap = now - last if i == 0 else 0.0
                        metrics.record_chunk_gap(self.call.metric_attrs, gap, self.call.context)
                    last = now
            tail = self._events(batch)  # sent with [DONE], in one write
            completed = True
        except SimulatedDisconnect as exc:
            self._finalize(200, exc.error_type, exc.message)
            # Re-raised so the server aborts the connection: the client sees a dropped stream.
            raise
        except ProviderError as exc:
            self._finalize(200, exc.error_type, exc.message)
            # Headers are gone; OpenAI reports mid-stream failures as an error event.
            await send({"type": "http.response.body", "body": _sse(provider_error_response(exc).body())})
            return
        except asyncio.CancelledError:
            self._finalize(CLIENT_CLOSED_REQUEST, "client_disconnect", "the client disconnected mid-stream")
            raise
        except Exception as exc:
            self._finalize(200, type(exc).__qualname__, str(exc))
            raise
        finally:
            if completed:
                await self._upstream.aclose()  # at its end, or at its last batch: nothing to wait for
            else:
                self._relaying = False  # ending anyway: a disconnect now must not interrupt the cleanup
                with anyio.CancelScope(shield=True):
                    await self._upstream.aclose()
        self._finalize(200)
        self._relaying = False
        await send({"type": "http.response.body", "body": tail + _DONE})
