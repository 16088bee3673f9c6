"""Byte ranges of the resources, scopes and items (spans / log records) inside a serialized
ExportTraceServiceRequest or ExportLogsServiceRequest, read straight from the protobuf wire format.

Both requests share one shape — field 1 repeated Resource{Spans,Logs} {1: resource, 2: repeated
Scope{Spans,Logs} {1: scope, 2: repeated item}} — so one walker serves both. A Hyperscan hit at byte
offset N can be traced to the one span or log record that holds it, and only that one is walked in Python.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

RESOURCE, SCOPE, ITEM = 0, 1, 2


class WireError(ValueError):
    """The bytes do not have the expected shape; callers fall back to walking everything."""


@dataclass
class Region:
    kind: int  # RESOURCE, SCOPE or ITEM
    resource: int
    scope: int  # -1 for RESOURCE
    item: int  # -1 unless ITEM


@dataclass
class WireIndex:
    starts: list[int] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)
    regions: list[Region] = field(default_factory=list)

    def region_at(self, offset: int) -> Region | None:
        i = self.position_at(offset)
        return self.regions[i] if i >= 0 else None

    def position_at(self, offset: int) -> int:
        """Index of the region holding ``offset`` (regions are sorted and disjoint), or -1."""
        i = bisect.bisect_right(self.starts, offset) - 1
        return i if i >= 0 and offset < self.ends[i] else -1


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


def _fields(buf: bytes, pos: int, end: int) -> list[tuple[int, int, int]]:
    """(field number, start, end) of each length-delimited field in buf[pos:end]; other wire types skipped."""
    out = []
    while pos < end:
        key, pos = _varint(buf, pos, end)
        number, wire_type = key >> 3, key & 7
        if wire_type == 2:
            length, pos = _varint(buf, pos, end)
            if pos + length > end:
                raise WireError("length past end")
            out.append((number, pos, pos + length))
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


def index(raw: bytes) -> WireIndex:
    idx = WireIndex()

    def add(start: int, end: int, region: Region) -> None:
        idx.starts.append(start)
        idx.ends.append(end)
        idx.regions.append(region)

    r = 0
    for number, start, end in _fields(raw, 0, len(raw)):
        if number != 1:
            continue
        s = 0
        for n2, s2, e2 in _fields(raw, start, end):
            if n2 == 1:
                add(s2, e2, Region(RESOURCE, r, -1, -1))
            elif n2 == 2:
                i = 0
                for n3, s3, e3 in _fields(raw, s2, e2):
                    if n3 == 1:
                        add(s3, e3, Region(SCOPE, r, s, -1))
                    elif n3 == 2:
                        add(s3, e3, Region(ITEM, r, s, i))
                        i += 1
                s += 1
        r += 1
    return idx
