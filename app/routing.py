"""Model → provider routing: aliases first, then exact routes, then the "*" catch-all route."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from app.config import GatewayConfig
from app.providers.base import Provider

RESOLVED_CACHE_SIZE = 1024


@dataclass(frozen=True)
class Route:
    requested_model: str
    upstream_model: str
    provider: Provider


class UnknownModel(LookupError):
    pass


class Router:
    def __init__(self, config: GatewayConfig, providers: Mapping[str, Provider]) -> None:
        self._aliases = dict(config.aliases)
        self._exact = {r.model: r for r in config.routes if r.model != "*"}
        self._fallback = next((r for r in config.routes if r.model == "*"), None)
        self._providers = providers
        self._resolved: dict[str, Route] = {}  # the same few models on every request
        self._catalogue = list(
            dict.fromkeys([*self._exact, *self._aliases, *(config.models if self._fallback else ())])
        )

    def resolve(self, model: str) -> Route:
        resolved = self._resolved.get(model)
        if resolved is not None:
            return resolved
        target = self._aliases.get(model, model)
        route = self._exact.get(target) or self._fallback
        if route is None:
            raise UnknownModel(model)
        resolved = Route(
            requested_model=model,
            upstream_model=route.upstream_model or target,
            provider=self._providers[route.provider],
        )
        if len(self._resolved) < RESOLVED_CACHE_SIZE:  # model names come from clients: bounded
            self._resolved[model] = resolved
        return resolved

    def listed_models(self) -> list[tuple[str, str]]:
        """(model id, owner) pairs for GET /v1/models."""
        out = []
        for model in self._catalogue:
            try:
                route = self.resolve(model)
            except UnknownModel:  # pragma: no cover - catalogue entries always resolve
                continue
            out.append((model, route.provider.provider_name_for(route.upstream_model)))
        return out
