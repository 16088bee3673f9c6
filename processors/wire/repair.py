"""Repairs a serialized Export{Trace,Logs,Metrics}ServiceRequest that Python's protobuf refuses to parse, one
item (span / log record / metric) at a time, so that one malformed item never costs the rest of its batch.

The Collector accepts what upb does not: strings with invalid UTF-8, and values nested deeper than upb's
recursion limit (100 messages: about 31 levels of kvlist). Walking the bytes with the message descriptors,
this module

* replaces the invalid bytes of every string field with U+FFFD (``invalid_utf8``),
* cuts every AnyValue nested more than ``MAX_VALUE_DEPTH`` levels deep, replacing it with a string marker
  (``nesting_depth``): the cut part is not forwarded, so it needs no scan,
* removes an item whose own bytes are broken (a length past its end, a bad varint: ``malformed``) and hands
  its bytes back, so the caller can quarantine it.

Only the request's own structure (its resource and scope containers) being broken makes the whole request
unparseable (WireError).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from processors.wire.index import ITEM, Key, WireError, all_fields, encode_varint, index

INVALID_UTF8, NESTING_DEPTH, MALFORMED = "invalid_utf8", "nesting_depth", "malformed"
MAX_VALUE_DEPTH = 24
"""AnyValue levels kept when a request must be repaired; upb's limit is reached at about 31."""
_ANY_VALUE = "opentelemetry.proto.common.v1.AnyValue"
_ANY_STRING = 1  # AnyValue.string_value
_CUT = "[cut by llm-otel-sidecar: value nested deeper than {depth} levels, {size} bytes]"


@dataclass
class Repair:
    payload: bytes
    repaired: dict[str, int] = field(default_factory=dict)
    """reason → items (or resources / scopes) changed for that reason."""
    removed: list[tuple[Key, bytes]] = field(default_factory=list)
    """Items removed as malformed: their key and their bytes (a field of a Scope* message)."""

    @property
    def changed(self) -> bool:
        return bool(self.repaired or self.removed)


class _Walker:
    def __init__(self) -> None:
        self.reasons: set[str] = set()

    def message(self, buf: bytes, start: int, end: int, desc: Descriptor, depth: int) -> bytes | None:
        """The message in buf[start:end] repaired, or None when nothing needed repairing."""
        out: list[bytes] = []
        changed = False
        values_in = depth + (desc.full_name == _ANY_VALUE)
        for number, wire_type, head, s, e in all_fields(buf, start, end):
            fd = desc.fields_by_number.get(number)
            piece: bytes | None = None
            if fd is not None and wire_type == 2:
                if fd.type == FieldDescriptor.TYPE_STRING:
                    piece = self._string(buf, s, e)
                elif fd.type == FieldDescriptor.TYPE_MESSAGE:
                    sub: Any = fd.message_type
                    if sub.full_name == _ANY_VALUE and values_in >= MAX_VALUE_DEPTH:
                        self.reasons.add(NESTING_DEPTH)
                        marker = _CUT.format(depth=MAX_VALUE_DEPTH, size=e - s).encode()
                        piece = b"".join((bytes([_ANY_STRING << 3 | 2]), encode_varint(len(marker)), marker))
                    else:
                        piece = self.message(buf, s, e, sub, values_in)
            if piece is None:
                out.append(buf[head:e])
            else:
                changed = True
                out += (buf[head:s] if wire_type != 2 else _tag(number), encode_varint(len(piece)), piece)
        return b"".join(out) if changed else None

    def _string(self, buf: bytes, s: int, e: int) -> bytes | None:
        try:
            buf[s:e].decode("utf-8")
            return None
        except UnicodeDecodeError:
            self.reasons.add(INVALID_UTF8)
            return buf[s:e].decode("utf-8", "replace").encode("utf-8")


def _tag(number: int) -> bytes:
    return encode_varint(number << 3 | 2)


def repair(raw: bytes, request: Any) -> Repair:
    """``raw`` with every item, resource and scope repaired as described above. Raises WireError when the
    request's own structure is broken."""
    idx = index(raw)  # the containers must be readable: otherwise the request is unparseable as a whole
    resource_type: Any = request.fields_by_number[1].message_type
    scope_type: Any = resource_type.fields_by_number[2].message_type
    types: dict[int, Any] = {
        0: resource_type.fields_by_number[1].message_type,  # RESOURCE: Resource
        1: scope_type.fields_by_number[1].message_type,  # SCOPE: InstrumentationScope
        ITEM: scope_type.fields_by_number[2].message_type,  # Span / LogRecord / Metric
    }
    result = Repair(raw)
    new: dict[int, bytes | None] = {}  # region position → new content, None = remove the item
    for k, region in enumerate(idx.regions):
        walker = _Walker()
        try:
            fixed = walker.message(raw, idx.starts[k], idx.ends[k], types[region.kind], 0)
        except WireError:
            if region.kind != ITEM:
                raise
            result.removed.append((region, raw[idx.heads[k] : idx.ends[k]]))
            new[k] = None
            continue
        if fixed is not None:
            new[k] = fixed
            for reason in walker.reasons:
                result.repaired[reason] = result.repaired.get(reason, 0) + 1
    # container headers (schema URLs) may hold invalid UTF-8 too
    headers = _repair_headers(raw, idx.resources, idx.scopes, result)
    if new or headers:
        result.payload = _rebuild(raw, idx, new, headers)
    return result


def _repair_headers(
    raw: bytes,
    resources: list[tuple[int, int, int]],
    scopes: dict[tuple[int, int], tuple[int, int, int]],
    result: Repair,
) -> dict[int, bytes]:
    """Schema URLs (field 3 of a Resource* / Scope* message) with invalid UTF-8, by their field's offset."""
    fixed: dict[int, bytes] = {}
    for _, start, end in (*resources, *scopes.values()):
        for number, wire_type, head, s, e in all_fields(raw, start, end):
            if number == 3 and wire_type == 2:
                value = _Walker()._string(raw, s, e)
                if value is not None:
                    fixed[head] = b"".join((_tag(3), encode_varint(len(value)), value))
                    result.repaired[INVALID_UTF8] = result.repaired.get(INVALID_UTF8, 0) + 1
    return fixed


def _rebuild(raw: bytes, idx: Any, new: dict[int, bytes | None], headers: dict[int, bytes]) -> bytes:
    """Re-encode the request with the repaired regions and headers; the containers around them get new
    lengths, every other byte is copied."""
    by_head = {head: k for k, head in enumerate(idx.heads)}

    def container(start: int, end: int, level: int) -> bytes:
        out: list[bytes] = []
        for number, wire_type, head, cs, ce in all_fields(raw, start, end):
            k = by_head.get(head, -1) if level else -1
            if wire_type != 2:
                out.append(raw[head:ce])
            elif number == 3 and head in headers:
                out.append(headers[head])
            elif k in new:  # a repaired resource, scope or item; None: a removed item
                content = new[k]
                if content is not None:
                    out.append(_wrapped(number, content))
            elif (level, number) in ((0, 1), (1, 2)):  # request → Resource*, Resource* → Scope*
                out.append(_wrapped(number, container(cs, ce, level + 1)))
            else:
                out.append(raw[head:ce])
        return b"".join(out)

    return container(0, len(raw), 0)


def _wrapped(number: int, content: bytes) -> bytes:
    return b"".join((_tag(number), encode_varint(len(content)), content))


def removed_request(item_field: bytes) -> bytes:
    """A request holding just one removed item (its bytes as a field of a Scope* message), for the
    dead-letter directory: without its resource and scope, which stayed with the batch."""
    return _wrapped(1, _wrapped(2, item_field))
