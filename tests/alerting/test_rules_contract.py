"""Every alert carries what an on-call engineer needs, has a runbook, and is unit-tested both ways."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from processors.telemetry import METRICS
from tests.alerting.rules import (
    ALERTMANAGER_YML,
    PROM_TESTS_DIR,
    RUNBOOK_BASE,
    RUNBOOKS_DIR,
    SEVERITIES,
    Rule,
    alert_names,
    alerting_rules,
    all_rules,
    promtool_alert_cases,
    rule_files,
)
from tests.dashboards import model

ALERTS = alerting_rules()
RUNBOOK_SECTIONS = ("## What it means", "## How to confirm", "## What to do", "## When to silence")


def _id(rule: Rule) -> str:
    return f"{rule.file}:{rule.alert}:{rule.body.get('labels', {}).get('long_window', '')}"


def test_the_rules_define_the_alerts_the_issue_lists() -> None:
    wanted = {
        "AvailabilityBudgetBurn", "LatencyBudgetBurn", "HighErrorRate", "HighLatencyP95", "HighTTFTP95",
        "UpstreamRateLimited", "CostBudgetBurn", "CostAnomaly", "CacheHitRateLow", "UnpricedModelSeen",
        "PIIRedactionSpike", "SidecarDown", "SidecarSilent", "SidecarFailingClosed", "CollectorDown",
        "CollectorRefusingData", "CollectorExportFailing", "CollectorDroppingData",
        "CollectorQueueNearlyFull", "GPUMemoryHigh", "GPUTemperatureHigh", "HostDiskFilling",
        "SidecarQuarantineFailing", "SidecarQuarantinedData",
    }  # fmt: skip
    assert wanted <= alert_names(), sorted(wanted - alert_names())


@pytest.mark.parametrize("rule", ALERTS, ids=_id)
def test_every_alert_has_severity_summary_description_with_value_and_runbook(rule: Rule) -> None:
    labels = rule.body.get("labels") or {}
    annotations = rule.body.get("annotations") or {}
    assert labels.get("severity") in SEVERITIES, f"{rule.alert}: severity must be one of {SEVERITIES}"
    assert labels.get("service"), f"{rule.alert}: a service label (Alertmanager groups by alertname, service)"
    assert str(annotations.get("summary", "")).strip(), f"{rule.alert}: summary is missing"
    description = str(annotations.get("description", ""))
    assert "$value" in description, f"{rule.alert}: the description must show the value ({{{{ $value }}}})"
    assert annotations.get("runbook_url") == f"{RUNBOOK_BASE}{rule.alert}.md"


@pytest.mark.parametrize("name", sorted(alert_names()))
def test_every_alert_has_a_runbook_with_the_four_sections(name: str) -> None:
    path = RUNBOOKS_DIR / f"{name}.md"
    assert path.exists(), f"{path} is missing"
    text = path.read_text()
    for section in RUNBOOK_SECTIONS:
        assert section in text, f"{path.name}: section {section!r} is missing"
    assert "```promql" in text, f"{path.name}: say which query confirms it"


def test_no_runbook_without_an_alert() -> None:
    orphans = {p.stem for p in RUNBOOKS_DIR.glob("*.md")} - alert_names() - {"README"}
    assert not orphans, f"runbooks for alerts that do not exist: {sorted(orphans)}"


@pytest.mark.parametrize("name", sorted(alert_names()))
def test_every_alert_has_a_promtool_case_that_fires_and_one_that_stays_quiet(name: str) -> None:
    cases = [fires for _, alert, fires in promtool_alert_cases() if alert == name]
    assert True in cases, f"no promtool test in {PROM_TESTS_DIR} where {name} fires"
    assert False in cases, f"no promtool test in {PROM_TESTS_DIR} where {name} stays quiet"


def test_every_rule_file_has_a_promtool_test_file() -> None:
    for path in rule_files():
        tests = [t for t in PROM_TESTS_DIR.glob("*_test.yml") if f"../rules/{path.name}" in t.read_text()]
        assert tests, f"no promtool test loads {path.name}"


def test_rule_files_are_plain_prometheus_rule_files() -> None:
    """Only the keys Prometheus (and the Prometheus Operator's PrometheusRule spec) know."""
    for path in rule_files():
        doc = yaml.safe_load(path.read_text())
        assert set(doc) == {"groups"}, path.name
        for group in doc["groups"]:
            assert set(group) <= {"name", "interval", "rules", "limit"}, (path.name, group["name"])
    for rule in all_rules():
        assert set(rule.body) <= {
            "record",
            "alert",
            "expr",
            "for",
            "labels",
            "annotations",
            "keep_firing_for",
        }
        assert ("record" in rule.body) != ("alert" in rule.body)


def test_recording_rule_names_follow_level_metric_operations() -> None:
    for rule in all_rules():
        if "record" in rule.body:
            assert re.fullmatch(r"[a-z]+:[a-z0-9_]+:[a-z0-9_]+", rule.body["record"]), rule.body["record"]


def test_the_collector_down_inhibition_names_only_alerts_that_exist() -> None:
    config = yaml.safe_load(ALERTMANAGER_YML.read_text())
    names = alert_names()
    for inhibit in config["inhibit_rules"]:
        for matcher in inhibit.get("target_matchers", []) + inhibit.get("source_matchers", []):
            m = re.fullmatch(r'alertname(=~|=)"(.*)"', matcher)
            if not m:
                continue
            for alternative in _top_level_alternatives(m.group(2)):
                assert any(re.fullmatch(alternative, n) for n in names), f"{alternative!r} matches no alert"


def _top_level_alternatives(pattern: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(pattern):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "|" and depth == 0:
            parts.append(pattern[start:i])
            start = i + 1
    return [*parts, pattern[start:]]


# How the sidecar's OTel metric names reach Prometheus (the Collector's prometheus exporter): dots become
# underscores, the unit adds a suffix (annotations like {item} add none), counters end in _total and
# histograms in _bucket/_sum/_count. An unknown unit fails here: add how it is spelled.
_UNIT_SUFFIX = {"s": "_seconds", "USD": "_USD"}


def test_every_sidecar_metric_a_rule_or_dashboard_reads_is_one_the_sidecar_emits() -> None:
    """A rule over a name nothing emits can never fire (as sidecar_items_dropped_total could not)."""
    emitted = {
        name.replace(".", "_") + ("" if unit.startswith("{") else _UNIT_SUFFIX[unit])
        for name, (unit, _, _) in METRICS.items()
    }
    sources = {path.name: path.read_text() for path in rule_files()}
    sources |= {f"dashboard {uid}": json.dumps(d) for uid, d in model.dashboards().items()}
    unknown = sorted(
        f"{where}: {name}"
        for where, text in sources.items()
        for name in set(re.findall(r"(?<![\w:.])sidecar_[A-Za-z0-9_]+", text))
        if re.sub(r"_(total|bucket|sum|count)$", "", name) not in emitted
    )
    assert len(emitted) == len(METRICS)
    assert not unknown, f"metrics the sidecar does not emit (processors/telemetry.py): {unknown}"
