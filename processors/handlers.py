"""The two thin signal handlers: parse, run the processors, and build the bytes to forward — the received
bytes as they are, or with only the changed spans, log records, resources and scopes spliced in."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Protocol, cast

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from processors.config import SidecarConfig
from processors.cost.enrichment import CostStats, merge_costs, price_spans, rewrite_spans
from processors.cost.prices import PriceBook
from processors.cost.usage import USAGE_MARKERS
from processors.forwarding import Processed, parse_repairing
from processors.redaction.scanner import PiiScanner
from processors.redaction.walk import (
    FieldsHit,
    RedactionStats,
    message_at,
    redact_logs,
    redact_metrics,
    redact_traces,
)
from processors.telemetry import Telemetry
from processors.wire import index as wire_index
from processors.wire import splice as wire_splice
from processors.wire.index import ITEM, Key, string_tag_bytes
from processors.wire.repair import MALFORMED, Repair, removed_request

TRACE_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
LOGS_SERVICE = "opentelemetry.proto.collector.logs.v1.LogsService"
TRACE_METHOD = f"/{TRACE_SERVICE}/Export"
LOGS_METHOD = f"/{LOGS_SERVICE}/Export"
METRICS_SERVICE = "opentelemetry.proto.collector.metrics.v1.MetricsService"
METRICS_METHOD = f"/{METRICS_SERVICE}/Export"
TRACE_STRING_TAGS = string_tag_bytes(ExportTraceServiceRequest.DESCRIPTOR)
LOG_STRING_TAGS = string_tag_bytes(ExportLogsServiceRequest.DESCRIPTOR)
METRIC_STRING_TAGS = string_tag_bytes(ExportMetricsServiceRequest.DESCRIPTOR)


Parts = tuple[bytes | None, int, CostStats | None, RedactionStats | None, Repair | None]
"""What processing a batch yields, picklable (it crosses from a worker process to the front): the bytes to
forward (None = the received bytes unchanged), the item count, the stats the metrics are made from, and what
the wire-level repair changed (its ``payload`` emptied: the bytes to forward are the first element)."""


def processed_from_parts(signal: str, raw: bytes, parts: Parts) -> Processed:
    payload, items, cost, redaction, repair = parts
    quarantine = [(MALFORMED, removed_request(item)) for _, item in repair.removed] if repair else []
    return Processed(
        raw if payload is None else payload,
        items,
        _metrics_recorder(signal, cost, redaction, repair),
        quarantine,
    )


def _finish(parts: Parts, parsed_from: bytes) -> Parts:
    """A repaired batch is forwarded as repaired even when the processors changed nothing."""
    payload, items, cost, redaction, repair = parts
    if repair is None:
        return parts
    repair.payload = b""
    return (parsed_from if payload is None else payload), items, cost, redaction, repair


class Processor(Protocol):
    """What the server needs: a Pipeline in process, or a WorkerPool that runs Pipelines in processes."""

    def process_traces(self, raw: bytes, timeout: float | None = None) -> Processed: ...

    def process_logs(self, raw: bytes, timeout: float | None = None) -> Processed: ...

    def process_metrics(self, raw: bytes, timeout: float | None = None) -> Processed: ...


class Pipeline:
    """Processors built once from the validated config (building them can raise ConfigError)."""

    def __init__(self, config: SidecarConfig) -> None:
        self.config = config
        self.prices = PriceBook(config.cost, config.price_overrides())
        self.scanner = PiiScanner(config.redaction)

    def process_traces(self, raw: bytes, timeout: float | None = None) -> Processed:
        return processed_from_parts("traces", raw, self.trace_parts(raw))

    def process_logs(self, raw: bytes, timeout: float | None = None) -> Processed:
        return processed_from_parts("logs", raw, self.log_parts(raw))

    def process_metrics(self, raw: bytes, timeout: float | None = None) -> Processed:
        return processed_from_parts("metrics", raw, self.metric_parts(raw))

    def trace_parts(self, raw: bytes) -> Parts:
        parsed, raw, repair = parse_repairing(ExportTraceServiceRequest, raw)
        return _finish(self._trace_parts(cast(ExportTraceServiceRequest, parsed), raw, repair), raw)

    def _trace_parts(self, request: ExportTraceServiceRequest, raw: bytes, repair: Repair | None) -> Parts:
        items = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
        regions = _LazyIndex(raw)
        cost: CostStats | None = None
        additions: dict[Key, bytes] = {}
        rewritten: dict[Key, AnyValue | None] = {}
        redaction: RedactionStats | None = None
        markers = [m for m in USAGE_MARKERS if m in raw] if self.config.cost.enabled else []
        if markers:
            priced = price_spans(
                request, self.prices, regions.items_containing(markers), self.config.cost.max_tokens_per_span
            )
            cost, additions, rewritten = priced.stats, priced.additions, priced.rewritten
        merged: set[Key] = set()
        if self.config.redaction.enabled:
            hits = self.scanner.scan_raw(raw, TRACE_STRING_TAGS)
            if hits:
                only = regions.hit(hits)
                # the spans about to be walked get their cost attributes first, as if both ran on the message;
                # not the rewritten ones: the walk finds attributes by their received position, which the
                # rewrite changes (their additions are merged after it)
                merged = (
                    set(additions) if only is None else additions.keys() & only.keys()
                ) - rewritten.keys()
                merge_costs(request, additions, merged)
                redaction = redact_traces(request, self.scanner, self.config.redaction, only)
        if not additions and not rewritten and (redaction is None or not redaction.changed):
            return None, items, cost, redaction, repair  # forwarded as received: no re-serialisation
        changed = (redaction.regions if redaction is not None else set()) | rewritten.keys()
        # a rewritten span is serialised whole, so its cost attributes must be in the parsed message
        rewrite_spans(request, rewritten)
        merge_costs(request, additions, rewritten.keys())
        merged |= rewritten.keys()
        new = {key: message_at(request, key).SerializeToString() for key in changed}
        payload = regions.splice(new, {key: wire for key, wire in additions.items() if key not in new})
        if payload is None:  # not indexable: re-serialise the whole batch, with every cost attribute in it
            merge_costs(request, additions, additions.keys() - merged)
            payload = request.SerializeToString()
        return payload, items, cost, redaction, repair

    def log_parts(self, raw: bytes) -> Parts:
        parsed, raw, repair = parse_repairing(ExportLogsServiceRequest, raw)
        return _finish(self._log_parts(cast(ExportLogsServiceRequest, parsed), raw, repair), raw)

    def _log_parts(self, request: ExportLogsServiceRequest, raw: bytes, repair: Repair | None) -> Parts:
        items = sum(len(sl.log_records) for rl in request.resource_logs for sl in rl.scope_logs)
        redaction: RedactionStats | None = None
        if self.config.redaction.enabled:
            hits = self.scanner.scan_raw(raw, LOG_STRING_TAGS)
            if hits:
                regions = _LazyIndex(raw)
                redaction = redact_logs(request, self.scanner, self.config.redaction, regions.hit(hits))
                if redaction.changed:
                    new = {key: message_at(request, key).SerializeToString() for key in redaction.regions}
                    payload = regions.splice(new, {})
                    if payload is None:  # not indexable: re-serialise the whole batch
                        payload = request.SerializeToString()
                    return payload, items, None, redaction, repair
        return None, items, None, redaction, repair

    def metric_parts(self, raw: bytes) -> Parts:
        parsed, raw, repair = parse_repairing(ExportMetricsServiceRequest, raw)
        return _finish(self._metric_parts(cast(ExportMetricsServiceRequest, parsed), raw, repair), raw)

    def _metric_parts(self, request: ExportMetricsServiceRequest, raw: bytes, repair: Repair | None) -> Parts:
        """Metrics are only redacted (what Prometheus would make labels of), with the same rules as spans."""
        items = sum(
            _data_points(m) for rm in request.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
        )
        if not self.config.redaction.enabled:
            return None, items, None, None, repair
        hits = self.scanner.scan_raw(raw, METRIC_STRING_TAGS)
        if not hits:
            return None, items, None, None, repair
        regions = _LazyIndex(raw)
        redaction = redact_metrics(request, self.scanner, self.config.redaction, regions.hit(hits))
        if not redaction.changed:
            return None, items, None, redaction, repair
        new = {key: message_at(request, key).SerializeToString() for key in redaction.regions}
        payload = regions.splice(new, {})
        return (request.SerializeToString() if payload is None else payload), items, None, redaction, repair


def _data_points(metric: object) -> int:
    kind = metric.WhichOneof("data")  # type: ignore[attr-defined]
    return 0 if kind is None else len(getattr(metric, kind).data_points)


class _LazyIndex:
    """Maps byte offsets of the raw request to the spans/log records (and resources, scopes) holding them.
    If the bytes cannot be indexed, answers None: the processors then walk everything (never less)."""

    def __init__(self, raw: bytes) -> None:
        self._raw = raw
        self._index: wire_index.WireIndex | None = None
        self._failed = False

    def _get(self) -> wire_index.WireIndex | None:
        if self._index is None and not self._failed:
            try:
                self._index = wire_index.index(self._raw)
            except wire_index.WireError:
                self._failed = True
        return self._index

    def hit(self, ends: list[int]) -> dict[Key, FieldsHit | None] | None:
        """The regions holding the hits (exclusive end offsets, as Hyperscan reports them); for a span / log
        record, also the (field number, occurrence) of its top-level fields that hold them — None when the
        item's bytes cannot be read, so that it is walked whole."""
        idx = self._get()
        if idx is None:
            return None
        offsets: dict[Key, list[int]] = {}
        for end in ends:
            k = idx.position_at(end - 1)
            if k >= 0:
                offsets.setdefault(idx.regions[k], []).append(end - 1)
        found: dict[Key, FieldsHit | None] = {}
        for key, at in offsets.items():
            found[key] = None
            if key[0] == ITEM:
                k = idx.position_of(key)
                with contextlib.suppress(wire_index.WireError):
                    found[key] = wire_index.item_parts(self._raw, idx.starts[k], idx.ends[k], at)
        return found

    def splice(self, new: dict[Key, bytes], appended: dict[Key, bytes]) -> bytes | None:
        """The received bytes with the ``new`` messages in place and the ``appended`` bytes added at the end
        of their items; None when the bytes cannot be indexed or spliced (the caller re-serialises)."""
        idx = self._get()
        if idx is None:
            return None
        try:
            return wire_splice.splice(self._raw, idx, new, appended)
        except wire_index.WireError:
            return None

    def items_containing(self, needles: list[bytes]) -> set[Key] | None:
        """The ITEM keys of every span/log record whose bytes contain one of ``needles``."""
        idx = self._get()
        if idx is None:
            return None
        raw = self._raw
        found: set[Key] = set()
        for needle in needles:
            self._items_with(raw, idx, needle, found)
        return found

    @staticmethod
    def _items_with(raw: bytes, idx: wire_index.WireIndex, needle: bytes, found: set[Key]) -> None:
        pos = raw.find(needle)
        while pos >= 0:
            i = idx.position_at(pos)
            if i < 0:
                pos = raw.find(needle, pos + 1)
                continue
            region = idx.regions[i]
            if region.kind == wire_index.ITEM:
                found.add(region)
            pos = raw.find(needle, idx.ends[i])  # one hit per region is enough


def _metrics_recorder(
    signal: str, cost: CostStats | None, redaction: RedactionStats | None, repair: Repair | None = None
) -> Callable[[Telemetry], None] | None:
    if (
        (cost is None or not cost.changed)
        and (redaction is None or not redaction.changed)
        and (repair is None or not repair.repaired)
    ):
        return None

    def record(telemetry: Telemetry) -> None:
        if repair is not None:
            for reason, count in repair.repaired.items():
                telemetry.items_repaired.add(count, {"signal": signal, "reason": reason})
        if redaction is not None:
            for pii_type, count in redaction.by_type.items():
                telemetry.redactions.add(count, {"signal": signal, "pii.type": pii_type})
        if cost is not None:
            for (provider, model), group in cost.cost_by_model.items():
                telemetry.add_cost(provider, model, group.total, group.trace_id, group.span_id)
            for (model, reason), count in cost.unpriced_by_reason.items():
                telemetry.unpriced.add(count, {"gen_ai.response.model": model, "reason": reason})
            for (provider, model, token_type), count in cost.tokens.items():
                telemetry.tokens.add(
                    count,
                    {
                        "gen_ai.provider.name": provider,
                        "gen_ai.response.model": model,
                        "gen_ai.token.type": token_type,
                    },
                )

    return record
