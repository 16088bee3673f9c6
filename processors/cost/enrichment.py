"""Cost processor: a pure function that prices GenAI spans of an ExportTraceServiceRequest in place."""

from __future__ import annotations

import math
import struct
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from processors.cost import usage as usage_module
from processors.cost.prices import PriceBook
from processors.wire.index import ITEM, Key, encode_varint

ATTR_COST = usage_module.ATTR_COST
ATTR_COST_INPUT = "gen_ai.cost.input"
ATTR_COST_OUTPUT = "gen_ai.cost.output"
ATTR_COST_CACHE_READ = "gen_ai.cost.cache_read"
ATTR_COST_CACHE_WRITE = "gen_ai.cost.cache_write"
ATTR_COST_STATUS = usage_module.ATTR_COST_STATUS
ATTR_COST_PRICING = "gen_ai.cost.pricing"
ATTR_COST_REPORTED = "gen_ai.cost.reported"
ATTR_UNPRICED_REASON = "gen_ai.cost.unpriced_reason"

DEFAULT_MAX_TOKENS = 100_000_000

# genai-prices usage key → the token type the token counter is labelled with
TOKEN_TYPES = {
    "input_tokens": "input",
    "output_tokens": "output",
    "cache_read_tokens": "cache_read",
    "cache_write_tokens": "cache_write",
    "output_reasoning_tokens": "reasoning",
}


@dataclass
class ModelCost:
    """Cost of one (provider, model) in a batch; the costliest span is kept as the metric exemplar."""

    total: float
    max_span_cost: float
    trace_id: bytes
    span_id: bytes


@dataclass
class CostStats:
    """What one batch contributed; the handler turns it into metrics."""

    priced_spans: int = 0
    unpriced_by_model: dict[str, int] = field(default_factory=dict)
    """model (or "<none>") → unpriced spans; with the reason in ``unpriced_by_reason``."""
    unpriced_by_reason: dict[tuple[str, str], int] = field(default_factory=dict)
    """(model, reason) → unpriced spans."""
    cost_by_model: dict[tuple[str, str], ModelCost] = field(default_factory=dict)
    tokens: dict[tuple[str, str, str], int] = field(default_factory=dict)
    """(provider, model, token type) → tokens of the priced spans."""

    @property
    def changed(self) -> bool:
        return bool(self.priced_spans or self.unpriced_by_model)

    def unpriced(self, model: str, reason: str) -> None:
        label = model or "<none>"
        self.unpriced_by_model[label] = self.unpriced_by_model.get(label, 0) + 1
        self.unpriced_by_reason[(label, reason)] = self.unpriced_by_reason.get((label, reason), 0) + 1


# The attributes are built as wire bytes: Span.attributes = field 9; KeyValue {1: key, 2: value};
# AnyValue {1: string_value, 4: double_value (fixed64)}.
def _kv_bytes(key: str, any_value: bytes) -> bytes:
    k = key.encode()
    kv = b"\x0a" + encode_varint(len(k)) + k + b"\x12" + encode_varint(len(any_value)) + any_value
    return b"\x4a" + encode_varint(len(kv)) + kv


_DOUBLE_PREFIX = {
    key: _kv_bytes(key, b"\x21" + bytes(8))[:-8]
    for key in (ATTR_COST, ATTR_COST_INPUT, ATTR_COST_OUTPUT, ATTR_COST_CACHE_READ, ATTR_COST_CACHE_WRITE)
}
_PACK_DOUBLE = struct.Struct("<d").pack


def _string_attr(key: str, v: str) -> bytes:
    b = v.encode()
    return _kv_bytes(key, b"\x0a" + encode_varint(len(b)) + b)


def enrich_costs(
    request: ExportTraceServiceRequest,
    prices: PriceBook,
    only: Iterable[Key] | None = None,
    max_tokens: int = DEFAULT_MAX_TOKENS,
) -> CostStats:
    """Add cost attributes to every span with token usage; mutate ``request`` in place.

    Spans without usage (and without a cost of their own) are left untouched. ``only`` (wire ITEM keys)
    limits the walk to spans known to mention token usage.
    """
    priced = price_spans(request, prices, only, max_tokens)
    rewrite_spans(request, priced.rewritten)
    merge_costs(request, priced.additions, priced.additions)
    return priced.stats


@dataclass
class PricedSpans:
    stats: CostStats
    additions: dict[Key, bytes]
    """The cost attributes of each priced or unpriced span, as wire bytes to append to the span's own bytes
    (a repeated field may continue anywhere: parsing appends)."""
    rewritten: dict[Key, AnyValue | None]
    """Spans that carry attributes under the pipeline's own names, with the app's own cost (if any): before
    their additions are merged, ``rewrite_spans`` removes those attributes (keeping the app's cost as
    gen_ai.cost.reported), so they must be re-serialised, not just appended to. Not done here: a redaction
    walk of the same span addresses its attributes by their position in the received bytes."""


def price_spans(
    request: ExportTraceServiceRequest,
    prices: PriceBook,
    only: Iterable[Key] | None = None,
    max_tokens: int = DEFAULT_MAX_TOKENS,
) -> PricedSpans:
    """Price every span that carries token usage in any instrumentation's spelling (usage.py).

    The pipeline's own price is the one exported and counted: a cost the span already carries (OpenLIT
    sets gen_ai.usage.cost from its own price list) is kept as gen_ai.cost.reported and never summed, so the
    cost counter always equals the sum of exported gen_ai.usage.cost. Invalid usage (negative, non-finite,
    fractional, absurd counts) and unknown models are ``unpriced`` with gen_ai.cost.unpriced_reason.
    ``request`` is not changed; ``rewrite_spans`` and ``merge_costs`` apply the result."""
    stats = CostStats()
    additions: dict[Key, bytes] = {}
    rewritten: dict[Key, AnyValue | None] = {}
    now = time.monotonic()
    read = usage_module.read_usage
    pricing_version = prices.version
    double_prefix = _DOUBLE_PREFIX
    pack_double = _PACK_DOUBLE
    priced_tail = _string_attr(ATTR_COST_STATUS, "priced") + _string_attr(ATTR_COST_PRICING, pricing_version)
    unpriced_head = _string_attr(ATTR_COST_STATUS, "unpriced") + _string_attr(
        ATTR_COST_PRICING, pricing_version
    )
    for key, span in _spans(request, only):
        found = read(span.attributes, max_tokens)
        if found is None:
            continue
        if found.pipeline_attributes:
            rewritten[key] = found.reported_cost
        model = found.model
        reason = found.problem
        resolved = None
        if not reason:
            if not found.usage:
                reason = "no_usage"
            elif not model:
                reason = "no_model"
            else:
                resolved = prices.lookup(found.provider, model, now)
                if resolved is None:
                    reason = "unknown_model"
        cost = resolved.cost(found.usage) if resolved is not None else None
        if resolved is not None and cost is None:
            reason = "inconsistent_usage"
        elif cost is not None and not all(math.isfinite(v) and v >= 0 for v in cost):
            reason, cost = "invalid_cost", None
        if cost is None or resolved is None:
            additions[key] = unpriced_head + _string_attr(ATTR_UNPRICED_REASON, reason)
            stats.unpriced(model, reason)
            continue
        wire = [double_prefix[ATTR_COST], pack_double(cost.total)]
        if cost.input:
            wire += (double_prefix[ATTR_COST_INPUT], pack_double(cost.input))
        if cost.output:
            wire += (double_prefix[ATTR_COST_OUTPUT], pack_double(cost.output))
        if cost.cache_read:
            wire += (double_prefix[ATTR_COST_CACHE_READ], pack_double(cost.cache_read))
        if cost.cache_write:
            wire += (double_prefix[ATTR_COST_CACHE_WRITE], pack_double(cost.cache_write))
        wire.append(priced_tail)
        additions[key] = b"".join(wire)
        stats.priced_spans += 1
        provider_id = resolved.provider_id
        tokens = stats.tokens
        for usage_key, count in found.usage.items():
            token_key = (provider_id, model, TOKEN_TYPES[usage_key])
            tokens[token_key] = tokens.get(token_key, 0) + count
        group = stats.cost_by_model.get((provider_id, model))
        if group is None:
            stats.cost_by_model[(provider_id, model)] = ModelCost(
                cost.total, cost.total, span.trace_id, span.span_id
            )
        else:
            group.total += cost.total
            if cost.total > group.max_span_cost:  # the ids are read only for a new costliest span
                group.max_span_cost, group.trace_id, group.span_id = cost.total, span.trace_id, span.span_id
    return PricedSpans(stats, additions, rewritten)


def rewrite_spans(request: ExportTraceServiceRequest, rewritten: Mapping[Key, AnyValue | None]) -> None:
    """Remove what the ``rewritten`` spans carry under the pipeline's cost names; an app's own total is kept
    aside as gen_ai.cost.reported."""
    for (_, r, s, i), reported in rewritten.items():
        _drop_pipeline_attributes(request.resource_spans[r].scope_spans[s].spans[i], reported)


def _drop_pipeline_attributes(span: Span, reported: AnyValue | None) -> None:
    kept = AnyValue()
    if reported is not None:
        kept.CopyFrom(reported)
    attrs = span.attributes
    for i in range(len(attrs) - 1, -1, -1):
        if attrs[i].key in usage_module.PIPELINE_ATTRIBUTES:
            del attrs[i]
    if reported is not None:
        attrs.add(key=ATTR_COST_REPORTED).value.CopyFrom(kept)


def merge_costs(
    request: ExportTraceServiceRequest, additions: Mapping[Key, bytes], keys: Iterable[Key]
) -> None:
    """Merge the ``additions`` of the spans named by ``keys`` into the parsed request."""
    for key in keys:
        _, r, s, i = key
        request.resource_spans[r].scope_spans[s].spans[i].MergeFromString(additions[key])


def _spans(request: ExportTraceServiceRequest, only: Iterable[Key] | None) -> Iterator[tuple[Key, Span]]:
    if only is None:
        for r, resource_spans in enumerate(request.resource_spans):
            for s, scope_spans in enumerate(resource_spans.scope_spans):
                for i, span in enumerate(scope_spans.spans):
                    yield (ITEM, r, s, i), span
    else:
        for key in sorted(only):
            _, r, s, i = key
            yield key, request.resource_spans[r].scope_spans[s].spans[i]
