"""The one export path shared by every signal: size check, parse, process, forward (split to fit the
downstream limit), status mapping, deadlines and the concurrency limit. Signal handlers only say how to parse
and process their batch; the request and response types come from the gRPC method's descriptor.

Fail closed: the batch is forwarded only after processing succeeded, and the caller gets OK only after the
Collector acknowledged it. Anything else returns an error status and is counted.

A processed batch larger than the forward limit is split by resource, scope and item (``wire.split``) and
forwarded part by part; an item too large on its own is truncated field by field (``wire.truncate``). If a
part fails, the parts already acknowledged are remembered by the fingerprint of the received request, and a
retry of the same request forwards only the rest (so a retry does not duplicate them).
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn, cast

import grpc
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.message import DecodeError, Message

from processors.config import ServerConfig
from processors.deadletter import DeadLetter, InFlight
from processors.telemetry import Telemetry
from processors.wire import repair as wire_repair
from processors.wire import split as wire_split
from processors.wire import truncate as wire_truncate
from processors.wire.index import ITEM, Key, WireError, index

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
# gRPC's refusal of a message over a receiver's limit (Go: "grpc: received message larger than max (N vs. M)")
_TOO_LARGE = re.compile(r"larger than max \((\d+) vs\. (\d+)\)")
_LEDGER_SIZE = 256  # split batches whose progress is remembered for a retry
_ATTEMPTS_SIZE = 4096  # batches whose failed attempts are counted
_TRUNCATE_MARGIN = 64  # bytes below the limit a truncated item aims for


class ForwardLimit:
    """The largest message forwarded, shared by the forwarders of one channel. Starts at
    ``server.forward_max_message_bytes``; lowered if the Collector refuses a message as too large (its
    ``max_recv_msg_size_mib`` is then set lower than the sidecar's: a config mistake, logged, not a wedge)."""

    def __init__(self, configured: int) -> None:
        self.configured = configured
        self.value = configured

    def learn(self, details: str) -> bool:
        """Lower the limit from a "larger than max (N vs. M)" refusal; False if it does not say so."""
        found = _TOO_LARGE.search(details)
        if found is None:
            return False
        downstream_max = int(found.group(2))
        if downstream_max < self.value:
            log.warning(
                "the Collector refuses messages over %d bytes, below server.forward_max_message_bytes=%d; "
                "splitting to its limit (set its otlp/internal max_recv_msg_size_mib to match)",
                downstream_max,
                self.configured,
            )
            self.value = max(downstream_max, 1024)
        return True


@dataclass
class _Progress:
    """What was forwarded of a split batch so far: its items and the Collector's partial-success counts."""

    done: set[Key] = field(default_factory=set)
    rejected: int = 0
    messages: list[str] = field(default_factory=list)


class _DownstreamError(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


@dataclass
class Processed:
    """Result of processing one batch: the bytes to forward and what to count."""

    payload: bytes
    items: int
    record_metrics: Callable[[Telemetry], None] | None = None
    quarantine: list[tuple[str, bytes]] = field(default_factory=list)
    """(reason, request bytes) of items taken out of the batch, to be written to the dead-letter directory."""


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
        limit: ForwardLimit | None = None,
        dead_letter: DeadLetter | None = None,
        inflight: InFlight | None = None,
    ) -> None:
        self.signal = signal
        self._config = server_config
        self._telemetry = telemetry
        self._process = process
        # bytes in, bytes out: the response (including any partial_success) is passed back unchanged
        self._forward = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
        self._slots = threading.BoundedSemaphore(server_config.max_concurrent_batches)
        self._attrs = {"signal": signal}
        self._limit = limit or ForwardLimit(server_config.forward_max_message_bytes)
        rpc = descriptor_pool.Default().FindMethodByName(method.strip("/").replace("/", "."))
        self._request_type = message_factory.GetMessageClass(rpc.input_type)
        self._response_type = message_factory.GetMessageClass(rpc.output_type)
        self._ledger: OrderedDict[bytes, _Progress] = OrderedDict()
        self._ledger_lock = threading.Lock()
        self._dead_letter = dead_letter
        self._inflight = inflight
        self._attempts: OrderedDict[bytes, int] = OrderedDict()

    def handle(self, raw: bytes, context: grpc.ServicerContext) -> bytes:
        limit = self._config.max_message_bytes
        if len(raw) > limit:  # cannot be processed, ever: kept, not dropped and not retried forever
            log.error(
                "request over server.max_message_bytes", extra={"signal": self.signal, "bytes": len(raw)}
            )
            return self._quarantine(context, raw, "too_large", _count_items(raw))
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
        inflight = self._inflight
        if inflight is None:
            return self._process_and_forward(raw, context)
        key = InFlight.key(raw)
        if inflight.crashes.get(key, 0) >= self._config.max_attempts_per_batch - 1:
            log.error(
                "batch was being processed each time the sidecar died; quarantining it unprocessed",
                extra={"signal": self.signal, "crashes": inflight.crashes[key]},
            )
            response = self._quarantine(context, raw, "crashed_sidecar", _count_items(raw))
            inflight.leave(None, key)
            return response
        try:
            marker = inflight.enter(key)
        except OSError as exc:  # no marker: this batch is just not protected against crash loops
            log.warning("cannot write an in-flight marker", extra={"error": str(exc)})
            return self._process_and_forward(raw, context)
        try:
            return self._process_and_forward(raw, context)
        finally:
            inflight.leave(marker, key)

    def _process_and_forward(self, raw: bytes, context: grpc.ServicerContext) -> bytes:
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
            if exc.kind == "worker_lost":  # a batch that kills its worker every time must not loop forever
                return self._suspect(context, raw, "worker_lost", str(exc))
            self._fail(context, grpc.StatusCode.UNAVAILABLE, exc.kind, str(exc))
        except Exception as exc:
            # Fail closed: the batch may be partly redacted, so none of it leaves. The exception text is not
            # echoed back or logged: it could quote the data being redacted. Retryable (it may be passing),
            # and after server.max_attempts_per_batch attempts the batch goes to the dead-letter directory.
            log.error(
                "processing failed; batch not forwarded",
                extra={"signal": self.signal, "error": type(exc).__name__},
            )
            return self._suspect(
                context,
                raw,
                "processing_failed",
                f"sidecar failed to process the {self.signal} batch ({type(exc).__name__}); it was NOT "
                "forwarded (fail closed)",
            )
        telemetry = self._telemetry
        telemetry.process_duration.record(time.perf_counter() - t0, self._attrs)
        telemetry.items_received.add(processed.items, self._attrs)

        set_aside = self._set_aside(context, processed.quarantine)  # before forwarding: never lost after it
        t1 = time.perf_counter()
        try:
            response, forwarded = self._deliver(raw, processed, context)
        except _DownstreamError as err:
            telemetry.forward_duration.record(time.perf_counter() - t1, self._attrs)
            return self._refuse_downstream(context, raw, processed.items, err)
        telemetry.forward_duration.record(time.perf_counter() - t1, self._attrs)
        # Cost, token and redaction counters count what was forwarded, once: a batch the Collector retries
        # after a failed forward (or a split batch resumed after a failed part) is not counted twice, so each
        # counter equals the sum over the exported spans.
        if processed.record_metrics is not None:
            processed.record_metrics(telemetry)
        telemetry.items_forwarded.add(forwarded, self._attrs)
        telemetry.batches.add(1, {"signal": self.signal, "outcome": "forwarded"})
        telemetry.forwarded(self.signal)
        if self._attempts:  # it may be a batch that failed before and now went through
            with self._ledger_lock:
                self._attempts.pop(hashlib.sha256(raw).digest(), None)
        if set_aside:
            response = self._with_rejected(
                response, set_aside, "malformed item(s) quarantined by the sidecar"
            )
        return response

    # --- what cannot be forwarded: bounded retries, then the dead-letter directory ---------------------

    def _suspect(self, context: grpc.ServicerContext, raw: bytes, reason: str, message: str) -> bytes:
        """A failure that may be this batch's own: UNAVAILABLE (the Collector retries) for the first
        ``server.max_attempts_per_batch - 1`` attempts of the same bytes, then quarantined, so it cannot hold
        the Collector's queue forever."""
        fingerprint = hashlib.sha256(raw).digest()
        limit = self._config.max_attempts_per_batch
        with self._ledger_lock:
            attempt = self._attempts.pop(fingerprint, 0) + 1
            if attempt < limit:
                self._attempts[fingerprint] = attempt
                while len(self._attempts) > _ATTEMPTS_SIZE:
                    self._attempts.popitem(last=False)
        if attempt < limit:
            self._fail(
                context,
                grpc.StatusCode.UNAVAILABLE,
                reason,
                f"{message}; attempt {attempt} of {limit}, retry",
            )
        log.error(
            "batch failed on every attempt; quarantining it",
            extra={"signal": self.signal, "reason": reason, "attempts": attempt},
        )
        return self._quarantine(context, raw, reason, _count_items(raw))

    def _quarantine(self, context: grpc.ServicerContext, raw: bytes, reason: str, items: int) -> bytes:
        """Write the batch as received to the dead-letter directory and answer OK with a partial_success
        naming it (the Collector logs it and drops it from its queue, nothing is retried). If it cannot be
        written, UNAVAILABLE: the batch stays in the Collector's queue (and holds it: alert on that)."""
        path = self._write_dead_letter(context, reason, raw, items)
        self._telemetry.batches.add(1, {"signal": self.signal, "outcome": "quarantined"})
        return self._with_rejected(
            self._response_type().SerializeToString(),
            items,
            f"not forwarded ({reason}): quarantined by the sidecar to {path}",
        )

    def _set_aside(self, context: grpc.ServicerContext, entries: list[tuple[str, bytes]]) -> int:
        for reason, data in entries:
            self._write_dead_letter(context, reason, data, 1)
        return len(entries)

    def _write_dead_letter(self, context: grpc.ServicerContext, reason: str, data: bytes, items: int) -> str:
        if self._dead_letter is None:
            self._fail(context, grpc.StatusCode.UNAVAILABLE, "dead_letter_failed", "no dead-letter directory")
        try:
            written = self._dead_letter.write(self.signal, reason, data)
        except OSError as exc:
            log.error(
                "cannot write to the dead-letter directory; the batch stays in the Collector's queue",
                extra={"signal": self.signal, "reason": reason, "error": str(exc)},
            )
            self._fail(
                context,
                grpc.StatusCode.UNAVAILABLE,
                "dead_letter_failed",
                f"the sidecar could not quarantine a {reason} batch ({type(exc).__name__}); retry",
            )
        if written.new:
            self._telemetry.items_quarantined.add(items, {"signal": self.signal, "reason": reason})
        return str(written.path)

    def _with_rejected(self, response: bytes, rejected: int, message: str) -> bytes:
        parsed: Any = self._response_type.FromString(response)
        partial = parsed.partial_success
        field_name = partial.DESCRIPTOR.fields_by_number[1].name
        setattr(partial, field_name, getattr(partial, field_name) + rejected)
        partial.error_message = "; ".join(m for m in (partial.error_message, message) if m)
        return bytes(parsed.SerializeToString())

    def _timeout(self, context: grpc.ServicerContext) -> float:
        timeout = self._config.forward_timeout_seconds
        remaining = context.time_remaining()
        if remaining is not None:
            timeout = min(timeout, remaining - _DEADLINE_MARGIN_S)
        if timeout <= 0:
            raise _DownstreamError(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                "caller deadline expired before the batch could be forwarded",
            )
        return timeout

    def _send(self, payload: bytes, context: grpc.ServicerContext) -> bytes:
        try:
            response: bytes = self._forward(payload, timeout=self._timeout(context))
        except grpc.RpcError as err:
            code = err.code() if isinstance(err, grpc.Call) else grpc.StatusCode.UNKNOWN
            details = err.details() if isinstance(err, grpc.Call) else str(err)
            raise _DownstreamError(code, details or "") from None
        return response

    def _deliver(self, raw: bytes, processed: Processed, context: grpc.ServicerContext) -> tuple[bytes, int]:
        """Forward the processed batch, split if it is over the forward limit; the Collector's response and
        the number of items it acknowledged."""
        payload = processed.payload
        if len(payload) <= self._limit.value:
            try:
                return self._send(payload, context), processed.items
            except _DownstreamError as err:
                if err.code != grpc.StatusCode.RESOURCE_EXHAUSTED or not self._limit.learn(err.details):
                    raise
        return self._deliver_split(raw, payload, context)

    def _deliver_split(self, raw: bytes, payload: bytes, context: grpc.ServicerContext) -> tuple[bytes, int]:
        fingerprint = hashlib.sha256(raw).digest()
        with self._ledger_lock:
            progress = self._ledger.pop(fingerprint, None)
        store = self._dead_letter.split_progress if self._dead_letter is not None else None
        if progress is None and store is not None:  # the sidecar may have been restarted since
            saved = store.load(fingerprint)
            if saved is not None:
                done, rejected, messages = saved
                progress = _Progress({cast(Key, tuple(k)) for k in done}, rejected, messages)
        if progress is not None and progress.done:
            self._telemetry.items_resumed.add(len(progress.done), self._attrs)
        progress = progress or _Progress()
        forwarded = 0
        self._telemetry.batches_split.add(1, self._attrs)
        try:
            for _attempt in range(2):  # a second time only with a limit learned from the Collector
                try:
                    parts = wire_split.split(payload, self._limit.value, progress.done)
                except WireError as exc:  # processed bytes always index; if not: fail closed, retryable
                    raise _DownstreamError(grpc.StatusCode.INTERNAL, f"cannot split: {exc}") from exc
                try:
                    for part in parts:
                        data = self._truncated(part) if part.oversize else part.payload
                        self._absorb(progress, self._send(data, context))
                        progress.done.update(part.items)
                        forwarded += len(part.items)
                        if store is not None:
                            store.save(fingerprint, progress.done, progress.rejected, progress.messages)
                    break
                except _DownstreamError as err:
                    if err.code != grpc.StatusCode.RESOURCE_EXHAUSTED or not self._limit.learn(err.details):
                        raise
                    if _attempt:
                        raise
        except _DownstreamError:
            with self._ledger_lock:  # a retry of this request forwards only the rest
                self._ledger[fingerprint] = progress
                while len(self._ledger) > _LEDGER_SIZE:
                    self._ledger.popitem(last=False)
            raise
        if store is not None:
            store.drop(fingerprint)
        response: Any = self._response_type()
        if progress.rejected or progress.messages:
            partial = response.partial_success
            setattr(partial, partial.DESCRIPTOR.fields_by_number[1].name, progress.rejected)
            partial.error_message = "; ".join(progress.messages)
        return response.SerializeToString(), forwarded

    def _absorb(self, progress: _Progress, response: bytes) -> None:
        """Add one part's partial_success (rejected count, message) to the batch's."""
        try:
            partial = cast(Any, self._response_type.FromString(response)).partial_success
        except DecodeError:
            return
        progress.rejected += getattr(partial, partial.DESCRIPTOR.fields_by_number[1].name)
        if partial.error_message:
            progress.messages.append(partial.error_message)

    def _truncated(self, part: wire_split.Part) -> bytes:
        """One item over the forward limit on its own, truncated field by field to fit (after redaction:
        what is kept was scanned)."""
        request = self._request_type.FromString(part.payload)
        done = wire_truncate.fit(request, self._limit.value - _TRUNCATE_MARGIN)
        if done.changed:
            log.warning(
                "an item over the forward limit was truncated",
                extra={"signal": self.signal, "fields": done.fields, "entries_dropped": done.entries_dropped},
            )
            self._telemetry.items_repaired.add(1, {"signal": self.signal, "reason": "too_large"})
        return bytes(request.SerializeToString())

    def _refuse_downstream(
        self, context: grpc.ServicerContext, raw: bytes, items: int, err: _DownstreamError
    ) -> bytes:
        code, details = err.code, err.details
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED and _TOO_LARGE.search(details):
            # still too large after splitting and truncating: this batch's own failure, not an overload
            return self._suspect(context, raw, "downstream_too_large", f"Collector: {details}")
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
        # A permanent refusal (INVALID_ARGUMENT, …) of what the sidecar produced: retrying cannot help and
        # passing the code back would make the Collector drop the batch. Kept instead.
        log.error(
            "forward rejected downstream; quarantining the batch",
            extra={"signal": self.signal, "code": code.name, "details": details},
        )
        self._telemetry.forward_errors.add(1, {"signal": self.signal, "kind": "downstream_rejected"})
        return self._quarantine(context, raw, "downstream_rejected", items)

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


def _count_items(raw: bytes) -> int:
    """Spans / log records / metrics in a request, read from the wire (0 if it cannot be read)."""
    try:
        return sum(1 for region in index(raw).regions if region.kind == ITEM)
    except WireError:
        return 0


def parse_repairing(
    request_type: type[Message], raw: bytes
) -> tuple[Message, bytes, wire_repair.Repair | None]:
    """Parse ``raw``; if Python's protobuf refuses it, repair it item by item (``wire.repair``: invalid UTF-8,
    excessive nesting, a malformed item removed) and parse that. Returns the request, the bytes it was parsed
    from and the repair (None if none was needed). Rejected only if the request as a whole is unparseable."""
    what = request_type.DESCRIPTOR.name
    try:
        return request_type.FromString(raw), raw, None
    except DecodeError as exc:
        first = exc
    try:
        fixed = wire_repair.repair(raw, request_type.DESCRIPTOR)
        return request_type.FromString(fixed.payload), fixed.payload, fixed
    except (WireError, DecodeError):
        raise Rejected(f"request is not a valid {what} protobuf message: {first}") from first
