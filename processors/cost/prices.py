"""Cached price lookup over genai-prices' bundled data plus configured overrides.

genai-prices resolves a model in ~50 µs per call. We resolve each (provider, model) once into a
``ResolvedPrice`` — the priced units, their per-unit price and the leaf decomposition genai-prices applies
(input tokens include cached tokens, so the uncached remainder is input - cache_read - cache_write) — and
evaluate it with float arithmetic afterwards. The result equals ``calc_price(...).total_price`` up to float
rounding (well below 1e-12 USD for real usage).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import NamedTuple

import genai_prices
from genai_prices import data_snapshot
from genai_prices import types as gp_types
from genai_prices.units import _get_registry

from processors.cost.config import CostConfig, ModelPriceOverride

PRICE_DATA_VERSION = f"genai-prices-{genai_prices.__version__}"

# Usage keys the cost processor reads from spans (genai-prices names).
USAGE_KEYS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "output_reasoning_tokens",
)


@dataclass(frozen=True)
class PricedUnit:
    usage_key: str
    per: float
    base_price: float
    # (threshold on total input tokens, price) highest first; empty for flat prices
    tiers: tuple[tuple[int, float], ...]
    descendants: tuple[str, ...]
    direction: str | None
    token_type: str | None


class Cost(NamedTuple):
    total: float
    input: float
    output: float
    cache_read: float
    cache_write: float


@dataclass(frozen=True)
class ResolvedPrice:
    provider_id: str
    model_id: str
    units: tuple[PricedUnit, ...]
    source: str

    def cost(self, usage: Mapping[str, int]) -> Cost | None:
        """Cost of ``usage`` in USD, or None when the usage is inconsistent (e.g. cached > input tokens)."""
        compiled = self.__dict__.get("_compiled") or self._compile()
        return compiled(usage)

    def _compile(self) -> Callable[[Mapping[str, int]], Cost | None]:
        """The plan as one straight-line function: the per-span cost runs on every GenAI span, and a generic
        loop over units, tiers and descendants costs more than the arithmetic. Same float operations in the
        same order as the plan describes, so the result is bit-identical to evaluating it generically."""
        lines = [
            "def cost(usage):",
            "    get = usage.get",
            "    total_input = get('input_tokens', 0)",
            "    total = inp = out = cache_read = cache_write = 0.0",
        ]
        for i, (key, per, price, tiers, descendants, slot) in enumerate(self._build_plan()):
            count = "1" if key == "requests" else f"get({key!r}, 0)"
            minus = "".join(f" - n{d}" for d in descendants)
            price_expr = repr(price)
            for start, tier_price in reversed(tiers):  # the first tier whose threshold is passed wins
                price_expr = f"({tier_price!r} if total_input > {start!r} else {price_expr})"
            lines += [f"    n{i} = {count}{minus}", f"    if n{i} < 0:", "        return None"]
            lines.append(f"    if n{i}:")
            lines += [f"        value = {price_expr} * n{i} / {per!r}", "        total += value"]
            if slot & 1:
                lines.append("        inp += value")
            elif slot & 2:
                lines.append("        out += value")
            if slot & 4:
                lines.append("        cache_read += value")
            elif slot & 8:
                lines.append("        cache_write += value")
        lines.append("    return Cost(total, inp, out, cache_read, cache_write)")
        namespace: dict[str, object] = {"Cost": Cost}
        exec(compile("\n".join(lines), f"<price plan {self.provider_id}/{self.model_id}>", "exec"), namespace)
        compiled = namespace["cost"]
        object.__setattr__(self, "_compiled", compiled)
        return compiled  # type: ignore[return-value]

    def _build_plan(
        self,
    ) -> tuple[tuple[str, float, float, tuple[tuple[int, float], ...], tuple[int, ...], int], ...]:
        # Units nobody reports and that have no reported descendants always count 0: leave them out.
        kept = [
            u for u in self.units if u.usage_key in USAGE_KEYS or u.usage_key == "requests" or u.descendants
        ]
        index = {u.usage_key: i for i, u in enumerate(kept)}
        plan = tuple(
            (
                u.usage_key,
                u.per,
                u.base_price,
                u.tiers,
                tuple(index[d] for d in u.descendants if d in index),
                {"input": 1, "output": 2}.get(u.direction or "", 0)
                | {"cache_read": 4, "cache_write": 8}.get(u.token_type or "", 0),
            )
            for u in kept
        )
        object.__setattr__(self, "_plan", plan)
        return plan


def _resolve_units(model_price: gp_types.ModelPrice) -> tuple[PricedUnit, ...]:
    registry = _get_registry()
    priced = []
    for unit in registry.units.values():
        price = getattr(model_price, unit.price_key, None)
        if price is not None:
            priced.append((unit, price))
    # genai-prices computes leaves from the most specific unit to the least specific one
    priced.sort(key=lambda up: (-len(up[0].dimensions), up[0].usage_key))
    out = []
    for unit, price in priced:
        descendants = tuple(
            other.usage_key
            for other, _ in priced
            if other is not unit and unit.dimensions.items() <= other.dimensions.items()
        )
        if isinstance(price, gp_types.TieredPrices):
            base = float(price.base)
            tiers = tuple((t.start, float(t.price)) for t in reversed(price.tiers))
        else:
            base, tiers = float(price), ()
        out.append(
            PricedUnit(
                usage_key=unit.usage_key,
                per=float(unit.per),
                base_price=base,
                tiers=tiers,
                descendants=descendants,
                direction=unit.dimensions.get("direction"),
                token_type=unit.dimensions.get("token_type"),
            )
        )
    return tuple(out)


def _override_price(o: ModelPriceOverride) -> ResolvedPrice:
    def dec(v: float | None) -> Decimal | None:
        return None if v is None else Decimal(repr(v))

    model_price = gp_types.ModelPrice(
        input_mtok=dec(o.input_per_mtok),
        output_mtok=dec(o.output_per_mtok),
        cache_read_mtok=dec(o.cache_read_per_mtok),
        cache_write_mtok=dec(o.cache_write_per_mtok),
    )
    return ResolvedPrice(
        provider_id=(o.provider or "override").lower(),
        model_id=o.model,
        units=_resolve_units(model_price),
        source="override",
    )


class PriceBook:
    """(provider, model) → ResolvedPrice: overrides first, then a TTL-bounded cache of genai-prices hits."""

    def __init__(self, config: CostConfig, overrides: list[ModelPriceOverride]) -> None:
        self._provider_map = config.effective_provider_map()
        self._ttl = config.price_cache_ttl_seconds
        self._cache: dict[tuple[str, str], tuple[float, ResolvedPrice | None]] = {}
        self._overrides: dict[tuple[str | None, str], ResolvedPrice] = {}
        for o in overrides:
            resolved = _override_price(o)
            provider = self.provider_id(o.provider) if o.provider else None
            for name in (o.model, *o.aliases):
                self._overrides[(provider, name.lower())] = resolved
        self.version = PRICE_DATA_VERSION + ("+overrides" if overrides else "")

    def provider_id(self, semconv_name: str) -> str:
        name = semconv_name.lower()
        return self._provider_map.get(name, name)

    def lookup(self, provider: str, model: str, now: float | None = None) -> ResolvedPrice | None:
        """Price for (semconv provider name or "", model); None when no override nor genai-prices knows it.

        ``now`` (time.monotonic()) lets a caller pricing a whole batch read the clock once.
        """
        key = (provider, model)
        hit = self._cache.get(key)
        if now is None:
            now = time.monotonic()
        if hit is not None and hit[0] > now:
            return hit[1]
        resolved = self._resolve(provider, model)
        if len(self._cache) > 10_000:  # model names come from telemetry: keep the cache bounded
            self._cache.clear()
        self._cache[key] = (now + self._ttl, resolved)
        return resolved

    def _resolve(self, provider: str, model: str) -> ResolvedPrice | None:
        provider_id = self.provider_id(provider) if provider else None
        lowered = model.lower()
        override = self._overrides.get((provider_id, lowered)) or self._overrides.get((None, lowered))
        if override is not None:
            return override
        try:
            found_provider, info = data_snapshot.get_snapshot().find_provider_model(
                model, None, provider_id, None
            )
        except LookupError:
            return None
        model_price = info.get_prices(datetime.now(tz=UTC))
        return ResolvedPrice(
            provider_id=found_provider.id,
            model_id=info.id,
            units=_resolve_units(model_price),
            source="genai-prices",
        )
