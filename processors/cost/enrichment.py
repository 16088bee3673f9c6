"""Cost processor: a pure function that prices GenAI spans of an ExportTraceServiceRequest in place."""

from __future__ import annotations

import struct
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import cast

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from processors.cost.prices import PriceBook
from processors.wire.index import ITEM, Key, encode_varint

ATTR_COST = "gen_ai.usage.cost"
ATTR_COST_INPUT = "gen_ai.cost.input"
ATTR_COST_OUTPUT = "gen_ai.cost.output"
ATTR_COST_CACHE_READ = "gen_ai.cost.cache_read"
ATTR_COST_CACHE_WRITE = "gen_ai.cost.cache_write"
ATTR_COST_STATUS = "gen_ai.cost.status"
ATTR_COST_PRICING = "gen_ai.cost.pricing"

# span attribute → genai-prices usage key (deprecated names after the current ones)
USAGE_ATTRIBUTES: dict[str, str] = {
    "gen_ai.usage.input_tokens": "input_tokens",
    "gen_ai.usage.prompt_tokens": "input_tokens",
    "gen_ai.usage.output_tokens": "output_tokens",
    "gen_ai.usage.completion_tokens": "output_tokens",
    "gen_ai.usage.cache_read.input_tokens": "cache_read_tokens",
    "gen_ai.usage.cache_creation.input_tokens": "cache_write_tokens",
    "gen_ai.usage.cache_write.input_tokens": "cache_write_tokens",
    "gen_ai.usage.reasoning.output_tokens": "output_reasoning_tokens",
}
_RESPONSE_MODEL, _REQUEST_MODEL, _PROVIDER, _SYSTEM, _HAS_COST = range(5)
_OTHER_ATTRIBUTES = {
    "gen_ai.response.model": _RESPONSE_MODEL,
    "gen_ai.request.model": _REQUEST_MODEL,
    "gen_ai.provider.name": _PROVIDER,
    "gen_ai.system": _SYSTEM,
    ATTR_COST: _HAS_COST,
}
# one lookup per attribute: key → usage key (str) or slot (int)
_RELEVANT: dict[str, str | int] = {**USAGE_ATTRIBUTES, **_OTHER_ATTRIBUTES}


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
    cost_by_model: dict[tuple[str, str], ModelCost] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.priced_spans or self.unpriced_by_model)


def _token_count(value: AnyValue) -> int | None:
    kind = value.WhichOneof("value")
    if kind == "int_value":
        return value.int_value if value.int_value >= 0 else None
    if kind == "double_value" and value.double_value >= 0 and value.double_value.is_integer():
        return int(value.double_value)
    return None


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
    request: ExportTraceServiceRequest, prices: PriceBook, only: Iterable[Key] | None = None
) -> CostStats:
    """Add cost attributes to every span with token usage; mutate ``request`` in place.

    Spans without usage, and spans that already carry gen_ai.usage.cost, are left untouched. ``only``
    (wire_index ITEM keys) limits the walk to spans known to mention token usage.
    """
    stats, additions = price_spans(request, prices, only)
    merge_costs(request, additions, additions)
    return stats


def price_spans(
    request: ExportTraceServiceRequest, prices: PriceBook, only: Iterable[Key] | None = None
) -> tuple[CostStats, dict[Key, bytes]]:
    """The cost attributes of every span with token usage, as wire bytes to append to the span's own bytes
    (a repeated field may continue anywhere: parsing appends), keyed by the span's wire_index ITEM key.
    ``request`` is not changed; ``merge_costs`` merges the bytes in, the server splices them into the
    received batch."""
    stats = CostStats()
    additions: dict[Key, bytes] = {}
    now = time.monotonic()
    relevant = _RELEVANT
    pricing_version = prices.version
    double_prefix = _DOUBLE_PREFIX
    pack_double = _PACK_DOUBLE
    priced_tail = _string_attr(ATTR_COST_STATUS, "priced") + _string_attr(ATTR_COST_PRICING, pricing_version)
    unpriced = _string_attr(ATTR_COST_STATUS, "unpriced") + _string_attr(ATTR_COST_PRICING, pricing_version)
    for key, span in _spans(request, only):
        usage: dict[str, int] | None = None
        found: dict[int, AnyValue] | None = None
        for kv in span.attributes:
            name = kv.key
            what = relevant.get(name)
            if what is None:
                continue
            if type(what) is str:
                count = _token_count(kv.value)
                if count is not None:
                    if usage is None:
                        usage = {}
                    # the current semconv name wins over a deprecated one when both are present
                    if what not in usage or not name.endswith(("prompt_tokens", "completion_tokens")):
                        usage[what] = count
                continue
            if found is None:
                found = {}
            found[cast(int, what)] = kv.value
        if usage is None or (found is not None and _HAS_COST in found):
            continue
        found = found or {}
        model_value = found.get(_RESPONSE_MODEL) or found.get(_REQUEST_MODEL)
        model = model_value.string_value if model_value is not None else ""
        if not model and _RESPONSE_MODEL in found:
            request_model = found.get(_REQUEST_MODEL)
            model = request_model.string_value if request_model is not None else ""
        provider_value = found.get(_PROVIDER) or found.get(_SYSTEM)
        provider = provider_value.string_value if provider_value is not None else ""
        resolved = prices.lookup(provider, model, now) if model else None
        cost = resolved.cost(usage) if resolved is not None else None
        if cost is None or resolved is None:
            additions[key] = unpriced
            label = model or "<none>"
            stats.unpriced_by_model[label] = stats.unpriced_by_model.get(label, 0) + 1
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
        group = stats.cost_by_model.get((resolved.provider_id, model))
        if group is None:
            stats.cost_by_model[(resolved.provider_id, model)] = ModelCost(
                cost.total, cost.total, span.trace_id, span.span_id
            )
        else:
            group.total += cost.total
            if cost.total > group.max_span_cost:  # the ids are read only for a new costliest span
                group.max_span_cost, group.trace_id, group.span_id = cost.total, span.trace_id, span.span_id
    return stats, additions


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
