"""The committed Grafana dashboards as data: their targets by query language, their variables, and the
substitution Grafana does before a query runs. Shared by the static and the end-to-end dashboard tests."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS_DIR = REPO / "compose" / "grafana" / "dashboards"
SOURCE_DIR = REPO / "compose" / "grafana" / "src"
DATASOURCES = REPO / "compose" / "grafana" / "provisioning" / "datasources" / "datasources.yaml"
LOKI_CONFIG = REPO / "compose" / "loki" / "loki.yaml"

# What Grafana puts in for its built-in interval variables when the test runs a query (the stack under
# test is minutes old, so every window covers all of its data).
BUILTINS = {"$__rate_interval": "5m", "$__range": "15m", "$__interval": "15s"}


@dataclass(frozen=True)
class Target:
    dashboard: str
    panel: str
    datasource_type: str
    query: str
    exemplar: bool

    def __str__(self) -> str:
        return f"{self.dashboard} / {self.panel}: {self.query}"


def dashboards() -> dict[str, dict[str, Any]]:
    """uid -> dashboard JSON, for every committed file."""
    out = {}
    for path in sorted(DASHBOARDS_DIR.rglob("*.json")):
        data = json.loads(path.read_text())
        out[data["uid"]] = data
    return out


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # collapsed rows keep theirs inside


def variables(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return list(dashboard.get("templating", {}).get("list", []))


def targets(dashboard: dict[str, Any]) -> Iterator[Target]:
    for panel in panels(dashboard):
        for t in panel.get("targets", []):
            ds_type = (t.get("datasource") or panel.get("datasource") or {}).get("type", "")
            query = t.get("expr") if ds_type in ("prometheus", "loki") else t.get("query")
            if query:
                yield Target(
                    dashboard["uid"], panel.get("title", ""), ds_type, query, bool(t.get("exemplar"))
                )


def all_targets(ds_type: str) -> list[Target]:
    return [t for d in dashboards().values() for t in targets(d) if t.datasource_type == ds_type]


def provisioned_datasources() -> dict[str, dict[str, Any]]:
    return {d["uid"]: d for d in yaml.safe_load(DATASOURCES.read_text())["datasources"]}


def datasource_refs(node: Any) -> Iterator[dict[str, Any]]:
    """Every {"type", "uid"} datasource reference anywhere in a dashboard."""
    if isinstance(node, dict):
        ref = node.get("datasource")
        if isinstance(ref, dict):
            yield ref
        for value in node.values():
            yield from datasource_refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from datasource_refs(value)


def variable_query(var: dict[str, Any]) -> tuple[str, str] | None:
    """(metric selector, label) of a label_values(...) query variable."""
    query = var.get("query")
    if isinstance(query, dict):
        query = query.get("query")
    m = re.fullmatch(r"label_values\((.+),\s*([A-Za-z_][A-Za-z0-9_]*)\)", str(query or ""))
    return (m.group(1), m.group(2)) if m else None


def prom_regex_escape(value: str) -> str:
    """What Grafana does to a variable value used inside =~ "...": regex metacharacters escaped."""
    return re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\\\1", value)


def substitute(query: str, values: dict[str, str]) -> str:
    """A query as Grafana sends it: built-in intervals, then the dashboard variables (longest name first,
    so $gpu_host is not read as $gpu)."""
    for name, value in BUILTINS.items():
        query = query.replace(name, value)
    for name in sorted(values, key=len, reverse=True):
        query = query.replace("${" + name + "}", values[name]).replace("$" + name, values[name])
    leftover = re.findall(r"\$\{?[A-Za-z_]\w*", query)
    if leftover:
        raise AssertionError(f"unknown variables {leftover} in {query}")
    return query


def loki_index_labels() -> set[str]:
    """The OTLP resource attributes Loki 3.3 stores as index labels with our loki.yaml, as label names:
    Loki's defaults (docs: "Ingesting logs to Loki using OpenTelemetry Collector", 17 resource attributes)
    plus the attributes_config index_label entries."""
    defaults = {
        "cloud.availability_zone", "cloud.region", "container.name", "deployment.environment",
        "k8s.cluster.name", "k8s.container.name", "k8s.cronjob.name", "k8s.daemonset.name",
        "k8s.deployment.name", "k8s.job.name", "k8s.namespace.name", "k8s.pod.name", "k8s.replicaset.name",
        "k8s.statefulset.name", "service.instance.id", "service.name", "service.namespace",
    }  # fmt: skip
    limits = yaml.safe_load(LOKI_CONFIG.read_text())["limits_config"]
    resource = limits.get("otlp_config", {}).get("resource_attributes", {})
    attrs = set() if resource.get("ignore_defaults") else set(defaults)
    for entry in resource.get("attributes_config", []):
        if entry.get("action") == "index_label":
            attrs |= set(entry.get("attributes", []))
    return {a.replace(".", "_") for a in attrs}
