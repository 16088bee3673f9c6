"""Gateway configuration: a YAML/JSON file plus environment overrides, validated into frozen dataclasses.

Every validation failure raises ConfigError naming the offending field (e.g. ``providers.sim.ttft_ms``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

MAX_TENANTS = 100
DEFAULT_SIMULATED_MODELS = (
    "gpt-4o-mini",
    "gpt-4o",
    "gpt-4.1-mini",
    "claude-3-5-haiku-latest",
    "claude-3-5-sonnet-latest",
)


class ConfigError(ValueError):
    """A configuration value is missing or invalid; ``field`` names it."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


@dataclass(frozen=True)
class SimulatedSettings:
    seed: int = 42
    ttft_ms: float = 0.0
    tokens_per_second: float = 0.0  # 0 = emit all tokens at once
    min_output_tokens: int = 8
    max_output_tokens: int = 64
    cache_hit_rate: float = 0.0  # share of requests whose prompt is partly served from cache
    cached_input_share: float = 0.5  # share of input tokens that are cached on a hit
    error_rate_429: float = 0.0
    error_rate_500: float = 0.0
    error_rate_timeout: float = 0.0
    error_rate_disconnect: float = 0.0
    timeout_after_s: float = 1.0
    retry_after_ms: int = 1000
    allow_fault_header: bool = True  # honour the X-Simulated-Fault request header


@dataclass(frozen=True)
class ProviderConfig:
    id: str
    type: str  # "simulated" | "openai-compatible"
    provider_name: str | None = None  # gen_ai.provider.name override
    # openai-compatible
    base_url: str = ""
    api_key: str | None = None
    timeout_s: float = 60.0
    connect_timeout_s: float = 5.0
    max_retries: int = 2
    backoff_base_s: float = 0.25
    backoff_max_s: float = 8.0
    # simulated
    simulated: SimulatedSettings = field(default_factory=SimulatedSettings)


@dataclass(frozen=True)
class RouteConfig:
    model: str  # exact model name or "*" (any)
    provider: str
    upstream_model: str | None = None  # None = same as requested


@dataclass(frozen=True)
class TenantConfig:
    name: str
    keys: tuple[str, ...]


@dataclass(frozen=True)
class GatewayConfig:
    providers: Mapping[str, ProviderConfig]
    routes: tuple[RouteConfig, ...]
    aliases: Mapping[str, str] = field(default_factory=dict)
    tenants: tuple[TenantConfig, ...] = ()
    models: tuple[str, ...] = DEFAULT_SIMULATED_MODELS  # advertised by /v1/models for "*" routes
    user_hash_salt: str = "llm-otel-pipeline"
    max_request_bytes: int = 1_000_000


def _expect(value: Any, kind: type | tuple[type, ...], name: str) -> Any:
    if isinstance(value, bool) and kind in (int, float, (int, float)):
        raise ConfigError(name, f"expected a number, got {value!r}")
    if not isinstance(value, kind):
        want = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ConfigError(name, f"expected {want}, got {type(value).__name__} {value!r}")
    return value


def _rate(value: Any, name: str) -> float:
    v = float(_expect(value, (int, float), name))
    if not 0.0 <= v <= 1.0:
        raise ConfigError(name, f"must be between 0 and 1, got {v}")
    return v


def _non_negative(value: Any, name: str) -> float:
    v = float(_expect(value, (int, float), name))
    if v < 0:
        raise ConfigError(name, f"must be >= 0, got {v}")
    return v


def _non_negative_int(value: Any, name: str) -> int:
    return int(_non_negative(_expect(value, int, name), name))


def _check_keys(raw: Mapping[str, Any], allowed: set[str], prefix: str) -> None:
    for key in raw:
        if key not in allowed:
            raise ConfigError(f"{prefix}.{key}" if prefix else str(key), "unknown field")


_SIM_RATES = {
    "cache_hit_rate",
    "cached_input_share",
    "error_rate_429",
    "error_rate_500",
    "error_rate_timeout",
    "error_rate_disconnect",
}
_SIM_FLOATS = {"ttft_ms", "tokens_per_second", "timeout_after_s"}
_SIM_INTS = {"seed", "min_output_tokens", "max_output_tokens", "retry_after_ms"}


def parse_simulated(
    raw: Mapping[str, Any], prefix: str, base: SimulatedSettings | None = None
) -> SimulatedSettings:
    values: dict[str, Any] = dict(vars(base or SimulatedSettings()))
    _check_keys(raw, set(values), prefix)
    for key, val in raw.items():
        name = f"{prefix}.{key}"
        if key in _SIM_RATES:
            values[key] = _rate(val, name)
        elif key in _SIM_FLOATS:
            values[key] = _non_negative(val, name)
        elif key in _SIM_INTS:
            values[key] = _non_negative_int(val, name)
        elif key == "allow_fault_header":
            values[key] = bool(_expect(val, bool, name))
    if values["min_output_tokens"] > values["max_output_tokens"]:
        raise ConfigError(f"{prefix}.min_output_tokens", "must be <= max_output_tokens")
    if values["max_output_tokens"] < 1:
        raise ConfigError(f"{prefix}.max_output_tokens", "must be >= 1")
    total = sum(
        values[k] for k in ("error_rate_429", "error_rate_500", "error_rate_timeout", "error_rate_disconnect")
    )
    if total > 1.0 + 1e-9:
        raise ConfigError(f"{prefix}.error_rate_*", f"error rates add up to {total:.3f} > 1")
    return SimulatedSettings(**values)


_PROVIDER_FIELDS = {
    "type",
    "provider_name",
    "base_url",
    "api_key",
    "api_key_env",
    "timeout_s",
    "connect_timeout_s",
    "max_retries",
    "backoff_base_s",
    "backoff_max_s",
}


def _parse_provider(pid: str, raw: Any, env: Mapping[str, str]) -> ProviderConfig:
    prefix = f"providers.{pid}"
    raw = _expect(raw, dict, prefix)
    ptype = raw.get("type")
    if ptype not in ("simulated", "openai-compatible"):
        raise ConfigError(f"{prefix}.type", f"must be 'simulated' or 'openai-compatible', got {ptype!r}")
    provider_name = raw.get("provider_name")
    if provider_name is not None:
        _expect(provider_name, str, f"{prefix}.provider_name")
    if ptype == "simulated":
        sim_raw = {k: v for k, v in raw.items() if k not in ("type", "provider_name")}
        return ProviderConfig(
            id=pid,
            type=ptype,
            provider_name=provider_name,
            simulated=parse_simulated(sim_raw, prefix, simulated_from_env(env)),
        )
    _check_keys(raw, _PROVIDER_FIELDS, prefix)
    base_url = _expect(raw.get("base_url"), str, f"{prefix}.base_url")
    if not base_url.startswith(("http://", "https://")):
        raise ConfigError(f"{prefix}.base_url", f"must start with http:// or https://, got {base_url!r}")
    api_key = raw.get("api_key")
    if api_key is not None:
        _expect(api_key, str, f"{prefix}.api_key")
    if "api_key_env" in raw:
        env_name = _expect(raw["api_key_env"], str, f"{prefix}.api_key_env")
        if env_name not in env:
            raise ConfigError(f"{prefix}.api_key_env", f"environment variable {env_name} is not set")
        api_key = env[env_name]
    max_retries = _non_negative_int(raw.get("max_retries", 2), f"{prefix}.max_retries")
    return ProviderConfig(
        id=pid,
        type=ptype,
        provider_name=provider_name,
        base_url=base_url.rstrip("/"),
        api_key=api_key,
        timeout_s=_non_negative(raw.get("timeout_s", 60.0), f"{prefix}.timeout_s"),
        connect_timeout_s=_non_negative(raw.get("connect_timeout_s", 5.0), f"{prefix}.connect_timeout_s"),
        max_retries=max_retries,
        backoff_base_s=_non_negative(raw.get("backoff_base_s", 0.25), f"{prefix}.backoff_base_s"),
        backoff_max_s=_non_negative(raw.get("backoff_max_s", 8.0), f"{prefix}.backoff_max_s"),
    )


def simulated_from_env(env: Mapping[str, str]) -> SimulatedSettings:
    """SIMULATED_<FIELD> env vars (e.g. SIMULATED_ERROR_RATE_500=0.02) override simulated defaults.

    SIMULATED_ERROR_RATE is a shorthand that spreads one rate over 429/500/timeout/disconnect (4:4:1:1).
    """
    raw: dict[str, Any] = {}
    defaults = vars(SimulatedSettings())
    if "SIMULATED_ERROR_RATE" in env:
        total = _rate(_num(env["SIMULATED_ERROR_RATE"], "SIMULATED_ERROR_RATE"), "SIMULATED_ERROR_RATE")
        raw.update(
            error_rate_429=total * 0.4,
            error_rate_500=total * 0.4,
            error_rate_timeout=total * 0.1,
            error_rate_disconnect=total * 0.1,
        )
    for key, default in defaults.items():
        name = f"SIMULATED_{key.upper()}"
        if name not in env:
            continue
        text = env[name]
        if isinstance(default, bool):
            raw[key] = text.strip().lower() in ("1", "true", "yes", "on")
        elif isinstance(default, int):
            try:
                raw[key] = int(text)
            except ValueError as exc:
                raise ConfigError(name, f"expected an integer, got {text!r}") from exc
        else:
            raw[key] = _num(text, name)
    return parse_simulated(raw, "SIMULATED")


def _num(text: str, name: str) -> float:
    try:
        return float(text)
    except ValueError as exc:
        raise ConfigError(name, f"expected a number, got {text!r}") from exc


def _parse_tenants(raw: Any, env: Mapping[str, str]) -> tuple[TenantConfig, ...]:
    by_name: dict[str, list[str]] = {}
    if raw is not None:
        for i, item in enumerate(_expect(raw, list, "tenants")):
            item = _expect(item, dict, f"tenants[{i}]")
            _check_keys(item, {"name", "keys"}, f"tenants[{i}]")
            name = _expect(item.get("name"), str, f"tenants[{i}].name")
            keys = _expect(item.get("keys"), list, f"tenants[{i}].keys")
            for j, key in enumerate(keys):
                _expect(key, str, f"tenants[{i}].keys[{j}]")
            by_name.setdefault(name, []).extend(keys)
    # GATEWAY_API_KEYS="key1:tenant-a,key2:tenant-b" adds keys without a config file.
    for j, pair in enumerate(filter(None, (p.strip() for p in env.get("GATEWAY_API_KEYS", "").split(",")))):
        key, sep, tenant = pair.partition(":")
        if not sep or not key or not tenant:
            raise ConfigError(f"GATEWAY_API_KEYS[{j}]", "expected KEY:TENANT")
        by_name.setdefault(tenant, []).append(key)
    if len(by_name) > MAX_TENANTS:
        raise ConfigError("tenants", f"at most {MAX_TENANTS} tenants (it is a metric attribute)")
    seen: set[str] = set()
    for name, keys in by_name.items():
        for key in keys:
            if key in seen:
                raise ConfigError(f"tenants.{name}.keys", "an API key is mapped to more than one tenant")
            seen.add(key)
    return tuple(TenantConfig(name=n, keys=tuple(k)) for n, k in by_name.items())


_TOP_FIELDS = {"providers", "routes", "aliases", "tenants", "models", "user_hash_salt", "max_request_bytes"}


def parse_config(raw: Mapping[str, Any] | None, env: Mapping[str, str] | None = None) -> GatewayConfig:
    env = os.environ if env is None else env
    raw = raw or {}
    _expect(raw, dict, "<root>")
    _check_keys(raw, _TOP_FIELDS, "")
    providers_raw = raw.get("providers") or {"simulated": {"type": "simulated"}}
    providers = {
        str(pid): _parse_provider(str(pid), p, env)
        for pid, p in _expect(providers_raw, dict, "providers").items()
    }
    routes_raw = raw.get("routes")
    if routes_raw is None:
        routes_raw = [{"model": "*", "provider": next(iter(providers))}]
    routes: list[RouteConfig] = []
    for i, r in enumerate(_expect(routes_raw, list, "routes")):
        r = _expect(r, dict, f"routes[{i}]")
        _check_keys(r, {"model", "provider", "upstream_model"}, f"routes[{i}]")
        model = _expect(r.get("model"), str, f"routes[{i}].model")
        provider = _expect(r.get("provider"), str, f"routes[{i}].provider")
        if provider not in providers:
            raise ConfigError(f"routes[{i}].provider", f"unknown provider {provider!r}")
        upstream = r.get("upstream_model")
        if upstream is not None:
            _expect(upstream, str, f"routes[{i}].upstream_model")
        routes.append(RouteConfig(model=model, provider=provider, upstream_model=upstream))
    aliases = {
        str(k): _expect(v, str, f"aliases.{k}")
        for k, v in _expect(raw.get("aliases") or {}, dict, "aliases").items()
    }
    route_models = {r.model for r in routes}
    for alias, target in aliases.items():
        if target not in route_models and "*" not in route_models:
            raise ConfigError(f"aliases.{alias}", f"target model {target!r} has no route")
    models = raw.get("models")
    if models is not None:
        for i, m in enumerate(_expect(models, list, "models")):
            _expect(m, str, f"models[{i}]")
    max_bytes = _non_negative_int(raw.get("max_request_bytes", 1_000_000), "max_request_bytes")
    return GatewayConfig(
        providers=providers,
        routes=tuple(routes),
        aliases=aliases,
        tenants=_parse_tenants(raw.get("tenants"), env),
        models=tuple(models) if models is not None else DEFAULT_SIMULATED_MODELS,
        user_hash_salt=_expect(raw.get("user_hash_salt", "llm-otel-pipeline"), str, "user_hash_salt"),
        max_request_bytes=max_bytes,
    )


def load_config(path: str | Path | None, env: Mapping[str, str] | None = None) -> GatewayConfig:
    """Read the config file (YAML or JSON); no file means the zero-config simulated default."""
    if path is None:
        return parse_config(None, env)
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("--config", f"cannot read {p}: {exc.strerror}") from exc
    try:
        raw = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise ConfigError("--config", f"{p} is not valid YAML/JSON: {exc}") from exc
    return parse_config(raw, env)
