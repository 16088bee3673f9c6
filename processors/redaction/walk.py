"""Redaction processor: pure functions that redact PII in ExportTraceServiceRequest /
ExportLogsServiceRequest / ExportMetricsServiceRequest messages in place, using a PiiScanner.

Every field that carries text is scanned: span, event and scope names, status messages, log severity text
and event names, attribute keys and values (strings, arrays and kvlists recursively, and integers or
integral doubles that validate as a card or phone number), log bodies, metric names and every label a
metric point or exemplar carries. Keys on the allow-list keep values that only look like PII (a phone-like
id) but not the high-confidence types (e-mail, Luhn-valid card, SSN, IBAN, secrets)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue
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


_KEY = "key"  # marks a target that is an attribute key (written back with a unique name)


class _Walk:
    """Collects every scannable string of a batch, how to write it back, and the span/log that owns it."""

    def __init__(self, scanner: PiiScanner) -> None:
        self.scanner = scanner
        self.texts: list[str] = []
        # (message or KeyValue list, field name or _KEY, owner index, detector ids allowed (None: all), index)
        self.targets: list[tuple[Any, str, int, frozenset[int] | None, int]] = []
        # the resource, scope, span or log record holding the strings; spans and log records get a summary
        self.owners: list[tuple[Key, Any]] = []  # (region, message to summarise or None)
        self.found: dict[int, list[str]] = {}  # owner index → type names (one per redaction)
        self.renamed: dict[int, tuple[Any, set[int]]] = {}  # id(KeyValue list) → (list, indices renamed)

    def owner(self, key: Key, summarise: Any = None) -> int:
        self.owners.append((key, summarise))
        return len(self.owners) - 1

    def record(self, owner: int, names: Iterable[str]) -> None:
        self.found.setdefault(owner, []).extend(names)

    def attributes(self, attrs: Any, owner: int, indices: Iterable[int] | None = None) -> None:
        """The KeyValues of ``attrs`` (all, or those at ``indices``): keys and values."""
        key_kind = self.scanner.key_kind
        high_confidence = self.scanner.high_confidence_ids
        for i in range(len(attrs)) if indices is None else indices:
            kv = attrs[i]
            key = kv.key
            kind = key_kind(key)
            if kind == KEY_ALLOWED:
                # known keys (ids, model names, service.*) keep values that merely look like a phone or an
                # IP; what is certainly PII or a secret is replaced there too
                self.value(kv.value, owner, key, high_confidence)
                continue
            if key:
                self.texts.append(key)
                self.targets.append((attrs, _KEY, owner, None, i))
            if kind == KEY_SECRET:
                self.mask(kv.value, owner)
            else:
                self.value(kv.value, owner, key)

    def value(self, value: AnyValue, owner: int, key: str, only: frozenset[int] | None = None) -> None:
        kind = value.WhichOneof("value")
        if kind == "string_value":
            self.texts.append(value.string_value)
            self.targets.append((value, "string_value", owner, only, -1))
        elif kind == "array_value":
            for item in value.array_value.values:
                self.value(item, owner, key, only)
        elif kind == "kvlist_value":
            self.attributes(value.kvlist_value.values, owner)
        elif kind == "int_value":
            self.number(value, value.int_value, owner, key, only)
        elif kind == "double_value":
            number = value.double_value
            if number.is_integer() and abs(number) < 1e19:
                self.number(value, int(number), owner, key, only)

    def number(self, value: AnyValue, number: int, owner: int, key: str, only: frozenset[int] | None) -> None:
        if abs(number) < _SMALLEST_NUMBER_PII:
            return
        found = self.scanner.number_type(key, number, only)
        if found is not None:
            name, label = found
            replacement = self.scanner.replacement(label, str(number))
            value.Clear()
            value.string_value = replacement
            self.record(owner, (name,))

    def text_field(self, message: Message, name: str, owner: int) -> None:
        text = getattr(message, name)
        if text:
            self.texts.append(text)
            self.targets.append((message, name, owner, None, -1))

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
            holder, name, owner, only, index = self.targets[idx]
            if only is not None:
                hit_ends = {det: ends for det, ends in hit_ends.items() if det in only}
                if not hit_ends:
                    continue
            result = scanner.redact_text(self.texts[idx], hit_ends, hit_ends)
            if result is None:
                continue
            if name == _KEY:
                holder[index].key = result[0]
                self.renamed.setdefault(id(holder), (holder, set()))[1].add(index)
            else:
                setattr(holder, name, result[0])
            self.record(owner, result[1])
        for attrs, renamed in self.renamed.values():
            _keep_keys_unique(attrs, renamed)

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


_SMALLEST_NUMBER_PII = 10_000_000  # a phone number has at least 8 digits, a card 12


def _keep_keys_unique(attrs: Any, renamed: set[int]) -> None:
    """A key whose text was redacted may now equal another key of its list: number it (``<EMAIL>_2``)."""
    used = {attrs[j].key for j in range(len(attrs)) if j not in renamed}
    for j in sorted(renamed):
        base = candidate = attrs[j].key
        n = 2
        while candidate in used:
            candidate = f"{base}_{n}"
            n += 1
        attrs[j].key = candidate
        used.add(candidate)


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
_SPAN_NAME, _SPAN_ATTRIBUTES, _SPAN_EVENTS, _SPAN_LINKS, _SPAN_STATUS = (
    _SPAN_FIELDS[name].number for name in ("name", "attributes", "events", "links", "status")
)
_LOG_FIELDS = LogRecord.DESCRIPTOR.fields_by_name
_LOG_SEVERITY_TEXT, _LOG_BODY, _LOG_ATTRIBUTES, _LOG_EVENT_NAME = (
    _LOG_FIELDS[name].number for name in ("severity_text", "body", "attributes", "event_name")
)


def _walk_event(walk: _Walk, event: Any, owner: int) -> None:
    walk.text_field(event, "name", owner)
    walk.attributes(event.attributes, owner)


def _walk_span(walk: _Walk, span: Any, owner: int, fields: Any, hit: FieldsHit | None) -> None:
    if hit is not None and _known(
        hit, {_SPAN_ATTRIBUTES: span.attributes, _SPAN_EVENTS: span.events, _SPAN_LINKS: span.links}
    ):
        attributes = sorted(k for number, k in hit if number == _SPAN_ATTRIBUTES)
        if attributes:
            walk.attributes(span.attributes, owner, attributes)
        for number, k in sorted(hit):
            if number == _SPAN_NAME:
                walk.text_field(span, "name", owner)
            elif number == _SPAN_EVENTS and fields.span_events:
                _walk_event(walk, span.events[k], owner)
            elif number == _SPAN_LINKS and fields.span_links:
                walk.attributes(span.links[k].attributes, owner)
            elif number == _SPAN_STATUS and fields.span_status and span.status.message:
                walk.text_field(span.status, "message", owner)
        return
    walk.text_field(span, "name", owner)
    walk.attributes(span.attributes, owner)
    if fields.span_events:
        for event in span.events:
            _walk_event(walk, event, owner)
    if fields.span_links:
        for link in span.links:
            walk.attributes(link.attributes, owner)
    if fields.span_status and span.status.message:
        walk.text_field(span.status, "message", owner)


def _walk_log(walk: _Walk, record: Any, owner: int, fields: Any, hit: FieldsHit | None) -> None:
    if hit is not None and _known(hit, {_LOG_ATTRIBUTES: record.attributes}):
        attributes = sorted(k for number, k in hit if number == _LOG_ATTRIBUTES)
        if attributes:
            walk.attributes(record.attributes, owner, attributes)
        numbers = {number for number, _ in hit}
        if _LOG_BODY in numbers and fields.log_body and record.HasField("body"):
            walk.value(record.body, owner, "")
        if _LOG_SEVERITY_TEXT in numbers:
            walk.text_field(record, "severity_text", owner)
        if _LOG_EVENT_NAME in numbers:
            walk.text_field(record, "event_name", owner)
        return
    walk.text_field(record, "severity_text", owner)
    walk.text_field(record, "event_name", owner)
    walk.attributes(record.attributes, owner)
    if fields.log_body and record.HasField("body"):
        walk.value(record.body, owner, "")


def _walk_metric(walk: _Walk, metric: Any, owner: int, fields: Any, hit: FieldsHit | None) -> None:
    """The whole metric whatever part was hit: names, metadata, every data point's and exemplar's
    attributes (the labels of the Prometheus series made from it)."""
    walk.text_field(metric, "name", owner)
    walk.text_field(metric, "description", owner)
    walk.attributes(metric.metadata, owner)
    kind = metric.WhichOneof("data")
    if kind is None:
        return
    for point in getattr(metric, kind).data_points:
        walk.attributes(point.attributes, owner)
        for exemplar in getattr(point, "exemplars", ()):
            walk.attributes(exemplar.filtered_attributes, owner)


def _known(hit: FieldsHit, repeated: dict[int, Any]) -> bool:
    """Does every hit occurrence of a repeated field exist in the parsed message? (Else walk it whole.)"""
    return all(n not in repeated or k < len(repeated[n]) for n, k in hit)


_ItemWalker = Callable[[_Walk, Any, int, Any, "FieldsHit | None"], None]


# (request field, holder field, item field) of each request type
_SHAPES: dict[type, tuple[str, str, str]] = {
    ExportTraceServiceRequest: ("resource_spans", "scope_spans", "spans"),
    ExportLogsServiceRequest: ("resource_logs", "scope_logs", "log_records"),
    ExportMetricsServiceRequest: ("resource_metrics", "scope_metrics", "metrics"),
}

Request = ExportTraceServiceRequest | ExportLogsServiceRequest | ExportMetricsServiceRequest


def _redact(
    request: Request,
    walk_item: _ItemWalker,
    scanner: PiiScanner,
    config: RedactionConfig,
    only: Regions,
) -> RedactionStats:
    """The walk all signals share: resource and scope attributes, then each item with ``walk_item``."""
    resources_field, scopes_field, items_field = _SHAPES[type(request)]
    walk = _Walk(scanner)
    fields = config.fields
    for r, holder in enumerate(getattr(request, resources_field)):
        if fields.resource_attributes and (only is None or (RESOURCE, r, -1, -1) in only):
            walk.attributes(holder.resource.attributes, walk.owner((RESOURCE, r, -1, -1)))
        for s, scope_holder in enumerate(getattr(holder, scopes_field)):
            if fields.scope_attributes and (only is None or (SCOPE, r, s, -1) in only):
                scope_owner = walk.owner((SCOPE, r, s, -1))
                walk.text_field(scope_holder.scope, "name", scope_owner)
                walk.attributes(scope_holder.scope.attributes, scope_owner)
            items = getattr(scope_holder, items_field)
            indices = range(len(items)) if only is None else _items(only, r, s)
            for i in indices:
                key = (ITEM, r, s, i)
                # metrics get no summary attribute: it would become a label of every series
                owner = walk.owner(key, None if walk_item is _walk_metric else items[i])
                walk_item(walk, items[i], owner, fields, None if only is None else only[key])
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


def redact_metrics(
    request: ExportMetricsServiceRequest, scanner: PiiScanner, config: RedactionConfig, only: Regions = None
) -> RedactionStats:
    """Redact in place: what becomes a Prometheus label (data point and exemplar attributes, resource and
    scope attributes) and the metric names. ``only`` limits the walk to the metrics the raw scan hit."""
    return _redact(request, _walk_metric, scanner, config, only)


def message_at(request: Request, key: Key) -> Message:
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
