"""Redaction processor: pure functions that redact PII in ExportTraceServiceRequest /
ExportLogsServiceRequest messages in place, using a PiiScanner."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from processors.pii_scanner import KEY_ALLOWED, KEY_SECRET, SECRET_LABEL, PiiScanner
from processors.redaction_config import RedactionConfig
from processors.wire_index import ITEM, RESOURCE, SCOPE, Key

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


Regions = set[Key] | None
"""(kind, resource, scope, item) of wire_index regions to visit; None visits everything."""


def _wanted(only: Regions, kind: int, r: int, s: int = -1) -> bool:
    """Is this resource (or scope) region to be visited? Their regions have item index -1."""
    return only is None or (kind, r, s, -1) in only


Parts = dict[Key, set[tuple[int, int]]] | None
"""For a span / log record: (field number, occurrence) of its top-level fields that the raw-bytes scan hit
(wire_index.item_parts); only those are walked. An item not in it is walked whole."""

_SPAN_FIELDS = Span.DESCRIPTOR.fields_by_name
_SPAN_ATTRIBUTES, _SPAN_EVENTS, _SPAN_LINKS, _SPAN_STATUS = (
    _SPAN_FIELDS[name].number for name in ("attributes", "events", "links", "status")
)
_LOG_BODY = LogRecord.DESCRIPTOR.fields_by_name["body"].number
_LOG_ATTRIBUTES = LogRecord.DESCRIPTOR.fields_by_name["attributes"].number


def _walk_span(walk: _Walk, span: Any, owner: int, fields: Any, parts: set[tuple[int, int]] | None) -> None:
    if parts is not None and all(
        (n != _SPAN_ATTRIBUTES or k < len(span.attributes))
        and (n != _SPAN_EVENTS or k < len(span.events))
        and (n != _SPAN_LINKS or k < len(span.links))
        for n, k in parts
    ):
        for number, k in sorted(parts):
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


def _walk_log(walk: _Walk, record: Any, owner: int, fields: Any, parts: set[tuple[int, int]] | None) -> None:
    if parts is not None and all(n != _LOG_ATTRIBUTES or k < len(record.attributes) for n, k in parts):
        for number, k in sorted(parts):
            if number == _LOG_ATTRIBUTES:
                walk.attributes((record.attributes[k],), owner)
            elif number == _LOG_BODY and fields.log_body and record.HasField("body"):
                walk.value(record.body, owner)
        return
    walk.attributes(record.attributes, owner)
    if fields.log_body and record.HasField("body"):
        walk.value(record.body, owner)


def redact_traces(
    request: ExportTraceServiceRequest,
    scanner: PiiScanner,
    config: RedactionConfig,
    only: Regions = None,
    parts: Parts = None,
) -> RedactionStats:
    """Redact in place. ``only`` limits the walk to the regions where the raw-bytes scan found something,
    ``parts`` within a span to the fields it found something in."""
    walk = _Walk(scanner)
    fields = config.fields
    for r, resource_spans in enumerate(request.resource_spans):
        if fields.resource_attributes and _wanted(only, RESOURCE, r):
            walk.attributes(resource_spans.resource.attributes, walk.owner((RESOURCE, r, -1, -1)))
        for s, scope_spans in enumerate(resource_spans.scope_spans):
            if fields.scope_attributes and _wanted(only, SCOPE, r, s):
                walk.attributes(scope_spans.scope.attributes, walk.owner((SCOPE, r, s, -1)))
            spans = scope_spans.spans
            indices = range(len(spans)) if only is None else _items(only, r, s)
            for i in indices:
                span = spans[i]
                key = (ITEM, r, s, i)
                _walk_span(
                    walk, span, walk.owner(key, span), fields, None if parts is None else parts.get(key)
                )
    walk.redact_collected()
    return walk.finish(config.summary)


def redact_logs(
    request: ExportLogsServiceRequest,
    scanner: PiiScanner,
    config: RedactionConfig,
    only: Regions = None,
    parts: Parts = None,
) -> RedactionStats:
    """Redact in place. ``only`` limits the walk to the regions where the raw-bytes scan found something,
    ``parts`` within a log record to the fields it found something in."""
    walk = _Walk(scanner)
    fields = config.fields
    for r, resource_logs in enumerate(request.resource_logs):
        if fields.resource_attributes and _wanted(only, RESOURCE, r):
            walk.attributes(resource_logs.resource.attributes, walk.owner((RESOURCE, r, -1, -1)))
        for s, scope_logs in enumerate(resource_logs.scope_logs):
            if fields.scope_attributes and _wanted(only, SCOPE, r, s):
                walk.attributes(scope_logs.scope.attributes, walk.owner((SCOPE, r, s, -1)))
            records = scope_logs.log_records
            indices = range(len(records)) if only is None else _items(only, r, s)
            for i in indices:
                record = records[i]
                key = (ITEM, r, s, i)
                _walk_log(
                    walk, record, walk.owner(key, record), fields, None if parts is None else parts.get(key)
                )
    walk.redact_collected()
    return walk.finish(config.summary)


def _items(only: set[tuple[int, int, int, int]], r: int, s: int) -> list[int]:
    return sorted(i for kind, rr, ss, i in only if kind == ITEM and rr == r and ss == s)
