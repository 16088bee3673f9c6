"""A small protobuf wire re-encoder for tests: writes the same message in another valid encoding.

Protobuf lets an encoder write fields in any order, repeated scalars packed or not, and a singular message
field as several occurrences that the parser merges. The Collector (Go) writes a KeyValue's value before its
key; Python writes fields in number order. Parsing any of these encodings gives the same message, so the
sidecar's raw-bytes fast path must give the same result for all of them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from processors.wire.index import encode_varint

ORDERS = ("number", "reverse", "shuffle", "value_first")


@dataclass(frozen=True)
class Style:
    order: str = "number"  # number | reverse (every message's fields last to first) | shuffle | value_first
    packed: bool | None = None  # repeated scalars: True packed, False one tag each, None as received
    split: bool = False  # write singular message fields as two occurrences (the parser merges them)
    seed: int = 0


_Entry = tuple[int, int, bytes]  # (field number, wire type, payload: varint/fixed bytes or the content)

_VARINT_TYPES = {
    FieldDescriptor.TYPE_INT32,
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT32,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_SINT32,
    FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_BOOL,
    FieldDescriptor.TYPE_ENUM,
}
_FIXED64 = {FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED64}
_FIXED32 = {FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_FIXED32, FieldDescriptor.TYPE_SFIXED32}


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


def _parse(buf: bytes) -> list[_Entry]:
    out: list[_Entry] = []
    pos = 0
    while pos < len(buf):
        start = pos
        key, pos = _read_varint(buf, pos)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            _, end = _read_varint(buf, pos)
            out.append((number, 0, buf[pos:end]))
            pos = end
        elif wire_type == 1:
            out.append((number, 1, buf[pos : pos + 8]))
            pos += 8
        elif wire_type == 5:
            out.append((number, 5, buf[pos : pos + 4]))
            pos += 4
        elif wire_type == 2:
            length, pos = _read_varint(buf, pos)
            out.append((number, 2, buf[pos : pos + length]))
            pos += length
        else:
            raise ValueError(f"wire type {wire_type} at {start}")
    return out


def _emit(entries: list[_Entry]) -> bytes:
    parts: list[bytes] = []
    for number, wire_type, payload in entries:
        parts.append(encode_varint(number << 3 | wire_type))
        if wire_type == 2:
            parts.append(encode_varint(len(payload)))
        parts.append(payload)
    return b"".join(parts)


def _split_scalars(f: FieldDescriptor, payload: bytes) -> list[bytes]:
    """The elements of a packed repeated scalar field, each in its own wire encoding."""
    out: list[bytes] = []
    pos = 0
    while pos < len(payload):
        if f.type in _VARINT_TYPES:
            _, end = _read_varint(payload, pos)
        else:
            end = pos + (8 if f.type in _FIXED64 else 4)
        out.append(payload[pos:end])
        pos = end
    return out


def _native_wire_type(f: FieldDescriptor) -> int:
    return 1 if f.type in _FIXED64 else 5 if f.type in _FIXED32 else 0


def _interleave(
    groups: dict[int, list[_Entry]], order: list[int], rng: random.Random, shuffle: bool
) -> list[_Entry]:
    """One list holding every group's entries in the group's own order (repeated fields keep their order)."""
    if not shuffle:
        return [e for number in order for e in groups[number]]
    queues = {n: list(reversed(groups[n])) for n in order}
    out: list[_Entry] = []
    while queues:
        n = rng.choice(sorted(queues))
        out.append(queues[n].pop())
        if not queues[n]:
            del queues[n]
    return out


def reencode(raw: bytes, descriptor: Any, style: Style) -> bytes:
    rng = random.Random(style.seed)
    return _reencode(raw, descriptor, style, rng)


def _reencode(raw: bytes, descriptor: Descriptor, style: Style, rng: random.Random) -> bytes:
    groups: dict[int, list[_Entry]] = {}
    for number, wire_type, payload in _parse(raw):
        f = descriptor.fields_by_number.get(number)
        entries: list[_Entry] = [(number, wire_type, payload)]
        if f is not None and f.type == FieldDescriptor.TYPE_MESSAGE and wire_type == 2:
            assert f.message_type is not None
            inner = _reencode(payload, f.message_type, style, rng)
            entries = [(number, 2, inner)]
            if style.split and not f.is_repeated:
                fields = _parse(inner)
                if len(fields) >= 2:
                    cut = rng.randrange(1, len(fields))
                    entries = [(number, 2, _emit(fields[:cut])), (number, 2, _emit(fields[cut:]))]
        elif (
            f is not None
            and f.is_repeated
            and f.type not in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES)
        ):
            if wire_type == 2 and style.packed is False:
                entries = [(number, _native_wire_type(f), e) for e in _split_scalars(f, payload)]
            elif wire_type != 2 and style.packed is True:
                entries = [(number, 2, payload)]  # merged with its neighbours below
        groups.setdefault(number, []).extend(entries)
    if style.packed is True:
        for number, entries in groups.items():
            f = descriptor.fields_by_number.get(number)
            if (
                f is not None
                and f.is_repeated
                and f.type
                not in (
                    FieldDescriptor.TYPE_STRING,
                    FieldDescriptor.TYPE_BYTES,
                    FieldDescriptor.TYPE_MESSAGE,
                )
            ):
                groups[number] = [(number, 2, b"".join(p for _, _, p in entries))]
    numbers = sorted(groups)
    if style.order == "reverse":
        numbers.reverse()
    elif style.order == "value_first" and descriptor.full_name == "opentelemetry.proto.common.v1.KeyValue":
        numbers.reverse()  # what the Collector does
    return _emit(_interleave(groups, numbers, rng, style.order == "shuffle"))
