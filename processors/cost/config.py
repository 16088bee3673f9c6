"""Declarative config of the cost processor (the ``cost:`` section of the sidecar config)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from processors.config_loader import ConfigError

# Semantic-convention provider names (gen_ai.provider.name, deprecated gen_ai.system) → genai-prices
# provider ids. Names not listed here are passed to genai-prices as they are (it matches its own aliases).
DEFAULT_PROVIDER_MAP: dict[str, str] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "gemini": "google",
    "vertex_ai": "google",
    "aws.bedrock": "aws",
    "azure.ai.openai": "azure",
    "az.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "az.ai.inference": "azure",
    "cohere": "cohere",
    "mistral_ai": "mistral",
    "x_ai": "x-ai",
    "xai": "x-ai",
    "deepseek": "deepseek",
    "groq": "groq",
    "perplexity": "perplexity",
}


@dataclass
class ModelPriceOverride:
    """Price of a custom or self-hosted model, in USD per million tokens. Overrides win over genai-prices."""

    model: str
    """Model name as it appears in gen_ai.response.model / gen_ai.request.model (case-insensitive)."""
    provider: str | None = None
    """Restrict the override to this provider (semconv name or price-table id); null = any provider."""
    aliases: list[str] = field(default_factory=list)
    """Other model names that share this price."""
    input_per_mtok: float = 0.0
    """USD per million uncached input tokens."""
    output_per_mtok: float = 0.0
    """USD per million output tokens (reasoning tokens included)."""
    cache_read_per_mtok: float | None = None
    """USD per million cache-read input tokens; null = charged at the input price."""
    cache_write_per_mtok: float | None = None
    """USD per million cache-write input tokens; null = charged at the input price."""

    def validate(self, path: str) -> None:
        if not self.model.strip():
            raise ConfigError(f"{path}.model", "must not be empty")
        for name in ("input_per_mtok", "output_per_mtok", "cache_read_per_mtok", "cache_write_per_mtok"):
            value = getattr(self, name)
            if value is not None and (not math.isfinite(value) or value < 0):
                raise ConfigError(f"{path}.{name}", f"must be a finite number >= 0, got {value!r}")


@dataclass
class CostConfig:
    """Token cost enrichment of GenAI spans."""

    enabled: bool = True
    """Add gen_ai.usage.cost and gen_ai.cost.* to spans that carry token usage."""
    overrides: list[ModelPriceOverride] = field(default_factory=list)
    """Inline price overrides for custom or self-hosted models."""
    overrides_file: str | None = None
    """YAML file holding a list of overrides (same shape as ``overrides``); merged after the inline ones."""
    provider_map: dict[str, str] = field(default_factory=dict)
    """Extra semconv-provider → price-table-provider entries; they extend and win over the built-in map."""
    price_cache_ttl_seconds: float = 3600.0
    """How long a resolved (provider, model) price stays cached; time-conditional prices refresh after it."""
    max_tokens_per_span: int = 100_000_000
    """A token count above this is absurd (the largest context windows are ~10M tokens): the span is
    ``unpriced`` with reason ``too_many_tokens`` instead of poisoning the cost counter."""

    def validate(self, path: str) -> None:
        if isinstance(self.max_tokens_per_span, bool) or not 1 <= self.max_tokens_per_span <= 10**15:
            raise ConfigError(
                f"{path}.max_tokens_per_span",
                f"must be an integer in 1..10^15, got {self.max_tokens_per_span!r}",
            )
        if not math.isfinite(self.price_cache_ttl_seconds) or self.price_cache_ttl_seconds <= 0:
            raise ConfigError(f"{path}.price_cache_ttl_seconds", "must be a positive number")
        for key, value in self.provider_map.items():
            if not value.strip():
                raise ConfigError(f"{path}.provider_map.{key}", "must name a provider")

    def effective_provider_map(self) -> dict[str, str]:
        merged = dict(DEFAULT_PROVIDER_MAP)
        merged.update({k.lower(): v.lower() for k, v in self.provider_map.items()})
        return merged
