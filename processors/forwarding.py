"""The one export path shared by traces and logs: size check, parse, process, forward, status mapping,
deadlines and the concurrency limit. Signal handlers only say how to parse and process their batch.

Fail closed: the batch is forwarded only after processing succeeded, and the caller gets OK only after the
Collector acknowledged it. Anything else returns an error status and is counted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

import grpc
from google.protobuf.message import DecodeError

from processors.config import ServerConfig
from processors.telemetry import Telemetry

log = logging.getLogger("processors.forwarding")

# Downstream statuses the Collector's exporter should retry (we answer UNAVAILABLE); other downstream errors
# are passed through as they are.
_RETRYABLE_DOWNSTREAM = {
    grpc.StatusCode.UNAVAILABLE: "unavailable",
    grpc.StatusCode.DEADLINE_EXCEEDED: "deadline",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "downstream_overloaded",
    grpc.StatusCode.ABORTED: "unavailable",
    grpc.StatusCode.CANCELLED: "unavailable",
    grpc.StatusCode.UNKNOWN: "unavailable",
    grpc.StatusCode.INTERNAL: "downstream_internal",
}
_DEADLINE_MARGIN_S = 0.01


@dataclass
class Processed:
    """Result of processing one batch: the bytes to forward and what to count."""

    payload: bytes
    items: int
    record_metrics: Callable[[Telemetry], None] | None = None


class Rejected(Exception):
    """Processing refused the input (bad protobuf): answered with INVALID_ARGUMENT."""


class Unavailable(Exception):
    """Processing could not be done now (a worker process was lost, or was slower than the caller's
    deadline): answered with UNAVAILABLE so the caller retries; counted under ``kind``."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class ExportForwarder:
    """Handles one OTLP Export method: ``raw request bytes -> process -> forward -> raw response bytes``."""

    def __init__(
        self,
        *,
        signal: str,
        method: str,
        channel: grpc.Channel,
        server_config: ServerConfig,
        telemetry: Telemetry,
        process: Callable[[bytes, float | None], Processed],
    ) -> None:
        self.signal = signal
        self._config = server_config
        self._telemetry = telemetry
        self._process = process
        # bytes in, bytes out: the response (including any partial_success) is passed back unchanged
        self._forward = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
        self._slots = threading.BoundedSemaphore(server_config.max_concurrent_batches)
        self._attrs = {"signal": signal}

    def handle(self, raw: bytes, context: grpc.ServicerContext) -> bytes:
        limit = self._config.max_message_bytes
        if len(raw) > limit:
            self._fail(
                context,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                "too_large",
                f"{self.signal} export request is {len(raw)} bytes, over the sidecar's limit of {limit} "
                "bytes (server.max_message_bytes); send smaller batches",
            )
        remaining = context.time_remaining()
        wait = (
            self._config.queue_wait_seconds
            if remaining is None
            else min(self._config.queue_wait_seconds, max(remaining, 0.0))
        )
        if not self._slots.acquire(timeout=wait):
            self._fail(
                context,
                grpc.StatusCode.UNAVAILABLE,
                "overloaded",
                f"sidecar overloaded: {self._config.max_concurrent_batches} batches in flight; retry later",
            )
        try:
            return self._handle_in_slot(raw, context)
        finally:
            self._slots.release()

    def _handle_in_slot(self, raw: bytes, context: grpc.ServicerContext) -> bytes:
        t0 = time.perf_counter()
        remaining = context.time_remaining()
        try:
            # the processor gets what is left of the caller's deadline (a worker pool waits no longer)
            processed = self._process(raw, None if remaining is None else remaining - _DEADLINE_MARGIN_S)
        except Rejected as exc:
            self._fail(context, grpc.StatusCode.INVALID_ARGUMENT, "invalid_argument", str(exc))
        except Unavailable as exc:
            log.warning(
                "processing unavailable; caller will retry", extra={"signal": self.signal, "kind": exc.kind}
            )
            self._fail(context, grpc.StatusCode.UNAVAILABLE, exc.kind, str(exc))
        except Exception as exc:
            # Fail closed: the batch may be partly redacted, so none of it leaves. The exception text is not
            # echoed back or logged: it could quote the data being redacted.
            log.error(
                "processing failed; batch not forwarded",
                extra={"signal": self.signal, "error": type(exc).__name__},
            )
            self._fail(
                context,
                grpc.StatusCode.INTERNAL,
                "internal",
                f"sidecar failed to process the {self.signal} batch ({type(exc).__name__}); it was NOT "
                "forwarded (fail closed)",
            )
        telemetry = self._telemetry
        telemetry.process_duration.record(time.perf_counter() - t0, self._attrs)
        telemetry.items_received.add(processed.items, self._attrs)

        timeout = self._config.forward_timeout_seconds
        remaining = context.time_remaining()
        if remaining is not None:
            timeout = min(timeout, remaining - _DEADLINE_MARGIN_S)
        if timeout <= 0:
            self._fail(
                context,
                grpc.StatusCode.UNAVAILABLE,
                "deadline",
                "caller deadline expired before the batch could be forwarded; retry",
            )
        t1 = time.perf_counter()
        try:
            response: bytes = self._forward(processed.payload, timeout=timeout)
        except grpc.RpcError as err:
            code = err.code() if isinstance(err, grpc.Call) else grpc.StatusCode.UNKNOWN
            details = err.details() if isinstance(err, grpc.Call) else str(err)
            telemetry.forward_duration.record(time.perf_counter() - t1, self._attrs)
            kind = _RETRYABLE_DOWNSTREAM.get(code)
            if kind is not None:
                log.warning(
                    "forward failed; caller will retry",
                    extra={"signal": self.signal, "code": code.name, "details": details},
                )
                self._fail(
                    context,
                    grpc.StatusCode.UNAVAILABLE,
                    kind,
                    f"forward to the Collector failed ({code.name}: {details}); retry",
                )
            log.error(
                "forward rejected downstream",
                extra={"signal": self.signal, "code": code.name, "details": details},
            )
            self._fail(
                context, code, "downstream_rejected", f"Collector rejected the batch ({code.name}: {details})"
            )
        telemetry.forward_duration.record(time.perf_counter() - t1, self._attrs)
        # Cost, token and redaction counters count what was forwarded, once: a batch the Collector retries
        # after a failed forward is not counted twice (the counter equals the sum over the exported spans).
        if processed.record_metrics is not None:
            processed.record_metrics(telemetry)
        telemetry.items_forwarded.add(processed.items, self._attrs)
        telemetry.batches.add(1, {"signal": self.signal, "outcome": "forwarded"})
        telemetry.forwarded(self.signal)
        return response

    def _fail(
        self, context: grpc.ServicerContext, code: grpc.StatusCode, kind: str, message: str
    ) -> NoReturn:
        self._telemetry.forward_errors.add(1, {"signal": self.signal, "kind": kind})
        outcome = (
            "rejected"
            if code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED)
            else "failed"
        )
        self._telemetry.batches.add(1, {"signal": self.signal, "outcome": outcome})
        context.abort(code, message)
        raise AssertionError("unreachable: context.abort raises")  # pragma: no cover


def parse_or_reject(parse: Callable[[bytes], object], raw: bytes, what: str) -> object:
    try:
        return parse(raw)
    except DecodeError as exc:
        raise Rejected(f"request is not a valid {what} protobuf message: {exc}") from exc
