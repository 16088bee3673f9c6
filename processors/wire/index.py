"""Byte ranges of the resources, scopes and items (spans / log records) inside a serialized
ExportTraceServiceRequest or ExportLogsServiceRequest, read straight from the protobuf wire format.

Both requests share one shape — field 1 repeated Resource{Spans,Logs} {1: resource, 2: repeated
Scope{Spans,Logs} {1: scope, 2: repeated item}} — so one walker serves both. A Hyperscan hit at byte
offset N can be traced to the one span or log record that holds it, and only that one is walked in Python.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import NamedTuple

from google.protobuf.descriptor import Descriptor, FieldDescriptor

RESOURCE, SCOPE, ITEM = 0, 1, 2

Key = tuple[int, int, int, int]
"""(kind, resource, scope, item) of a region: which resource, scope or span/log record; -1 where a part
does not apply. A Region is also its own key."""


class WireError(ValueError):
    """The bytes do not have the expected shape; callers fall back to walking everything."""


class Region(NamedTuple):
    """Also the region's key: (kind, resource, scope, item)."""

    kind: int  # RESOURCE, SCOPE or ITEM
    resource: int
    scope: int  # -1 for RESOURCE
    item: int  # -1 unless ITEM


@dataclass
class WireIndex:
    starts: list[int] = field(default_factory=list)  # content start of each region (after tag and length)
    ends: list[int] = field(default_factory=list)
    regions: list[Region] = field(default_factory=list)
    heads: list[int] = field(default_factory=list)  # where each region's tag starts
    # (tag start, content start, end): of each Resource{Spans,Logs}, and by (resource, scope) of each
    # Scope{Spans,Logs}
    resources: list[tuple[int, int, int]] = field(default_factory=list)
    scopes: dict[tuple[int, int], tuple[int, int, int]] = field(default_factory=dict)
    repeated_singular: bool = False  # a resource or scope message occurs twice in one container
    _positions: dict[Key, int] | None = None

    def region_at(self, offset: int) -> Region | None:
        i = self.position_at(offset)
        return self.regions[i] if i >= 0 else None

    def position_of(self, key: Key) -> int:
        """Index of the region named (kind, resource, scope, item); raises WireError if there is none."""
        if self._positions is None:
            self._positions = {region: k for k, region in enumerate(self.regions)}
        k = self._positions.get(key)
        if k is None:
            raise WireError(f"no region {key}")
        return k

    def position_at(self, offset: int) -> int:
        """Index of the region holding ``offset`` (regions are sorted and disjoint), or -1."""
        i = bisect.bisect_right(self.starts, offset) - 1
        return i if i >= 0 and offset < self.ends[i] else -1


def encode_varint(n: int) -> bytes:
    """The protobuf varint encoding of a non-negative ``n`` (tags and lengths)."""
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    if pos < end and buf[pos] < 0x80:  # one-byte varints (tags, short lengths) are the common case
        return buf[pos], pos + 1
    result = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise WireError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes, pos: int, end: int) -> list[tuple[int, int, int, int]]:
    """(field number, tag start, content start, end) of each length-delimited field in buf[pos:end]; other
    wire types skipped."""
    out: list[tuple[int, int, int, int]] = []
    append = out.append
    while pos < end:
        head = pos
        key = buf[pos]  # one-byte tags and one- or two-byte lengths are decoded inline: the common case
        if key < 0x80:
            pos += 1
        else:
            key, pos = _varint(buf, pos, end)
        wire_type = key & 7
        if wire_type == 2:
            if pos < end and buf[pos] < 0x80:
                length = buf[pos]
                pos += 1
            elif pos + 1 < end and buf[pos + 1] < 0x80:
                length = (buf[pos] & 0x7F) | buf[pos + 1] << 7
                pos += 2
            else:
                length, pos = _varint(buf, pos, end)
            if pos + length > end:
                raise WireError("length past end")
            append((key >> 3, head, pos, pos + length))
            pos += length
        elif wire_type == 0:
            _, pos = _varint(buf, pos, end)
        elif wire_type == 1:
            pos += 8
        elif wire_type == 5:
            pos += 4
        else:
            raise WireError(f"unsupported wire type {wire_type}")
    if pos != end:
        raise WireError("field past end")
    return out


def all_fields(buf: bytes, pos: int, end: int) -> list[tuple[int, int, int, int, int]]:
    """(field number, wire type, tag start, content start, end) of every field in buf[pos:end], of any wire
    type (content of a varint / fixed field: its value bytes). Raises WireError."""
    out: list[tuple[int, int, int, int, int]] = []
    while pos < end:
        head = pos
        key, pos = _varint(buf, pos, end)
        wire_type = key & 7
        start = pos
        if wire_type == 2:
            length, start = _varint(buf, pos, end)
            pos = start + length
        elif wire_type == 0:
            _, pos = _varint(buf, pos, end)
        elif wire_type == 1:
            pos += 8
        elif wire_type == 5:
            pos += 4
        else:
            raise WireError(f"unsupported wire type {wire_type}")
        if pos > end or key >> 3 == 0:
            raise WireError("field past end" if pos > end else "field number 0")
        out.append((key >> 3, wire_type, head, start, pos))
    return out


def index(raw: bytes) -> WireIndex:
    idx = WireIndex()
    starts, ends, regions, heads = idx.starts, idx.ends, idx.regions, idx.heads

    def add(head: int, start: int, end: int, region: Region) -> None:
        heads.append(head)
        starts.append(start)
        ends.append(end)
        regions.append(region)

    r = 0
    for number, head, start, end in _fields(raw, 0, len(raw)):
        if number != 1:
            continue
        idx.resources.append((head, start, end))
        s = 0
        seen_resource = False
        for n2, h2, s2, e2 in _fields(raw, start, end):
            if n2 == 1:
                idx.repeated_singular |= seen_resource
                seen_resource = True
                add(h2, s2, e2, Region(RESOURCE, r, -1, -1))
            elif n2 == 2:
                idx.scopes[(r, s)] = (h2, s2, e2)
                i = 0
                seen_scope = False
                for n3, h3, s3, e3 in _fields(raw, s2, e2):
                    if n3 == 1:
                        idx.repeated_singular |= seen_scope
                        seen_scope = True
                        add(h3, s3, e3, Region(SCOPE, r, s, -1))
                    elif n3 == 2:
                        add(h3, s3, e3, Region(ITEM, r, s, i))
                        i += 1
                s += 1
        r += 1
    return idx


def item_parts(raw: bytes, start: int, end: int, offsets: list[int]) -> set[tuple[int, int]]:
    """(field number, occurrence) of each length-delimited top-level field of the item in raw[start:end]
    that holds one of the byte ``offsets``: e.g. (9, 3) is the span's 4th attribute. Raises WireError."""
    parts: set[tuple[int, int]] = set()
    seen: dict[int, int] = {}
    wanted = sorted(offsets)
    k = 0
    for number, _head, s, e in _fields(raw, start, end):
        occurrence = seen.get(number, 0)
        seen[number] = occurrence + 1
        while k < len(wanted) and wanted[k] < s:
            k += 1
        if k < len(wanted) and wanted[k] < e:
            parts.add((number, occurrence))
            while k < len(wanted) and wanted[k] < e:
                k += 1
        if k == len(wanted):
            break
    return parts


def string_tag_bytes(root: Descriptor) -> frozenset[int]:
    """The last byte of the tag of every string or bytes field reachable from ``root``.

    A digit run right after one of these and a one-byte length may be the start of a string value rather
    than the middle of a hex token (see PiiScanner.scan_raw)."""
    tags: set[int] = set()
    seen: set[str] = set()
    todo = [root]
    while todo:
        message = todo.pop()
        if message.full_name in seen:
            continue
        seen.add(message.full_name)
        for f in message.fields:
            if f.type == FieldDescriptor.TYPE_MESSAGE and f.message_type is not None:
                todo.append(f.message_type)
            elif f.type in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES):
                tag = f.number << 3 | 2
                while tag >= 0x80:
                    tag >>= 7
                tags.add(tag)
    return frozenset(tags)
