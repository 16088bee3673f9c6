"""OTLP protobuf encoding of spans and log records, straight to wire bytes, for the gRPC exporters.

The SDK's encoder (opentelemetry-exporter-otlp-proto-common) builds one protobuf object per span, per
attribute and per attribute value in Python; for the gateway's spans and request logs that is ~40-55 µs per
item on the export thread, which shares the GIL with request handling. Almost every attribute the gateway
emits repeats across requests (operation, model, provider, tenant, route...), so here each (key, value) pair
is encoded once and reused as bytes; only ids, timestamps and the few unique values are encoded per item.
Anything unusual (arrays other than string arrays, maps, bytes, events, links) goes through the SDK's own
encoder functions, so the result parses to exactly what ``encode_spans``/``encode_logs`` produce
(tests/app/test_otlp_encode.py compares them).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.common._internal import (
    _encode_instrumentation_scope,
    _encode_key_value,
    _encode_resource,
)
from opentelemetry.exporter.otlp.proto.common._internal.trace_encoder import _encode_events, _encode_links
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from app.telemetry.lean_trace import LeanSpan

_pack_d = struct.Struct("<d").pack
_pack_q = struct.Struct("<Q").pack
_pack_i = struct.Struct("<I").pack

# Span.flags: SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK (0x100), plus IS_REMOTE (0x200) for a remote parent.
_FLAGS_LOCAL = b"\x85\x01" + _pack_i(0x100)
_FLAGS_REMOTE = b"\x85\x01" + _pack_i(0x300)
_KIND = {
    SpanKind.INTERNAL: b"\x30\x01",
    SpanKind.SERVER: b"\x30\x02",
    SpanKind.CLIENT: b"\x30\x03",
    SpanKind.PRODUCER: b"\x30\x04",
    SpanKind.CONSUMER: b"\x30\x05",
}
_CACHE_LIMIT = 8192
_PER_KEY_LIMIT = 256
_Grouped = dict[int, tuple[Any, dict[Any, tuple[Any, list[bytes]]]]]


def _varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64  # int64 two's complement: ten bytes
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _ld(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field."""
    return tag + _varint(len(payload)) + payload


def _any_value(value: Any) -> bytes | None:
    """AnyValue bytes for scalars and string arrays; None for what the SDK's encoder should handle."""
    kind = value.__class__
    if kind is str:
        return _ld(b"\x0a", value.encode())
    if kind is bool:
        return b"\x10\x01" if value else b"\x10\x00"
    if kind is int:
        return b"\x18" + _varint(value)
    if kind is float:
        return b"\x21" + _pack_d(value)
    if kind is tuple and all(v.__class__ is str for v in value):
        return _ld(b"\x2a", b"".join(_ld(b"\x0a", _ld(b"\x0a", v.encode())) for v in value))
    return None


def _plain(attributes: Any) -> Any:
    """The dict behind the SDK's read-only attribute views, when there is one (a faster items())."""
    inner = getattr(attributes, "_dict", None)
    return inner if inner.__class__ is dict else attributes


class _AttributeCache:
    """(key, value) → the encoded KeyValue field (tag, length, bytes), for the values that repeat; bounded.

    Two levels, key then value, so that the common case (a string value) needs no tuple per lookup; other
    values are looked up with their type (True, 1 and 1.0 are equal in Python, not on the wire)."""

    def __init__(self, field_tag: bytes) -> None:
        self._tag = field_tag
        self._items: dict[str, dict[Any, bytes]] = {}
        self._size = 0

    def encode(self, attributes: Any) -> bytes:
        if not attributes:
            return b""
        items = self._items
        out = []
        for key, value in _plain(attributes).items():
            by_value = items.get(key)
            if by_value is None:
                by_value = items[key] = {}
            value_key: Any = value if value.__class__ is str else (value.__class__, value)
            try:
                encoded = by_value.get(value_key)
            except TypeError:  # unhashable: a list or a map
                encoded = None
                value_key = None
            if encoded is None:
                kv = self._encode_pair(key, value)
                if kv is None:
                    continue
                encoded = _ld(self._tag, kv)
                # A key with this many distinct values (request ids, durations) will not repeat: caching
                # its values would only churn the cache and clear the values that do repeat.
                if value_key is not None and len(by_value) < _PER_KEY_LIMIT:
                    if self._size >= _CACHE_LIMIT:
                        items.clear()
                        self._size = 0
                        by_value = items[key] = {}
                    by_value[value_key] = encoded
                    self._size += 1
            out.append(encoded)
        return b"".join(out)

    @staticmethod
    def _encode_pair(key: str, value: Any) -> bytes | None:
        try:
            any_value = _any_value(value)
        except UnicodeEncodeError:
            any_value = None
        if any_value is None:
            try:
                return bytes(_encode_key_value(key, value).SerializeToString())
            except Exception:  # the SDK's encoder logs and skips such attributes too
                return None
        return (_ld(b"\x0a", key.encode()) if key else b"") + _ld(b"\x12", any_value)


class _Grouping:
    """Resource → scope → encoded items, then the request's bytes; resource/scope bytes are cached.

    Keyed by identity: ``Resource.__hash__`` serialises the attributes to JSON on every call.
    """

    def __init__(self, scope_items_tag: bytes) -> None:
        self._tag = scope_items_tag
        self._cache: dict[int, tuple[Any, bytes]] = {}

    def _encoded(self, obj: Any, encode: Any) -> bytes:
        hit = self._cache.get(id(obj))
        if hit is not None and hit[0] is obj:
            return hit[1]
        if len(self._cache) > 256:
            self._cache.clear()
        encoded = _ld(b"\x0a", encode(obj).SerializeToString())
        self._cache[id(obj)] = (obj, encoded)  # holding obj keeps its id from being reused
        return encoded

    def request(self, grouped: _Grouped) -> bytes:
        resources = []
        for resource, scopes in grouped.values():
            scope_parts = []
            for scope, items in scopes.values():
                # ScopeX: scope (1), items (2), schema_url (3)
                head = self._encoded(scope, _encode_instrumentation_scope)
                schema = scope.schema_url if scope is not None else None
                body = head + b"".join(_ld(self._tag, item) for item in items)
                if schema:
                    body += _ld(b"\x1a", schema.encode())
                scope_parts.append(_ld(b"\x12", body))
            # ResourceX: resource (1), scope_x (2), schema_url (3)
            body = self._encoded(resource, _encode_resource) + b"".join(scope_parts)
            if resource.schema_url:
                body += _ld(b"\x1a", resource.schema_url.encode())
            resources.append(_ld(b"\x0a", body))
        return b"".join(resources)


def _group(grouped: _Grouped, resource: Any, scope: Any) -> list[bytes]:
    entry = grouped.get(id(resource))
    if entry is None:
        entry = grouped[id(resource)] = (resource, {})
    scopes = entry[1]
    items = scopes.get(scope)  # by value, as the SDK groups them (two tracers, one scope)
    if items is None:
        items = scopes[scope] = (scope, [])
    return items[1]


class SpanEncoder:
    def __init__(self) -> None:
        self._attrs = _AttributeCache(b"\x4a")
        self._grouping = _Grouping(b"\x12")
        self._names: dict[str, bytes] = {}

    def encode_span(self, span: ReadableSpan) -> bytes:
        if span.__class__ is LeanSpan:  # its fields as they are: no property calls, no tuple copies
            lean: Any = span
            ctx, parent, name, kind = lean._span_context, lean._parent, lean._name, lean._kind
            start, end, attributes, status = lean._start_time, lean._end_time, lean._values, lean._status
            dropped, events, links = lean._dropped_attributes, lean._events, lean._links
            dropped_events = dropped_links = 0
        else:
            ctx, parent, name, kind = span.get_span_context(), span.parent, span.name, span.kind
            start, end, status = span.start_time, span.end_time, span.status
            attributes = getattr(span, "_attributes", None) or span.attributes
            dropped, events, links = span.dropped_attributes, span.events, span.links
            dropped_events, dropped_links = span.dropped_events, span.dropped_links
        assert ctx is not None
        parts = [
            b"\x0a\x10" + ctx.trace_id.to_bytes(16, "big"),
            b"\x12\x08" + ctx.span_id.to_bytes(8, "big"),
        ]
        if ctx.trace_state:
            state = ",".join(f"{k}={v}" for k, v in ctx.trace_state.items())
            parts.append(_ld(b"\x1a", state.encode()))
        if parent:
            parts.append(b"\x22\x08" + parent.span_id.to_bytes(8, "big"))
        if name:
            encoded_name = self._names.get(name)
            if encoded_name is None:
                if len(self._names) >= _CACHE_LIMIT:
                    self._names.clear()
                encoded_name = self._names[name] = _ld(b"\x2a", name.encode())
            parts.append(encoded_name)
        parts.append(_KIND[kind])
        if start:
            parts.append(b"\x39" + _pack_q(start))
        if end:
            parts.append(b"\x41" + _pack_q(end))
        parts.append(self._attrs.encode(attributes))
        if dropped:
            parts.append(b"\x50" + _varint(dropped))
        if events:
            parts.extend(_ld(b"\x5a", e.SerializeToString()) for e in _encode_events(events) or [])
        if dropped_events:
            parts.append(b"\x60" + _varint(dropped_events))
        if links:
            parts.extend(_ld(b"\x6a", lk.SerializeToString()) for lk in _encode_links(links) or [])
        if dropped_links:
            parts.append(b"\x70" + _varint(dropped_links))
        if status is not None:
            if status.status_code is StatusCode.UNSET and not status.description:
                parts.append(b"\x7a\x00")
            else:
                status_body = _ld(b"\x12", status.description.encode()) if status.description else b""
                if status.status_code.value:
                    status_body += b"\x18" + _varint(status.status_code.value)
                parts.append(_ld(b"\x7a", status_body))
        parts.append(_FLAGS_REMOTE if parent is not None and parent.is_remote else _FLAGS_LOCAL)
        return b"".join(parts)

    def encode(self, spans: Sequence[ReadableSpan]) -> bytes:
        grouped: _Grouped = {}
        for span in spans:
            _group(grouped, span.resource, span.instrumentation_scope or None).append(self.encode_span(span))
        return self._grouping.request(grouped)


class LogEncoder:
    def __init__(self) -> None:
        self._attrs = _AttributeCache(b"\x32")
        self._grouping = _Grouping(b"\x12")

    def encode_log(self, readable: ReadableLogRecord) -> bytes:
        record = readable.log_record
        parts = []
        if record.timestamp:
            parts.append(b"\x09" + _pack_q(record.timestamp))
        severity = getattr(record.severity_number, "value", None)
        if severity:
            parts.append(b"\x10" + _varint(severity))
        if record.severity_text:
            parts.append(_ld(b"\x1a", record.severity_text.encode()))
        body = _any_value(record.body) if record.body is not None else b""
        if body is None:
            from opentelemetry.exporter.otlp.proto.common._internal import _encode_value

            body = _encode_value(record.body).SerializeToString()
        parts.append(_ld(b"\x2a", body))
        parts.append(self._attrs.encode(record.attributes))
        if readable.dropped_attributes:
            parts.append(b"\x38" + _varint(readable.dropped_attributes))
        flags = int(record.trace_flags) if record.trace_flags is not None else 0
        if flags:
            parts.append(b"\x45" + _pack_i(flags))
        if record.trace_id:
            parts.append(b"\x4a\x10" + record.trace_id.to_bytes(16, "big"))
        if record.span_id:
            parts.append(b"\x52\x08" + record.span_id.to_bytes(8, "big"))
        if record.observed_timestamp:
            parts.append(b"\x59" + _pack_q(record.observed_timestamp))
        if record.event_name:
            parts.append(_ld(b"\x62", record.event_name.encode()))
        return b"".join(parts)

    def encode(self, batch: Sequence[ReadableLogRecord]) -> bytes:
        grouped: _Grouped = {}
        for readable in batch:
            _group(grouped, readable.resource, readable.instrumentation_scope or None).append(
                self.encode_log(readable)
            )
        return self._grouping.request(grouped)


class _RawExportStub:
    """A gRPC stub whose Export takes the request as encoded bytes: the SDK exporter's retry loop calls
    ``Export(request=...)`` with what ``_translate_data`` returns, so the bytes are sent as they are instead
    of being parsed into a request object and serialised again (~9 µs per span)."""

    method = ""
    response: Any = None

    def __init__(self, channel: Any) -> None:
        self.Export = channel.unary_unary(
            self.method, request_serializer=None, response_deserializer=self.response.FromString
        )


class _RawTraceStub(_RawExportStub):
    method = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
    response = ExportTraceServiceResponse


class _RawLogsStub(_RawExportStub):
    method = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
    response = ExportLogsServiceResponse


class FastOTLPSpanExporter(OTLPSpanExporter):
    """The SDK's OTLP/gRPC span exporter (retries, TLS, headers, timeouts) with the cheaper encoder."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._encoder = SpanEncoder()
        self._stub = _RawTraceStub  # also what a reconnect builds
        self._client = self._stub(self._channel)

    def _translate_data(self, data: Sequence[ReadableSpan]) -> bytes:  # type: ignore[override]
        return self._encoder.encode(data)


class FastOTLPLogExporter(OTLPLogExporter):
    """The SDK's OTLP/gRPC log exporter with the cheaper encoder."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._encoder = LogEncoder()
        self._stub = _RawLogsStub
        self._client = self._stub(self._channel)

    def _translate_data(self, data: Sequence[ReadableLogRecord]) -> bytes:  # type: ignore[override]
        return self._encoder.encode(data)
