"""Rebuilds a serialized Export{Trace,Logs}ServiceRequest with some resources, scopes and items (spans / log
records) replaced or extended, copying every other byte as received.

Re-serialising a whole 1.4 MB batch because some spans changed costs more than the rest of the processing;
here only the changed messages are new bytes, and only the length prefixes of the messages that hold them
(their Resource{Spans,Logs} and Scope{Spans,Logs}) are re-encoded. Parsing the result gives the same message
as parsing the received bytes and applying the same changes.
"""

from __future__ import annotations

from collections.abc import Mapping

from processors.wire.index import ITEM, RESOURCE, Key, WireError, WireIndex, encode_varint

Piece = bytes | memoryview

# tags: request {1: Resource*}; Resource* {1: resource, 2: Scope*}; Scope* {1: scope, 2: item}
_TAG_FIELD_1, _TAG_FIELD_2 = b"\x0a", b"\x12"


def splice(
    raw: bytes, idx: WireIndex, new: Mapping[Key, bytes], appended: Mapping[Key, bytes] | None = None
) -> bytes:
    """``raw`` with the content of each region in ``new`` replaced by its bytes (a serialized Span, LogRecord,
    Resource or InstrumentationScope), and the bytes in ``appended`` added at the end of those regions (more
    fields of the same message; a key in both gets its ``new`` bytes only). Raises WireError when a key is
    not a region of ``idx``, or names a resource or scope that occurs more than once in its container
    (protobuf merges those: replacing one occurrence would leave the other's content in place)."""
    if not new and not appended:
        return raw
    if idx.repeated_singular and any(key[0] != ITEM for key in new):
        raise WireError("a resource or scope occurs twice in one container")
    view = memoryview(raw)
    heads, starts, ends, regions = idx.heads, idx.starts, idx.ends, idx.regions
    # region position → the pieces of its new content
    content: dict[int, tuple[Piece, ...]] = {}
    for key, extra in (appended or {}).items():
        k = idx.position_of(key)
        content[k] = (view[starts[k] : ends[k]], extra)
    for key, payload in new.items():
        content[idx.position_of(key)] = (payload,)

    # Regions are in byte order; walk the changed ones, closing a scope / resource when the next change is
    # outside it. Each holder's new length is its old length plus the growth of the children changed in it.
    out: list[Piece] = []
    resource_out: list[Piece] = []
    scope_out: list[Piece] = []
    pos = 0  # copied up to here
    cur_r = cur_s = -2
    scope_growth = resource_growth = 0

    def close_scope() -> None:
        nonlocal scope_growth, resource_growth, pos
        if cur_s < 0:
            return
        head, start, end = idx.scopes[(cur_r, cur_s)]
        scope_out.append(view[pos:end])
        length = end - start + scope_growth
        prefix = _TAG_FIELD_2 + encode_varint(length)
        resource_out.append(prefix)
        resource_out.extend(scope_out)
        resource_growth += len(prefix) + length - (end - head)
        scope_out.clear()
        scope_growth = 0
        pos = end

    def close_resource() -> None:
        nonlocal resource_growth, pos
        if cur_r < 0:
            return
        _, start, end = idx.resources[cur_r]
        resource_out.append(view[pos:end])
        length = end - start + resource_growth
        out.append(_TAG_FIELD_1 + encode_varint(length))
        out.extend(resource_out)
        resource_out.clear()
        resource_growth = 0
        pos = end

    for k in sorted(content):
        region = regions[k]
        r, s = region.resource, region.scope
        if r != cur_r:
            close_scope()
            close_resource()
            head = idx.resources[r][0]
            out.append(view[pos:head])
            pos = idx.resources[r][1]
            cur_r, cur_s = r, -1
        if s != cur_s:
            close_scope()
            cur_s = s
            if s >= 0:
                head, start, _ = idx.scopes[(r, s)]
                resource_out.append(view[pos:head])
                pos = start
        pieces = content[k]
        length = sum(map(len, pieces))
        prefix = (_TAG_FIELD_2 if region.kind == ITEM else _TAG_FIELD_1) + encode_varint(length)
        growth = len(prefix) + length - (ends[k] - heads[k])
        target = resource_out if region.kind == RESOURCE else scope_out
        target.append(view[pos : heads[k]])
        target.append(prefix)
        target.extend(pieces)
        pos = ends[k]
        if region.kind == RESOURCE:
            resource_growth += growth
        else:
            scope_growth += growth
    close_scope()
    close_resource()
    out.append(view[pos:])
    return b"".join(out)
