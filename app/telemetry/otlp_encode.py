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
from opentelemetry.trace.span import DEFAULT_TRACE_STATE

from app.telemetry.lean_trace import LeanSpan

_pack_d = struct.Struct("<d").pack
_pack_q = struct.Struct("<Q").pack
_pack_i = struct.Struct("<I").pack

# Span.flags: SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK (0x100), plus IS_REMOTE (0x200) for a remote parent.
_FLAGS_LOCAL = b"\x85\x01" + _pack_i(0x100)
_FLAGS_REMOTE = b"\x85\x01" + _pack_i(0x300)
# Span.kind by SpanKind's value (its wire value is one more): indexed, as an Enum's hash is a Python call.
_KIND = tuple(b"\x30" + bytes((kind.value + 1,)) for kind in sorted(SpanKind, key=lambda k: k.value))
_CACHE_LIMIT = 8192
_PER_KEY_LIMIT = 256
_Grouped = dict[int, tuple[Any, dict[Any, tuple[Any, list[bytes]]]]]


_INT64 = range(-(1 << 63), 1 << 63)


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
        # Beyond int64 the SDK's encoder fails on the value and skips the attribute: so does its fallback.
        return b"\x18" + _varint(value) if value in _INT64 else None
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
            kind = value.__class__
            # True, 1 and 1.0 are equal in Python, not on the wire: scalars are looked up with their type;
            # string tuples as they are; any other tuple ((1, 0) == (True, False)) or value is not cached,
            # nor is a float zero (0.0 == -0.0, with another sign bit on the wire).
            value_key: Any = (
                value
                if kind is str
                else (kind, value)
                if kind is bool or kind is int or (kind is float and value)
                else (tuple, value)
                if kind is tuple and all(v.__class__ is str for v in value)
                else None
            )
            encoded = by_value.get(value_key) if value_key is not None else None
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
        # SpanContext is a tuple (trace_id, span_id, is_remote, trace_flags, trace_state, is_valid): indexed,
        # as each of its named fields is a Python property.
        parts = [b"\x0a\x10" + ctx[0].to_bytes(16, "big"), b"\x12\x08" + ctx[1].to_bytes(8, "big")]
        trace_state = ctx[4]
        if trace_state is not DEFAULT_TRACE_STATE and trace_state:  # the shared empty one: no Python __len__
            state = ",".join(f"{k}={v}" for k, v in trace_state.items())
            parts.append(_ld(b"\x1a", state.encode()))
        if parent:
            parts.append(b"\x22\x08" + parent[1].to_bytes(8, "big"))
        if name:
            encoded_name = self._names.get(name)
            if encoded_name is None:
                if len(self._names) >= _CACHE_LIMIT:
                    self._names.clear()
                encoded_name = self._names[name] = _ld(b"\x2a", name.encode())
            parts.append(encoded_name)
        parts.append(_KIND[kind._value_])
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
            code, description = status._status_code, status._description  # not through its properties
            if code is StatusCode.UNSET and not description:
                parts.append(b"\x7a\x00")
            else:
                status_body = _ld(b"\x12", description.encode()) if description else b""
                if code._value_:
                    status_body += b"\x18" + _varint(code._value_)
                parts.append(_ld(b"\x7a", status_body))
        parts.append(_FLAGS_REMOTE if parent is not None and parent[2] else _FLAGS_LOCAL)
        return b"".join(parts)

    def encode(self, spans: Sequence[ReadableSpan]) -> bytes:
        grouped: _Grouped = {}
        # Each span's group found once per (resource, scope) object pair: grouping by value hashes and
        # compares the scope (InstrumentationScope's __hash__/__eq__ are Python) per span. The spans hold
        # both objects for this call, so their ids are not reused in it.
        groups: dict[tuple[int, int], list[bytes]] = {}
        for span in spans:
            if span.__class__ is LeanSpan:
                lean: Any = span
                resource, scope = lean._resource, lean._instrumentation_scope
            else:
                resource, scope = span.resource, span.instrumentation_scope
            key = (id(resource), id(scope))
            items = groups.get(key)
            if items is None:
                items = groups[key] = _group(grouped, resource, scope or None)
            items.append(self.encode_span(span))
        return self._grouping.request(grouped)


_SMALL = tuple(bytes((i,)) for i in range(0x80))  # one-byte varints
_LOG_HEADS_LIMIT = 1024


def _length(n: int) -> bytes:
    """The varint of a length, without _varint's loop for the common one- and two-byte ones."""
    if n < 0x80:
        return _SMALL[n]
    if n < 0x4000:
        return bytes(((n & 0x7F) | 0x80, n >> 7))
    return _varint(n)


_FULL: dict[Any, bytes] = {}  # the values of a key no longer cached (never written to)


class _LogAttributes:
    """The log records' KeyValue fields: each key's encoding once, and the encoded pair for values that
    repeat (tenant, models, status...). A key that has had ``_PER_KEY_LIMIT`` distinct values (request and
    response ids, durations) no longer has its values cached: they are encoded each time, inline."""

    def __init__(self) -> None:
        self._values: dict[str, dict[Any, bytes]] = {}  # key → (value or (type, value)) → its field
        self._prefixes: dict[str, bytes | None] = {}  # key → its Key field (None: the SDK encodes its pairs)
        self._size = 0

    def _clear(self) -> None:
        self._values.clear()
        self._prefixes.clear()
        self._size = 0

    def _new_key(self, key: str) -> dict[Any, bytes]:
        if len(self._values) >= _CACHE_LIMIT:
            self._clear()
        try:
            self._prefixes[key] = _ld(b"\x0a", key.encode()) if key else b""
        except UnicodeEncodeError:
            self._prefixes[key] = None
        values = self._values[key] = {}
        return values

    def _field(self, key: str, value: Any, kind: type) -> bytes | None:
        """The KeyValue field of one pair; None for a pair the SDK's encoder skips too."""
        prefix = self._prefixes[key]
        any_value: bytes | None = None
        if prefix is not None:
            if kind is str:
                try:
                    encoded = value.encode()
                except UnicodeEncodeError:
                    encoded = None
                if encoded is not None:
                    n = len(encoded)
                    # KeyValue = key, 0x12, len, AnyValue (0x0a, len, the bytes): all lengths one byte?
                    if n + len(prefix) < 124:
                        return b"".join(
                            (
                                b"\x32",
                                _SMALL[n + len(prefix) + 4],
                                prefix,
                                b"\x12",
                                _SMALL[n + 2],
                                b"\x0a",
                                _SMALL[n],
                                encoded,
                            )
                        )
                    any_value = b"\x0a" + _length(n) + encoded
            elif kind is float:
                if len(prefix) < 117:
                    return b"".join(
                        (b"\x32", _SMALL[len(prefix) + 11], prefix, b"\x12\x09\x21", _pack_d(value))
                    )
                any_value = b"\x21" + _pack_d(value)
            elif kind is int:
                if value in _INT64:
                    any_value = b"\x18" + _varint(value)
            elif kind is bool:
                any_value = b"\x10\x01" if value else b"\x10\x00"
        if any_value is not None:
            kv = prefix + b"\x12" + _length(len(any_value)) + any_value  # type: ignore[operator]
        else:  # string arrays, the other arrays, maps, bytes, None: as _AttributeCache encodes them
            kv = _AttributeCache._encode_pair(key, value) if prefix is not None else None
            if kv is None:
                try:
                    kv = bytes(_encode_key_value(key, value).SerializeToString())
                except Exception:  # the SDK's encoder logs and skips such attributes too
                    return None
        return b"\x32" + _length(len(kv)) + kv

    def _remember(self, key: str, values: dict[Any, bytes], value_key: Any, field: bytes) -> None:
        if len(values) >= _PER_KEY_LIMIT:
            # A key with this many distinct values will not repeat: caching them would only churn.
            self._size -= len(values)
            self._values[key] = _FULL
            return
        if self._size >= _CACHE_LIMIT:
            self._clear()
            values = self._new_key(key)
        values[value_key] = field
        self._size += 1

    def encode(self, attributes: Any) -> bytes:
        if not attributes:
            return b""
        values_of = self._values
        out: list[bytes] = []
        append = out.append
        for key, value in _plain(attributes).items():
            values = values_of.get(key)
            if values is None:
                values = self._new_key(key)
            kind = value.__class__
            value_key: Any = None
            if values is not _FULL:
                if kind is str:
                    value_key = value
                elif kind is bool or kind is int or (kind is float and value):
                    # True, 1 and 1.0 are equal in Python, not on the wire; so are 0.0 and -0.0 (not cached)
                    value_key = (kind, value)
                if value_key is not None:
                    hit = values.get(value_key)
                    if hit is not None:
                        append(hit)
                        continue
            field = self._field(key, value, kind)
            if field is None:
                continue
            append(field)
            if value_key is not None:
                self._remember(key, values, value_key, field)
        return b"".join(out)


class LogEncoder:
    def __init__(self) -> None:
        self._attrs = _LogAttributes()
        self._grouping = _Grouping(b"\x12")
        # (body, severity text) → (severity number, the three fields), for string bodies (they repeat)
        self._heads: dict[tuple[str, str], tuple[Any, bytes]] = {}
        self._event_names: dict[str, bytes] = {}
        self._flags: dict[int, bytes] = {}

    def _head(self, severity: Any, severity_text: Any, body: Any) -> bytes:
        parts = []
        if severity:
            parts.append(b"\x10" + _varint(severity))
        if severity_text:
            parts.append(_ld(b"\x1a", severity_text.encode()))
        encoded = _any_value(body) if body is not None else b""
        if encoded is None:
            from opentelemetry.exporter.otlp.proto.common._internal import _encode_value

            encoded = _encode_value(body).SerializeToString()
        parts.append(_ld(b"\x2a", encoded))
        return b"".join(parts)

    def encode_log(self, readable: ReadableLogRecord) -> bytes:
        record = readable.log_record
        parts = []
        if record.timestamp:
            parts.append(b"\x09" + _pack_q(record.timestamp))
        severity_number = record.severity_number
        body = record.body
        if body.__class__ is str and record.severity_text.__class__ is str:
            # Keyed by the strings; the severity compared by identity (an Enum's .value and hash are Python)
            head_key = (body, record.severity_text)
            cached = self._heads.get(head_key)
            if cached is not None and cached[0] is severity_number:
                head = cached[1]
            else:
                if len(self._heads) >= _LOG_HEADS_LIMIT:
                    self._heads.clear()
                head = self._head(getattr(severity_number, "value", None), record.severity_text, body)
                self._heads[head_key] = (severity_number, head)
            parts.append(head)
        else:
            parts.append(self._head(getattr(severity_number, "value", None), record.severity_text, body))
        attributes = record.attributes
        parts.append(self._attrs.encode(attributes))
        # Only the SDK's BoundedAttributes count dropped ones (a plain dict: no isinstance check on an ABC)
        dropped = 0 if attributes.__class__ is dict else readable.dropped_attributes
        if dropped:
            parts.append(b"\x38" + _varint(dropped))
        flags = record.trace_flags
        if flags:
            encoded_flags = self._flags.get(flags)
            if encoded_flags is None:
                if len(self._flags) >= 256:
                    self._flags.clear()
                encoded_flags = self._flags[int(flags)] = b"\x45" + _pack_i(int(flags))
            parts.append(encoded_flags)
        if record.trace_id:
            parts.append(b"\x4a\x10" + record.trace_id.to_bytes(16, "big"))
        if record.span_id:
            parts.append(b"\x52\x08" + record.span_id.to_bytes(8, "big"))
        if record.observed_timestamp:
            parts.append(b"\x59" + _pack_q(record.observed_timestamp))
        event_name = record.event_name
        if event_name:
            encoded_name = self._event_names.get(event_name)
            if encoded_name is None:
                if len(self._event_names) >= _LOG_HEADS_LIMIT:
                    self._event_names.clear()
                encoded_name = self._event_names[event_name] = _ld(b"\x62", event_name.encode())
            parts.append(encoded_name)
        return b"".join(parts)

    def encode(self, batch: Sequence[ReadableLogRecord]) -> bytes:
        grouped: _Grouped = {}
        resource: Any = None
        scope: Any = None
        items: list[bytes] = []
        for readable in batch:
            # The records of one logger share its resource and scope objects: grouped without hashing
            # and comparing the scope (InstrumentationScope's __hash__/__eq__ are Python) for each record.
            if readable.resource is not resource or readable.instrumentation_scope is not scope or not items:
                resource, scope = readable.resource, readable.instrumentation_scope
                items = _group(grouped, resource, scope or None)
            record = self.encode_log(readable)
            items.append(b"\x12" + _length(len(record)) + record)  # ScopeLogs.log_records (2)
        return self._request(grouped)

    def _request(self, grouped: _Grouped) -> bytes:
        """As _Grouping.request, for items that are already length-delimited fields."""
        grouping = self._grouping
        resources = []
        for resource, scopes in grouped.values():
            scope_parts = []
            for scope, items in scopes.values():
                # ScopeLogs: scope (1), log_records (2), schema_url (3)
                body = grouping._encoded(scope, _encode_instrumentation_scope) + b"".join(items)
                schema = scope.schema_url if scope is not None else None
                if schema:
                    body += _ld(b"\x1a", schema.encode())
                scope_parts.append(b"\x12" + _length(len(body)) + body)
            # ResourceLogs: resource (1), scope_logs (2), schema_url (3)
            body = grouping._encoded(resource, _encode_resource) + b"".join(scope_parts)
            if resource.schema_url:
                body += _ld(b"\x1a", resource.schema_url.encode())
            resources.append(b"\x0a" + _length(len(body)) + body)
        return b"".join(resources)


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
