"""Test-only copies of the shipped alerting config, so the end-to-end test takes minutes, not hours.

Rules: every `for:` longer than `max_for` becomes `max_for`; nothing else changes (a unit test checks it).
Alertmanager: short group timers, the receivers' endpoints and secret files pointed at a sink the test runs.
The shipped files are never modified."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tests.alerting.rules import ALERTMANAGER_DIR, ALERTMANAGER_YML, rule_files

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def seconds(duration: str) -> float:
    """A Prometheus duration (`1h30m`, `4m30s`, `500ms`) in seconds."""
    parts = re.findall(r"(\d+)(ms|[smhdwy])", duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        raise ValueError(f"not a Prometheus duration: {duration!r}")
    return sum(int(n) * _UNITS[u] for n, u in parts)


def render_test_rules(dst: Path, max_for: str = "5s") -> Path:
    """Copies of compose/prometheus/rules/*.yml in dst with every `for:` capped at max_for."""
    dst.mkdir(parents=True, exist_ok=True)
    cap = seconds(max_for)
    for path in rule_files():
        doc = yaml.safe_load(path.read_text())
        for group in doc["groups"]:
            for rule in group["rules"]:
                if "for" in rule and seconds(str(rule["for"])) > cap:
                    rule["for"] = max_for
        (dst / path.name).write_text(yaml.safe_dump(doc, sort_keys=False, width=1000))
    return dst


def render_test_alertmanager(dst: Path, sink: str, group_wait: str = "1s") -> Path:
    """compose/alertmanager/alertmanager.yml with 1 s group timers, the PagerDuty and Slack endpoints and the
    default webhook at `sink` (http://127.0.0.1:port), and secret files written in dst."""
    dst.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = yaml.safe_load(ALERTMANAGER_YML.read_text())
    config["templates"] = [str(ALERTMANAGER_DIR / "templates" / "*.tmpl")]

    def timers(route: dict[str, Any]) -> None:
        for key in ("group_wait", "group_interval"):
            if key in route or route is config["route"]:
                route[key] = group_wait
        for child in route.get("routes", []):
            timers(child)

    timers(config["route"])
    (dst / "pagerduty_routing_key").write_text("e2e-routing-key\n")
    (dst / "slack_api_url").write_text(f"{sink}/slack\n")
    for receiver in config["receivers"]:
        for pd in receiver.get("pagerduty_configs", []):
            pd["routing_key_file"] = str(dst / "pagerduty_routing_key")
            pd["url"] = f"{sink}/pagerduty"
        for slack in receiver.get("slack_configs", []):
            slack["api_url_file"] = str(dst / "slack_api_url")
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = f"{sink}/webhook"
    out = dst / "alertmanager.yml"
    out.write_text(yaml.safe_dump(config, sort_keys=False, width=1000))
    return out
