"""Redaction processor: pure functions that redact PII in ExportTraceServiceRequest /
ExportLogsServiceRequest messages in place, using a PiiScanner."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from processors.redaction.config import RedactionConfig
from processors.redaction.scanner import KEY_ALLOWED, KEY_SECRET, SECRET_LABEL, PiiScanner
from processors.wire.index import ITEM, RESOURCE, SCOPE, Key

ATTR_REDACTED_COUNT = "pii.redacted.count"
ATTR_REDACTED_TYPES = "pii.redacted.types"
SECRET_TYPE = "secret_key"  # type name counted for values masked because of their key


@dataclass
class RedactionStats:
    by_type: dict[str, int] = field(default_factory=dict)
    regions: set[Key] = field(default_factory=set)
    """The resources, scopes and items whose message was changed."""

    @property
    def changed(self) -> bool:
        return bool(self.by_type)


class _Walk:
    """Collects every scannable string of a batch, how to write it back, and the span/log that owns it."""

    def __init__(self, scanner: PiiScanner) -> None:
        self.scanner = scanner
        self.texts: list[str] = []
        self.targets: list[tuple[Any, str, int]] = []  # (message, field name, owner index)
        # the resource, scope, span or log record holding the strings; spans and log records get a summary
        self.owners: list[tuple[Key, Any]] = []  # (region, message to summarise or None)
        self.found: dict[int, list[str]] = {}  # owner index → type names (one per redaction)

    def owner(self, key: Key, summarise: Any = None) -> int:
        self.owners.append((key, summarise))
        return len(self.owners) - 1

    def record(self, owner: int, names: Iterable[str]) -> None:
        self.found.setdefault(owner, []).extend(names)

    def attributes(self, attrs: Iterable[KeyValue], owner: int) -> None:
        key_kind = self.scanner.key_kind
        for kv in attrs:
            kind = key_kind(kv.key)
            if kind == KEY_ALLOWED:
                continue
            if kind == KEY_SECRET:
                self.mask(kv.value, owner)
            else:
                self.value(kv.value, owner)

    def value(self, value: AnyValue, owner: int) -> None:
        kind = value.WhichOneof("value")
        if kind == "string_value":
            self.texts.append(value.string_value)
            self.targets.append((value, "string_value", owner))
        elif kind == "array_value":
            for item in value.array_value.values:
                self.value(item, owner)
        elif kind == "kvlist_value":
            self.attributes(value.kvlist_value.values, owner)

    def text_field(self, message: Message, name: str, owner: int) -> None:
        text = getattr(message, name)
        if text:
            self.texts.append(text)
            self.targets.append((message, name, owner))

    def mask(self, value: AnyValue, owner: int) -> None:
        kind = value.WhichOneof("value")
        if kind is None or (kind == "string_value" and not value.string_value):
            return  # nothing to hide
        original = value.string_value if kind == "string_value" else value.SerializeToString().hex()
        replacement = self.scanner.replacement(SECRET_LABEL, original)
        if kind == "string_value" and original == replacement:
            return  # already masked (e.g. a batch that went through twice)
        value.Clear()
        value.string_value = replacement
        self.record(owner, (SECRET_TYPE,))

    def redact_collected(self) -> None:
        scanner = self.scanner
        for idx, hit_ends in scanner.candidate_hits(self.texts).items():
            result = scanner.redact_text(self.texts[idx], hit_ends, hit_ends)
            if result is None:
                continue
            message, name, owner = self.targets[idx]
            setattr(message, name, result[0])
            self.record(owner, result[1])

    def finish(self, summary: bool) -> RedactionStats:
        stats = RedactionStats()
        for owner, names in self.found.items():
            if not names:
                continue
            for n in names:
                stats.by_type[n] = stats.by_type.get(n, 0) + 1
            key, message = self.owners[owner]
            stats.regions.add(key)
            if summary and message is not None:
                _set_summary(message.attributes, names)
        return stats


def _set_summary(attrs: Any, names: list[str]) -> None:
    for i in range(len(attrs) - 1, -1, -1):
        if attrs[i].key in (ATTR_REDACTED_COUNT, ATTR_REDACTED_TYPES):
            del attrs[i]
    attrs.add(key=ATTR_REDACTED_COUNT).value.int_value = len(names)
    types = ArrayValue(values=[AnyValue(string_value=n) for n in sorted(set(names))])
    attrs.add(key=ATTR_REDACTED_TYPES).value.array_value.CopyFrom(types)


FieldsHit = set[tuple[int, int]]
"""(field number, occurrence) of the top-level fields of a span / log record that the raw-bytes scan hit
(wire_index.item_parts); only those are walked."""

Regions = Mapping[Key, FieldsHit | None] | None
"""The wire_index regions to visit — resources, scopes, items — each item with the fields hit in it (None:
walk the whole item); None visits everything."""

_SPAN_FIELDS = Span.DESCRIPTOR.fields_by_name
_SPAN_ATTRIBUTES, _SPAN_EVENTS, _SPAN_LINKS, _SPAN_STATUS = (
    _SPAN_FIELDS[name].number for name in ("attributes", "events", "links", "status")
)
_LOG_BODY = LogRecord.DESCRIPTOR.fields_by_name["body"].number
_LOG_ATTRIBUTES = LogRecord.DESCRIPTOR.fields_by_name["attributes"].number


def _walk_span(walk: _Walk, span: Any, owner: int, fields: Any, hit: FieldsHit | None) -> None:
    if hit is not None and _known(
        hit, {_SPAN_ATTRIBUTES: span.attributes, _SPAN_EVENTS: span.events, _SPAN_LINKS: span.links}
    ):
        for number, k in sorted(hit):
            if number == _SPAN_ATTRIBUTES:
                walk.attributes((span.attributes[k],), owner)
            elif number == _SPAN_EVENTS and fields.span_events:
                walk.attributes(span.events[k].attributes, owner)
            elif number == _SPAN_LINKS and fields.span_links:
                walk.attributes(span.links[k].attributes, owner)
            elif number == _SPAN_STATUS and fields.span_status and span.status.message:
                walk.text_field(span.status, "message", owner)
        return
    walk.attributes(span.attributes, owner)
    if fields.span_events:
        for event in span.events:
            walk.attributes(event.attributes, owner)
    if fields.span_links:
        for link in span.links:
            walk.attributes(link.attributes, owner)
    if fields.span_status and span.status.message:
        walk.text_field(span.status, "message", owner)


def _walk_log(walk: _Walk, record: Any, owner: int, fields: Any, hit: FieldsHit | None) -> None:
    if hit is not None and _known(hit, {_LOG_ATTRIBUTES: record.attributes}):
        for number, k in sorted(hit):
            if number == _LOG_ATTRIBUTES:
                walk.attributes((record.attributes[k],), owner)
            elif number == _LOG_BODY and fields.log_body and record.HasField("body"):
                walk.value(record.body, owner)
        return
    walk.attributes(record.attributes, owner)
    if fields.log_body and record.HasField("body"):
        walk.value(record.body, owner)


def _known(hit: FieldsHit, repeated: dict[int, Any]) -> bool:
    """Does every hit occurrence of a repeated field exist in the parsed message? (Else walk it whole.)"""
    return all(n not in repeated or k < len(repeated[n]) for n, k in hit)


_ItemWalker = Callable[[_Walk, Any, int, Any, "FieldsHit | None"], None]


# (request field, holder field, item field) of each request type
_SHAPES: dict[type, tuple[str, str, str]] = {
    ExportTraceServiceRequest: ("resource_spans", "scope_spans", "spans"),
    ExportLogsServiceRequest: ("resource_logs", "scope_logs", "log_records"),
}


def _redact(
    request: ExportTraceServiceRequest | ExportLogsServiceRequest,
    walk_item: _ItemWalker,
    scanner: PiiScanner,
    config: RedactionConfig,
    only: Regions,
) -> RedactionStats:
    """The walk both signals share: resource and scope attributes, then each item with ``walk_item``."""
    resources_field, scopes_field, items_field = _SHAPES[type(request)]
    walk = _Walk(scanner)
    fields = config.fields
    for r, holder in enumerate(getattr(request, resources_field)):
        if fields.resource_attributes and (only is None or (RESOURCE, r, -1, -1) in only):
            walk.attributes(holder.resource.attributes, walk.owner((RESOURCE, r, -1, -1)))
        for s, scope_holder in enumerate(getattr(holder, scopes_field)):
            if fields.scope_attributes and (only is None or (SCOPE, r, s, -1) in only):
                walk.attributes(scope_holder.scope.attributes, walk.owner((SCOPE, r, s, -1)))
            items = getattr(scope_holder, items_field)
            indices = range(len(items)) if only is None else _items(only, r, s)
            for i in indices:
                key = (ITEM, r, s, i)
                walk_item(
                    walk, items[i], walk.owner(key, items[i]), fields, None if only is None else only[key]
                )
    walk.redact_collected()
    return walk.finish(config.summary)


def redact_traces(
    request: ExportTraceServiceRequest, scanner: PiiScanner, config: RedactionConfig, only: Regions = None
) -> RedactionStats:
    """Redact in place. ``only`` limits the walk to the regions, and within a span to the fields, where the
    raw-bytes scan found something."""
    return _redact(request, _walk_span, scanner, config, only)


def redact_logs(
    request: ExportLogsServiceRequest, scanner: PiiScanner, config: RedactionConfig, only: Regions = None
) -> RedactionStats:
    """Redact in place. ``only`` limits the walk to the regions, and within a log record to the fields, where
    the raw-bytes scan found something."""
    return _redact(request, _walk_log, scanner, config, only)


def message_at(request: ExportTraceServiceRequest | ExportLogsServiceRequest, key: Key) -> Message:
    """The resource, scope, span or log record a region key names."""
    kind, r, s, i = key
    resources_field, scopes_field, items_field = _SHAPES[type(request)]
    holder = getattr(request, resources_field)[r]
    if kind == RESOURCE:
        return cast(Message, holder.resource)
    scope_holder = getattr(holder, scopes_field)[s]
    return cast(Message, scope_holder.scope if kind == SCOPE else getattr(scope_holder, items_field)[i])


def _items(only: Mapping[Key, Any], r: int, s: int) -> list[int]:
    return sorted(i for kind, rr, ss, i in only if kind == ITEM and rr == r and ss == s)
