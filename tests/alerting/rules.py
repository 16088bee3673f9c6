"""Read the shipped alerting files: rule files, promtool tests, runbooks, Alertmanager config."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
PROM_DIR = REPO / "compose" / "prometheus"
RULES_DIR = PROM_DIR / "rules"
PROM_TESTS_DIR = PROM_DIR / "tests"
RUNBOOKS_DIR = REPO / "docs" / "runbooks"
ALERTMANAGER_DIR = REPO / "compose" / "alertmanager"
ALERTMANAGER_YML = ALERTMANAGER_DIR / "alertmanager.yml"
RUNBOOK_BASE = "https://github.com/llm-otel-pipeline/llm-otel-pipeline/blob/main/docs/runbooks/"
SEVERITIES = ("page", "ticket", "info")


@dataclass(frozen=True)
class Rule:
    file: str
    group: str
    body: dict[str, Any]

    @property
    def alert(self) -> str | None:
        name = self.body.get("alert")
        return str(name) if name is not None else None


def rule_files() -> list[Path]:
    return sorted(RULES_DIR.glob("*.yml"))


@functools.cache
def all_rules() -> list[Rule]:
    out: list[Rule] = []
    for path in rule_files():
        doc = yaml.safe_load(path.read_text())
        for group in doc["groups"]:
            out.extend(Rule(path.name, group["name"], r) for r in group["rules"])
    return out


def alerting_rules() -> list[Rule]:
    return [r for r in all_rules() if r.alert is not None]


def alert_names() -> set[str]:
    return {r.alert for r in alerting_rules() if r.alert}


@functools.cache
def promtool_alert_cases() -> list[tuple[str, str, bool]]:
    """(test file, alertname, fires?) for every alert_rule_test case of every promtool test file."""
    cases: list[tuple[str, str, bool]] = []
    for path in sorted(PROM_TESTS_DIR.glob("*_test.yml")):
        doc = yaml.safe_load(path.read_text())
        for test in doc.get("tests", []):
            for case in test.get("alert_rule_test", []) or []:
                cases.append((path.name, case["alertname"], bool(case.get("exp_alerts"))))
    return cases
