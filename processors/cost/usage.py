"""Where each GenAI instrumentation puts token usage, model and provider on a span — normalised in one place.

docs/instrumentations.md has the table of which flavour writes which name, and what that means for cost.

When a span carries several names for one count, the one listed first wins (``_USAGE`` ranks them). A cost the
span already carries (OpenLIT's ``gen_ai.usage.cost``) is not trusted: see enrichment.py.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from opentelemetry.proto.common.v1.common_pb2 import AnyValue

# Bytes one of which a span's serialized form contains when it carries usage (the handlers' fast path).
USAGE_MARKERS = (b"gen_ai.usage.", b"llm.token_count.")

# span attribute → (genai-prices usage key, rank: lower wins)
_USAGE: dict[str, tuple[str, int]] = {
    "gen_ai.usage.input_tokens": ("input_tokens", 0),
    "gen_ai.usage.prompt_tokens": ("input_tokens", 1),
    "llm.token_count.prompt": ("input_tokens", 2),
    "gen_ai.usage.output_tokens": ("output_tokens", 0),
    "gen_ai.usage.completion_tokens": ("output_tokens", 1),
    "llm.token_count.completion": ("output_tokens", 2),
    "gen_ai.usage.cache_read.input_tokens": ("cache_read_tokens", 0),
    "gen_ai.usage.cache_read_input_tokens": ("cache_read_tokens", 1),
    "llm.token_count.prompt_details.cache_read": ("cache_read_tokens", 2),
    "gen_ai.usage.cache_creation.input_tokens": ("cache_write_tokens", 0),
    "gen_ai.usage.cache_write.input_tokens": ("cache_write_tokens", 1),
    "gen_ai.usage.cache_creation_input_tokens": ("cache_write_tokens", 2),
    "llm.token_count.prompt_details.cache_write": ("cache_write_tokens", 3),
    "gen_ai.usage.reasoning.output_tokens": ("output_reasoning_tokens", 0),
    "gen_ai.usage.reasoning_tokens": ("output_reasoning_tokens", 1),
    "llm.token_count.completion_details.reasoning": ("output_reasoning_tokens", 2),
}
_MODEL: dict[str, int] = {
    "gen_ai.response.model": 0,
    "gen_ai.request.model": 1,
    "llm.model_name": 2,
}
_PROVIDER: dict[str, int] = {
    "gen_ai.provider.name": 0,
    "gen_ai.system": 1,
    "llm.provider": 2,
    "llm.system": 3,
}

ATTR_COST = "gen_ai.usage.cost"
ATTR_COST_STATUS = "gen_ai.cost.status"
# Attributes only the pipeline writes: whatever a span carries under these names is replaced.
PIPELINE_ATTRIBUTES = frozenset(
    {
        ATTR_COST,
        "gen_ai.cost.input",
        "gen_ai.cost.output",
        "gen_ai.cost.cache_read",
        "gen_ai.cost.cache_write",
        ATTR_COST_STATUS,
        "gen_ai.cost.pricing",
        "gen_ai.cost.reported",
        "gen_ai.cost.unpriced_reason",
    }
)

_DECIMAL = re.compile(r"\s*-?[0-9]{1,20}\s*")

# one lookup per attribute: key → what it is
_USAGE_KIND, _MODEL_KIND, _PROVIDER_KIND, _PIPELINE_KIND = range(4)
_KIND: dict[str, int] = {
    **dict.fromkeys(_USAGE, _USAGE_KIND),
    **dict.fromkeys(_MODEL, _MODEL_KIND),
    **dict.fromkeys(_PROVIDER, _PROVIDER_KIND),
    **dict.fromkeys(PIPELINE_ATTRIBUTES, _PIPELINE_KIND),
}


@dataclass
class SpanUsage:
    """What a span says about its LLM call, whichever instrumentation wrote it."""

    usage: dict[str, int]
    """genai-prices usage keys → token counts (valid ones only)."""
    model: str
    provider: str
    problem: str
    """Why the usage cannot be priced ("" when it can): the first invalid token count found."""
    pipeline_attributes: bool
    """The span carries attributes under the pipeline's own cost names (they are replaced)."""
    reported_cost: AnyValue | None
    """``gen_ai.usage.cost`` as the span carried it, unless a pipeline wrote it (it has a status too)."""


def read_usage(attributes: object, max_tokens: int) -> SpanUsage | None:
    """The usage a span's attributes carry, or None for a span that is no LLM call (no usage, no cost).
    ``max_tokens``: larger counts are refused as absurd (``too_many_tokens``)."""
    usage: dict[str, int] | None = None
    ranks: dict[str, int] = {}
    problem = ""
    model, model_rank = "", 99
    provider, provider_rank = "", 99
    pipeline = False
    cost: AnyValue | None = None
    has_status = False
    kind_of = _KIND
    for kv in attributes:  # type: ignore[attr-defined]
        name = kv.key
        kind = kind_of.get(name)
        if kind is None:
            continue
        if kind == _USAGE_KIND:
            key, rank = _USAGE[name]
            count, why = token_count(kv.value, max_tokens)
            if why:
                problem = problem or f"{why}:{name}"
                continue
            if usage is None:
                usage = {}
            if rank < ranks.get(key, 99):
                usage[key], ranks[key] = count, rank
        elif kind == _MODEL_KIND:
            rank = _MODEL[name]
            text = kv.value.string_value
            if text and rank < model_rank:
                model, model_rank = text, rank
        elif kind == _PROVIDER_KIND:
            rank = _PROVIDER[name]
            text = kv.value.string_value
            if text and rank < provider_rank:
                provider, provider_rank = text, rank
        else:
            pipeline = True
            if name == ATTR_COST:
                cost = kv.value
            elif name == ATTR_COST_STATUS:
                has_status = True
    if usage is None and not problem and cost is None:
        return None
    return SpanUsage(
        usage=usage or {},
        model=model,
        provider=provider,
        problem=problem,
        pipeline_attributes=pipeline,
        reported_cost=None if has_status else cost,
    )


def token_count(value: AnyValue, max_tokens: int) -> tuple[int, str]:
    """(count, "") for a valid token count, else (0, reason): negative, non-finite, fractional, too large
    or not a number. Integer-valued doubles and decimal strings are accepted (instrumentations differ)."""
    kind = value.WhichOneof("value")
    if kind == "int_value":
        n = value.int_value
    elif kind == "double_value":
        d = value.double_value
        if not math.isfinite(d):
            return 0, "non_finite_tokens"
        if not d.is_integer():
            return 0, "fractional_tokens"
        if d > max_tokens:
            return 0, "too_many_tokens"
        n = int(d)
    elif kind == "string_value" and _DECIMAL.fullmatch(value.string_value):
        n = int(value.string_value)
    else:
        return 0, "non_numeric_tokens"
    if n < 0:
        return 0, "negative_tokens"
    if n > max_tokens:
        return 0, "too_many_tokens"
    return n, ""
