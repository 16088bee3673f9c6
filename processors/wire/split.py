"""Splits a serialized Export{Trace,Logs,Metrics}ServiceRequest into requests that each fit a byte limit, by
resource, scope and item (span / log record / metric), copying every item's bytes as they are.

All three requests share one shape (see ``index``), so one splitter serves every signal. Each part repeats
the resource and scope (and their schema URLs) of the items it carries, so every part is a complete request
that means the same as its share of the original. An item whose request is over the limit on its own is
returned as a part of its own marked ``oversize``: the caller truncates it (``truncate.fit``).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from processors.wire.index import ITEM, Key, all_fields, encode_varint, index

_TAG_RESOURCE, _TAG_SCOPE = b"\x0a", b"\x12"  # request {1: Resource*}, Resource* {2: Scope*}
_CONTAINED = 2  # the field number of the scopes in a resource container and of the items in a scope
_PREFIX_MAX = 6  # a tag and the longest length varint a message below 4 GiB needs: sizes never undercount


@dataclass(frozen=True)
class Part:
    payload: bytes
    items: tuple[Key, ...]
    """The ITEM keys (of the request that was split) this part carries."""
    oversize: bool = False
    """One item whose request alone is over the limit."""


@dataclass
class _Scope:
    header: bytes
    items: list[bytes] = field(default_factory=list)


@dataclass
class _Builder:
    """The part being filled: resource → scope → item field bytes."""

    resources: dict[int, tuple[bytes, dict[int, _Scope]]] = field(default_factory=dict)
    keys: list[Key] = field(default_factory=list)
    size: int = 0

    def cost(self, r: int, s: int, r_header: bytes, s_header: bytes, item: bytes) -> int:
        added = len(item)
        if r not in self.resources:
            return added + 2 * _PREFIX_MAX + len(r_header) + len(s_header)
        if s not in self.resources[r][1]:
            return added + _PREFIX_MAX + len(s_header)
        return added

    def add(self, key: Key, r_header: bytes, s_header: bytes, item: bytes) -> None:
        _, r, s, _ = key
        self.size += self.cost(r, s, r_header, s_header, item)
        scopes = self.resources.setdefault(r, (r_header, {}))[1]
        scopes.setdefault(s, _Scope(s_header)).items.append(item)
        self.keys.append(key)

    def build(self, oversize: bool = False) -> Part:
        out: list[bytes] = []
        for r_header, scopes in self.resources.values():
            body = [r_header]
            for scope in scopes.values():
                content = scope.header + b"".join(scope.items)
                body += (_TAG_SCOPE, encode_varint(len(content)), content)
            resource = b"".join(body)
            out += (_TAG_RESOURCE, encode_varint(len(resource)), resource)
        return Part(b"".join(out), tuple(self.keys), oversize)


def _header(raw: bytes, start: int, end: int) -> bytes:
    """Every field of a container except the ones it contains (field 2): resource/scope, schema URL."""
    return b"".join(raw[h:e] for number, _, h, _, e in all_fields(raw, start, end) if number != _CONTAINED)


def split(raw: bytes, limit: int, skip: Collection[Key] = ()) -> list[Part]:
    """Parts of ``raw`` of at most ``limit`` bytes each (an ``oversize`` part excepted), in item order,
    leaving out the items in ``skip`` and containers without items. Raises WireError."""
    idx = index(raw)
    r_headers: dict[int, bytes] = {}
    s_headers: dict[tuple[int, int], bytes] = {}
    parts: list[Part] = []
    current = _Builder()
    for k, region in enumerate(idx.regions):
        if region.kind != ITEM or region in skip:
            continue
        r, s = region.resource, region.scope
        if r not in r_headers:
            r_headers[r] = _header(raw, idx.resources[r][1], idx.resources[r][2])
        if (r, s) not in s_headers:
            s_headers[(r, s)] = _header(raw, idx.scopes[(r, s)][1], idx.scopes[(r, s)][2])
        item = raw[idx.heads[k] : idx.ends[k]]
        r_header, s_header = r_headers[r], s_headers[(r, s)]
        if current.keys and current.size + current.cost(r, s, r_header, s_header, item) > limit:
            parts.append(current.build())
            current = _Builder()
        current.add(region, r_header, s_header, item)
        if current.size > limit:  # alone in its part and still too large
            parts.append(current.build(oversize=True))
            current = _Builder()
    if current.keys:
        parts.append(current.build())
    return parts
