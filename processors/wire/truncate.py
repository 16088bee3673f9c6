"""Makes one parsed OTLP request fit a byte limit by truncating its largest string and bytes values, field by
field, each with a marker; only if that is not enough, repeated entries (attributes, events, links, …) are
dropped from the end and counted in the message's own ``dropped_*_count`` field where it has one.

Used for an item that is over the forward limit on its own (``split`` cannot help there). It runs after
redaction, on the processed message: what is kept was scanned, what is cut never leaves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

_MIN_KEEP = 1024  # bytes of a truncated value that are always kept (a readable beginning)
_MIN_CANDIDATE = 4096  # smaller values are not worth a marker
MARKER = "…[truncated by llm-otel-sidecar: {cut} of {total} bytes cut to fit the forward limit]"


@dataclass
class Truncation:
    fields: int = 0
    """String / bytes values truncated."""
    entries_dropped: int = 0
    """Repeated entries removed (last resort)."""

    @property
    def changed(self) -> bool:
        return bool(self.fields or self.entries_dropped)


def _values(message: Message, out: list[tuple[int, Message, FieldDescriptor, int]]) -> None:
    """(size, parent, field, index or -1) of every string / bytes value of at least _MIN_CANDIDATE bytes."""
    for fd, value in message.ListFields():
        repeated = fd.is_repeated
        if fd.type == FieldDescriptor.TYPE_MESSAGE:
            for sub in value if repeated else (value,):
                _values(sub, out)
        elif fd.type in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES):
            for i, v in enumerate(value) if repeated else ((-1, value),):
                size = len(v.encode()) if isinstance(v, str) else len(v)
                if size >= _MIN_CANDIDATE:
                    out.append((size, message, fd, i))


def _cut(value: str | bytes, keep: int, total: int) -> str | bytes:
    if isinstance(value, bytes):
        return value[:keep]
    head = value.encode()[:keep].decode("utf-8", "ignore")  # never half a character
    return head + MARKER.format(cut=total - len(head.encode()), total=total)


def _set(parent: Message, fd: FieldDescriptor, i: int, value: Any) -> None:
    if i < 0:
        setattr(parent, fd.name, value)
    else:
        getattr(parent, fd.name)[i] = value


def fit(message: Message, limit: int) -> Truncation:
    """Truncate ``message`` in place until ``message.ByteSize() <= limit``."""
    done = Truncation()
    excess = message.ByteSize() - limit
    if excess <= 0:
        return done
    candidates: list[tuple[int, Message, FieldDescriptor, int]] = []
    _values(message, candidates)
    candidates.sort(key=lambda c: c[0], reverse=True)
    marker_room = len(MARKER) + 40
    for size, parent, fd, i in candidates:
        keep = max(_MIN_KEEP, size - excess - marker_room)
        if keep >= size - marker_room:
            continue
        value = getattr(parent, fd.name) if i < 0 else getattr(parent, fd.name)[i]
        _set(parent, fd, i, _cut(value, keep, size))
        done.fields += 1
        excess = message.ByteSize() - limit
        if excess <= 0:
            return done
    _drop_entries(message, limit, done)
    return done


def _drop_entries(message: Message, limit: int, done: Truncation) -> None:
    """Remove repeated message entries from the end of the largest repeated field, deepest containers first,
    until the message fits; a ``dropped_<field>_count`` next to the field counts them."""
    while message.ByteSize() > limit:
        found = _largest_repeated(message)
        if found is None:
            return  # nothing left to drop (cannot happen for a limit above a few KB)
        parent, fd = found
        entries = getattr(parent, fd.name)
        n = max(1, len(entries) // 8)
        del entries[len(entries) - n :]
        done.entries_dropped += n
        counter = f"dropped_{fd.name}_count"
        if counter in parent.DESCRIPTOR.fields_by_name:
            setattr(parent, counter, getattr(parent, counter) + n)


def _containers(request: Message) -> set[str]:
    """The request type and its resource and scope container types: their entries are never dropped."""
    resource: Any = request.DESCRIPTOR.fields_by_number[1].message_type
    scope: Any = resource.fields_by_number[2].message_type
    return {request.DESCRIPTOR.full_name, resource.full_name, scope.full_name}


def _largest_repeated(message: Message) -> tuple[Message, FieldDescriptor] | None:
    best: tuple[int, Message, FieldDescriptor] | None = None
    containers = _containers(message)
    todo = [message]
    while todo:
        m = todo.pop()
        for fd, value in m.ListFields():
            if fd.type != FieldDescriptor.TYPE_MESSAGE:
                continue
            if fd.is_repeated:
                if value and m.DESCRIPTOR.full_name not in containers:
                    size = sum(v.ByteSize() for v in value)
                    if best is None or size > best[0]:
                        best = (size, m, fd)
                todo.extend(value)
            else:
                todo.append(value)
    return None if best is None else (best[1], best[2])
