"""Config parsing: zero-config default, env overrides, and errors that name the field."""

from __future__ import annotations

import subprocess
import sys

import pytest

from app.config import ConfigError, load_config, parse_config
from tests.app.conftest import REPO


def test_zero_config_is_the_simulated_catch_all() -> None:
    config = parse_config(None, {})
    assert list(config.providers) == ["simulated"]
    assert config.providers["simulated"].type == "simulated"
    assert [(r.model, r.provider) for r in config.routes] == [("*", "simulated")]
    assert config.tenants == ()


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"providers": {"sim": {"type": "simulated", "ttft_ms": -1}}}, "providers.sim.ttft_ms"),
        (
            {"providers": {"sim": {"type": "simulated", "error_rate_500": 1.5}}},
            "providers.sim.error_rate_500",
        ),
        ({"providers": {"sim": {"type": "simulated", "bogus": 1}}}, "providers.sim.bogus"),
        ({"providers": {"sim": {"type": "magic"}}}, "providers.sim.type"),
        (
            {"providers": {"up": {"type": "openai-compatible", "base_url": "ftp://x"}}},
            "providers.up.base_url",
        ),
        ({"providers": {"up": {"type": "openai-compatible"}}}, "providers.up.base_url"),
        ({"routes": [{"model": "a", "provider": "nope"}]}, "routes[0].provider"),
        ({"routes": [{"model": "a", "provider": "simulated"}], "aliases": {"fast": "b"}}, "aliases.fast"),
        ({"tenants": [{"name": "t", "keys": "k"}]}, "tenants[0].keys"),
        ({"tenants": [{"name": "a", "keys": ["k"]}, {"name": "b", "keys": ["k"]}]}, "tenants.b.keys"),
        (
            {"providers": {"s": {"type": "simulated", "error_rate_429": 0.6, "error_rate_500": 0.6}}},
            "providers.s.error_rate_*",
        ),
        ({"unknown_top": 1}, "unknown_top"),
    ],
)
def test_invalid_config_names_the_field(raw: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(raw, {})
    assert info.value.field == field
    assert str(info.value).startswith(field)


def test_env_adds_keys_and_simulated_settings() -> None:
    env = {
        "GATEWAY_API_KEYS": "k1:team-a,k2:team-b,k3:team-a",
        "SIMULATED_ERROR_RATE": "0.1",
        "SIMULATED_TTFT_MS": "120",
        "SIMULATED_SEED": "9",
    }
    config = parse_config(None, env)
    assert {t.name: t.keys for t in config.tenants} == {"team-a": ("k1", "k3"), "team-b": ("k2",)}
    sim = config.providers["simulated"].simulated
    assert sim.ttft_ms == 120 and sim.seed == 9
    assert (
        sim.error_rate_429 + sim.error_rate_500 + sim.error_rate_timeout + sim.error_rate_disconnect
        == pytest.approx(0.1)
    )


def test_env_values_are_validated() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(None, {"SIMULATED_TTFT_MS": "fast"})
    assert info.value.field == "SIMULATED_TTFT_MS"
    with pytest.raises(ConfigError) as info:
        parse_config(None, {"GATEWAY_API_KEYS": "no-tenant"})
    assert info.value.field == "GATEWAY_API_KEYS[0]"


def test_api_key_env_must_exist() -> None:
    raw = {
        "providers": {
            "up": {
                "type": "openai-compatible",
                "base_url": "http://127.0.0.1:1/v1",
                "api_key_env": "UPSTREAM_KEY",
            }
        }
    }
    with pytest.raises(ConfigError) as info:
        parse_config(raw, {})
    assert info.value.field == "providers.up.api_key_env"
    assert parse_config(raw, {"UPSTREAM_KEY": "s3cret"}).providers["up"].api_key == "s3cret"


def test_demo_config_file_loads() -> None:
    config = load_config(REPO / "app" / "demo-config.yaml", {})
    assert [t.name for t in config.tenants] == ["team-a", "team-b", "team-c"]
    assert config.aliases["fast"] == "gpt-4o-mini"


def test_unreadable_or_invalid_file(tmp_path: object) -> None:
    from pathlib import Path

    bad = Path(str(tmp_path)) / "bad.yaml"
    bad.write_text("providers: [unclosed\n")
    with pytest.raises(ConfigError) as info:
        load_config(bad, {})
    assert info.value.field == "--config"


@pytest.mark.e2e
def test_cli_exits_non_zero_naming_the_field(tmp_path: object) -> None:
    from pathlib import Path

    cfg = Path(str(tmp_path)) / "gw.yaml"
    cfg.write_text("providers:\n  sim:\n    type: simulated\n    tokens_per_second: -5\n")
    proc = subprocess.run(
        [sys.executable, "-m", "app", "--port", "1", "--config", str(cfg)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "providers.sim.tokens_per_second" in proc.stderr
