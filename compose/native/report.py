"""The demo report: report.json, report.md and a self-contained report.html under the run directory.

Every figure is read back, never computed from what was sent: time series and totals from Prometheus with
the very PromQL of the committed Grafana dashboards (compose/grafana/dashboards/, generated from
compose/grafana/src/ and checked to be current by the dashboard tests), traces and logs from the Collector's
export files, and the privacy check by searching every export for each PII value the load generator
injected (app.loadgen --pii-values-out)."""

from __future__ import annotations

import html
import json
import re
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import readback
import report_svg as svg
import yaml
from readback import attr

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS_DIR = REPO / "compose" / "grafana" / "dashboards"
# Recording rules some panels read; where Prometheus does not have one loaded, its definition from these
# files stands in (the dashboard tests load the same copy of the SLI rules until they are in compose/).
RULE_FILES = [
    *sorted((REPO / "compose" / "prometheus" / "rules").glob("*.yml")),
    *sorted((REPO / "tests" / "dashboards" / "testdata" / "sli-rules").glob("*.yml")),
]
# Grafana's $__rate_interval is max(4 x scrape interval, step + scrape interval); Prometheus scrapes
# every 5 s here (compose/prometheus/prometheus.yml) and the report steps by 5 s.
RATE_INTERVAL = "20s"
STEP_S = 5.0


# --- the dashboards' PromQL ------------------------------------------------------------------------


@dataclass(frozen=True)
class PanelQuery:
    expr: str
    legend: str


class Dashboards:
    """The committed dashboards' Prometheus targets, as Grafana would send them with every variable at All."""

    def __init__(self, directory: Path = DASHBOARDS_DIR) -> None:
        self.by_uid: dict[str, dict[str, Any]] = {}
        for path in sorted(directory.rglob("*.json")):
            data = json.loads(path.read_text())
            self.by_uid[data["uid"]] = data

    def panel(self, uid: str, title: str) -> dict[str, Any]:
        dashboard = self.by_uid.get(uid)
        if dashboard is None:
            raise KeyError(f"no dashboard {uid!r} in {DASHBOARDS_DIR}")
        for panel in dashboard.get("panels", []):
            for p in [panel, *panel.get("panels", [])]:
                if p.get("title") == title:
                    return dict(p)
        raise KeyError(f"dashboard {uid!r} has no panel {title!r}")

    def queries(self, uid: str, title: str, range_s: float) -> list[PanelQuery]:
        variables = [v["name"] for v in self.by_uid[uid].get("templating", {}).get("list", [])]
        out = []
        for target in self.panel(uid, title).get("targets", []):
            if target.get("expr"):
                expr = substitute(target["expr"], variables, range_s)
                out.append(PanelQuery(expr, str(target.get("legendFormat") or "")))
        return out


def substitute(expr: str, variables: Iterable[str], range_s: float) -> str:
    """Grafana's substitution with every variable at its All value (".*") over a range of range_s."""
    expr = expr.replace("$__rate_interval", RATE_INTERVAL).replace("$__range", f"{max(1, round(range_s))}s")
    for name in sorted(variables, key=len, reverse=True):
        expr = expr.replace("${" + name + "}", ".*").replace("$" + name, ".*")
    leftover = re.findall(r"\$\{?[A-Za-z_]\w*", expr)
    if leftover:
        raise ValueError(f"unknown variables {leftover} in {expr}")
    return expr


def legend(fmt: str, labels: dict[str, str]) -> str:
    name = re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), fmt).strip()
    return name or ", ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k != "__name__") or "value"


def rule_definitions(files: Iterable[Path] = RULE_FILES) -> dict[str, str]:
    """record name -> expression, the first definition of each name winning."""
    out: dict[str, str] = {}
    for path in files:
        for group in (yaml.safe_load(path.read_text()) or {}).get("groups", []):
            for rule in group.get("rules", []):
                if "record" in rule:
                    out.setdefault(rule["record"], " ".join(str(rule["expr"]).split()))
    return out


def inline_rules(expr: str, missing: Iterable[str], definitions: dict[str, str]) -> str:
    """expr with each recording rule Prometheus lacks replaced by its definition. Only where the rule is used
    without matchers or with match-anything ones (every variable at All), so the meaning is unchanged."""
    for name in missing:
        if name not in definitions:
            continue
        pattern = re.compile(re.escape(name) + r'(\{(?:\s*\w+=~"\.\*"\s*,?)*\})?(?![\w:{])')
        replacement = f"({definitions[name]})"
        expr = pattern.sub(lambda _m: replacement, expr)  # noqa: B023 - used at once, inside the loop
    return expr


def loaded_rules(prom: str) -> set[str]:
    groups = readback.prometheus(prom, "/api/v1/rules", type="record")["groups"]
    return {r["name"] for g in groups for r in g.get("rules", [])}


# --- reading Prometheus ----------------------------------------------------------------------------


def _range(prom: str, q: PanelQuery, start: float, end: float) -> list[svg.Series]:
    data = readback.prometheus(prom, "/api/v1/query_range", query=q.expr, start=start, end=end, step=STEP_S)
    series = []
    for result in data["result"]:
        points = [
            (round(float(t) - start, 3), float(v))
            for t, v in result["values"]
            if v not in ("NaN", "+Inf", "-Inf")
        ]
        series.append(svg.Series(legend(q.legend, result["metric"]), points))
    return sorted(series, key=lambda s: s.name)


def _instant(prom: str, q: PanelQuery, at: float) -> list[tuple[str, float]]:
    data = readback.prometheus(prom, "/api/v1/query", query=q.expr, time=at)
    out = []
    for result in data["result"]:
        value = float(result["value"][1])
        if value == value:  # not NaN
            out.append((legend(q.legend, result["metric"]), value))
    return sorted(out, key=lambda kv: (-kv[1], kv[0]))


# (report key, dashboard uid, panel title, unit shown on the chart)
TIME_SERIES = [
    ("request_rate", "llm-operations", "Request rate by route and status", "requests/s"),
    ("latency", "llm-operations", "GenAI operation latency p50 / p95 / p99", "seconds"),
    ("spend_by_model", "llm-overview", "Spend by model", "USD/hour"),
    ("spend_by_tenant", "llm-overview", "Spend by tenant", "USD/hour"),
    ("tokens", "llm-cost-tokens", "Tokens per second by model and kind", "tokens/s"),
    ("redactions", "llm-privacy", "Redactions per second by PII type", "redactions/s"),
]
# (report key, dashboard uid, panel title): instant values over the whole window ($__range)
TOTALS = [
    ("cost_usd", "llm-overview", "Spend today"),
    ("cost_per_request_usd", "llm-overview", "Spend per request"),
    ("cost_by_tenant_usd", "llm-overview", "Top tenants by spend"),
    ("requests", "llm-overview", "Requests per day"),
]


COST_COUNTER = "sum(llm_cost_USD_total)"


def prometheus_figures(prom: str, start: float, end: float) -> dict[str, Any]:
    dashboards = Dashboards()
    definitions = rule_definitions()
    missing = set(definitions) - loaded_rules(prom)
    out: dict[str, Any] = {"series": {}, "totals": {}, "queries": {}}
    for key, uid, title, unit in TIME_SERIES:
        queries = [
            PanelQuery(inline_rules(q.expr, missing, definitions), q.legend)
            for q in dashboards.queries(uid, title, end - start)
        ]
        series = [s for q in queries for s in _range(prom, q, start, end)]
        out["series"][key] = {
            "panel": f"{uid} / {title}",
            "unit": unit,
            "series": [{"name": s.name, "points": s.points} for s in series],
        }
        out["queries"][key] = [q.expr for q in queries]
    for key, uid, title in TOTALS:
        queries = [
            PanelQuery(inline_rules(q.expr, missing, definitions), q.legend)
            for q in dashboards.queries(uid, title, end - start)
        ]
        values = [kv for q in queries for kv in _instant(prom, q, end)]
        out["totals"][key] = {"panel": f"{uid} / {title}", "values": dict(values)}
        out["queries"][key] = [q.expr for q in queries]
    # Not a panel: the counter itself, which the panels' increase() extrapolates to the window's edges.
    counter = readback.query(prom, COST_COUNTER)
    out["cost_counter_usd"] = float(counter[0]["value"][1]) if counter else 0.0
    out["queries"]["cost_counter_usd"] = [COST_COUNTER]
    return out


# --- the exports -----------------------------------------------------------------------------------


def _resource_spans(path: Path) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(resource, span) for every exported span."""
    out: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for req in readback.read_jsonl(path):
        for rs in req.get("resourceSpans", []):
            resource = rs.get("resource", {})
            for ss in rs.get("scopeSpans", []):
                out.extend((resource, span) for span in ss.get("spans", []))
    return out


def export_figures(traces: Path, logs: Path) -> dict[str, Any]:
    spans = readback.exported_spans(traces)
    records = readback.exported_log_records(logs)
    genai = [s for s in spans if attr(s, "gen_ai.operation.name")]
    cost_by_model: dict[str, float] = {}
    tokens: Counter[str] = Counter()
    for s in genai:
        cost = attr(s, "gen_ai.usage.cost")
        if cost is not None:
            model = attr(s, "gen_ai.response.model") or attr(s, "gen_ai.request.model") or "unknown"
            cost_by_model[str(model)] = cost_by_model.get(str(model), 0.0) + float(cost)
        tokens["input"] += int(attr(s, "gen_ai.usage.input_tokens") or 0)
        tokens["output"] += int(attr(s, "gen_ai.usage.output_tokens") or 0)
    redacted: Counter[str] = Counter()
    redactions = 0
    for item in [*spans, *records]:
        n = attr(item, "pii.redacted.count")
        if n:
            redactions += int(n)
            redacted.update(attr(item, "pii.redacted.types") or [])
    return {
        "spans": len(spans),
        "genai_spans": len(genai),
        "log_records": len(records),
        "priced_spans": sum(1 for s in genai if attr(s, "gen_ai.cost.status") == "priced"),
        "unpriced_spans": sum(1 for s in genai if attr(s, "gen_ai.cost.status") == "unpriced"),
        "cost_usd": sum(cost_by_model.values()),
        "cost_by_model_usd": dict(sorted(cost_by_model.items(), key=lambda kv: -kv[1])),
        "tokens": dict(tokens),
        "redacted_values": redactions,
        "redactions_by_type": dict(redacted.most_common()),
        "error_spans": sum(1 for s in spans if s.get("status", {}).get("code") == 2),
    }


def _nano(value: Any) -> int:
    return int(value or 0)


def example_request(prom: str, traces: Path, logs: Path, start: float, end: float) -> dict[str, Any] | None:
    """One request end to end: an exemplar of the GenAI latency histogram that points to an exported trace,
    that trace's spans as a waterfall, and its log lines. Prefers a trace with log lines and a redaction."""
    by_trace: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = {}
    for resource, span in _resource_spans(traces):
        by_trace.setdefault(span["traceId"], []).append((resource, span))
    logs_by_trace: dict[str, list[dict[str, Any]]] = {}
    for record in readback.exported_log_records(logs):
        if record.get("traceId"):
            logs_by_trace.setdefault(record["traceId"], []).append(record)
    candidates = []
    for metric in (
        "gen_ai_client_operation_duration_seconds_bucket",
        "traces_span_metrics_duration_seconds_bucket",
    ):
        data = readback.prometheus(prom, "/api/v1/query_exemplars", query=metric, start=start, end=end + 60)
        for series in data:
            for ex in series.get("exemplars", []):
                trace_id = ex["labels"].get("trace_id")
                if trace_id in by_trace:
                    spans = by_trace[trace_id]
                    redacted = any(attr(s, "pii.redacted.count") for _, s in spans)
                    failed = any(s.get("status", {}).get("code") == 2 for _, s in spans)
                    score = (bool(logs_by_trace.get(trace_id)), not failed, redacted, len(spans))
                    candidates.append((score, metric, series.get("seriesLabels", {}), ex))
        if candidates:
            break
    if not candidates:
        return None
    _, metric, series_labels, ex = max(candidates, key=lambda c: c[0])
    trace_id = ex["labels"]["trace_id"]
    spans = by_trace[trace_id]
    t0 = min(_nano(s["startTimeUnixNano"]) for _, s in spans)
    ids = {s["spanId"] for _, s in spans}
    parents = {s["spanId"]: s.get("parentSpanId") or "" for _, s in spans}

    def depth(span_id: str) -> int:
        d, seen = 0, set()
        while parents.get(span_id) in ids and span_id not in seen:
            seen.add(span_id)
            span_id = parents[span_id]
            d += 1
        return d

    ordered = sorted(spans, key=lambda rs: (_nano(rs[1]["startTimeUnixNano"]), depth(rs[1]["spanId"])))
    span_rows = []
    for resource, s in ordered:
        row = {
            "name": s["name"],
            "service": attr(resource, "service.name") or "",
            "span_id": s["spanId"],
            "parent_span_id": s.get("parentSpanId") or "",
            "start_ms": round((_nano(s["startTimeUnixNano"]) - t0) / 1e6, 3),
            "duration_ms": round((_nano(s["endTimeUnixNano"]) - _nano(s["startTimeUnixNano"])) / 1e6, 3),
            "depth": depth(s["spanId"]),
            "error": s.get("status", {}).get("code") == 2,
            "attributes": {
                k: attr(s, k)
                for k in (
                    "gen_ai.request.model",
                    "gen_ai.usage.input_tokens",
                    "gen_ai.usage.output_tokens",
                    "gen_ai.usage.cost",
                    "gen_ai.cost.status",
                    "llm_gateway.tenant",
                    "pii.redacted.count",
                    "pii.redacted.types",
                    "http.route",
                    "http.response.status_code",
                )
                if attr(s, k) is not None
            },
        }
        span_rows.append(row)
    log_rows = [
        {
            "time_ms": round((_nano(r.get("timeUnixNano") or r.get("observedTimeUnixNano")) - t0) / 1e6, 3),
            "severity": r.get("severityText", ""),
            "span_id": r.get("spanId", ""),
            "body": str(readback.plain(r.get("body", {})) or ""),
        }
        for r in sorted(logs_by_trace.get(trace_id, []), key=lambda r: _nano(r.get("timeUnixNano")))
    ]
    return {
        "trace_id": trace_id,
        "exemplar": {
            "metric": metric,
            "series": {k: v for k, v in series_labels.items() if k != "__name__"},
            "value": float(ex["value"]),
            "timestamp": float(ex["timestamp"]),
            "span_id": ex["labels"].get("span_id", ""),
        },
        "spans": span_rows,
        "logs": log_rows,
    }


# --- the privacy check -----------------------------------------------------------------------------


def pii_variants(kind: str, value: str) -> set[str]:
    """The forms a leaked value could take in an export: as sent, and for numbers without separators."""
    out = {value}
    digits = re.sub(r"\D", "", value)
    if kind in ("credit_card", "phone") and len(digits) >= 9:
        out.add(digits)
    return out


def _fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return str(resp.read().decode("utf-8", "replace"))


def prometheus_label_text(prom: str) -> str:
    """Every label value Prometheus stored: what a leaked value in a metric label would show up in."""
    names = readback.prometheus(prom, "/api/v1/labels")
    values = [
        v
        for name in names
        for v in readback.prometheus(prom, f"/api/v1/label/{urllib.parse.quote(name)}/values")
    ]
    return "\n".join(values)


def pii_check(injected_path: Path, sources: dict[str, str]) -> dict[str, Any]:
    """How many of the injected PII values appear in any export. sources: name -> text searched."""
    if not injected_path.exists():
        return {"applicable": False, "reason": "no load generator run (synthetic traffic injects no PII)"}
    injected = [json.loads(line) for line in injected_path.read_text().splitlines() if line.strip()]
    unique = {(i["kind"], i["value"]) for i in injected}
    found: list[dict[str, str]] = []  # (kind, source) of each hit, never the value itself
    leaked = 0
    for kind, value in sorted(unique):
        hits = [name for name, text in sources.items() if any(v in text for v in pii_variants(kind, value))]
        leaked += bool(hits)
        found.extend({"kind": kind, "source": name} for name in hits)
    return {
        "applicable": True,
        "injected_values": len(injected),
        "distinct_values": len(unique),
        "by_kind": dict(Counter(k for k, _ in unique).most_common()),
        "searched": sorted(sources),
        "found_in_exports": leaked,
        "found": found,
    }


# --- gathering and writing -------------------------------------------------------------------------


def gather(
    prom: str,
    prom_exporter: str,
    traces: Path,
    logs: Path,
    pii_values: Path,
    start: float,
    end: float,
    load: dict[str, Any],
) -> dict[str, Any]:
    sources = {
        traces.name: traces.read_text(errors="replace") if traces.exists() else "",
        logs.name: logs.read_text(errors="replace") if logs.exists() else "",
        "collector /metrics": _fetch(prom_exporter + "/metrics"),
        "prometheus label values": prometheus_label_text(prom),
    }
    return {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "window": {"start": start, "end": end, "seconds": round(end - start, 1)},
        "load": load,
        "exports": export_figures(traces, logs),
        "prometheus": prometheus_figures(prom, start, end),
        "example": example_request(prom, traces, logs, start, end),
        "pii_check": pii_check(pii_values, sources),
        "files": {"traces": str(traces), "logs": str(logs)},
    }


def write(report: dict[str, Any], run_dir: Path) -> dict[str, Path]:
    paths = {"json": run_dir / "report.json", "md": run_dir / "report.md", "html": run_dir / "report.html"}
    paths["json"].write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    paths["md"].write_text(render_markdown(report))
    paths["html"].write_text(render_html(report))
    return paths


# --- rendering: every number shown is a value of report.json, named by its path (data-key) ---------


def lookup(report: dict[str, Any], key: str) -> Any:
    node: Any = report
    for part in key.split("/"):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


@dataclass(frozen=True)
class Figure:
    label: str
    key: str  # path in report.json, parts separated by "/"
    decimals: int
    prefix: str = ""


def figures(report: dict[str, Any]) -> list[Figure]:
    """The headline numbers, in display order; only those present in this report."""
    candidates = [
        Figure("Requests sent by the load generator", "load/requests", 0),
        Figure("Requests answered 200", "load/ok", 0),
        Figure("Spans exported", "exports/spans", 0),
        Figure("GenAI spans exported", "exports/genai_spans", 0),
        Figure("Log records exported", "exports/log_records", 0),
        Figure("Priced spans", "exports/priced_spans", 0),
        Figure("Unpriced spans", "exports/unpriced_spans", 0),
        Figure("Cost, sum of the exported spans (USD)", "exports/cost_usd", 6, "$"),
        Figure("Cost, Prometheus (Spend panel, USD)", "prometheus/totals/cost_usd/values/USD", 6, "$"),
        Figure("Cost counter, Prometheus sum(llm_cost_USD_total)", "prometheus/cost_counter_usd", 6, "$"),
        Figure(
            "Cost per request, Prometheus (USD)",
            "prometheus/totals/cost_per_request_usd/values/USD per request",
            6,
            "$",
        ),
        Figure(
            "GenAI requests, Prometheus (Requests panel)", "prometheus/totals/requests/values/requests", 1
        ),
        Figure("Input tokens (exported spans)", "exports/tokens/input", 0),
        Figure("Output tokens (exported spans)", "exports/tokens/output", 0),
        Figure("Values redacted (exported spans and logs)", "exports/redacted_values", 0),
        Figure("PII values the load generator injected", "pii_check/injected_values", 0),
        Figure(
            "PII values the load generator injected, found in any export", "pii_check/found_in_exports", 0
        ),
    ]
    out = []
    for f in candidates:
        try:
            value = lookup(report, f.key)
        except (KeyError, IndexError, TypeError):
            continue
        if isinstance(value, int | float):
            out.append(f)
    return out


def fmt(value: float, decimals: int) -> str:
    return f"{value:,.{decimals}f}"


def render_markdown(report: dict[str, Any]) -> str:
    lines = [
        "# llm-otel-pipeline demo report",
        "",
        f"Generated {report['generated_at']} over a {report['window']['seconds']} s window. Figures from "
        "Prometheus use the PromQL of the Grafana dashboards (every variable at All); traces and logs come "
        "from the Collector's export files.",
        "",
        "| figure | value |",
        "|---|---|",
    ]
    for f in figures(report):
        lines.append(f"| {f.label} | {f.prefix}{fmt(lookup(report, f.key), f.decimals)} |")
    check = report["pii_check"]
    lines += ["", "## Privacy check", ""]
    if check.get("applicable"):
        verdict = "PASS" if check["found_in_exports"] == 0 else "FAIL"
        lines.append(
            f"PII values the load generator injected, found in any export: **{check['found_in_exports']}** "
            f"({verdict}; {check['distinct_values']} distinct values by kind {check['by_kind']}, searched: "
            f"{', '.join(check['searched'])})"
        )
    else:
        lines.append(f"not applicable: {check['reason']}")
    exp = report["exports"]
    lines += ["", "## Cost by model (exported spans, USD)", "", "| model | USD |", "|---|---|"]
    lines += [f"| {m} | {c:.6f} |" for m, c in exp["cost_by_model_usd"].items()]
    lines += [
        "",
        "## Cost by tenant (Prometheus, Top tenants by spend, USD)",
        "",
        "| tenant | USD |",
        "|---|---|",
    ]
    by_tenant = report["prometheus"]["totals"]["cost_by_tenant_usd"]["values"]
    lines += [f"| {t} | {c:.6f} |" for t, c in by_tenant.items()]
    lines += ["", "## Redactions by type (exported spans and logs)", "", "| type | values |", "|---|---|"]
    lines += [f"| {t} | {n} |" for t, n in exp["redactions_by_type"].items()]
    ex = report["example"]
    lines += ["", "## One request end to end", ""]
    if ex:
        e = ex["exemplar"]
        lines += [
            f"Exemplar on `{e['metric']}` (value {e['value']:.4f} s) -> trace `{ex['trace_id']}`, "
            f"{len(ex['spans'])} spans, {len(ex['logs'])} log lines.",
            "",
            "| span | service | start ms | duration ms |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {'  ' * s['depth']}{s['name']} | {s['service']} "
            f"| {s['start_ms']:.1f} | {s['duration_ms']:.1f} |"
            for s in ex["spans"]
        ]
        lines += ["", "| ms | severity | body |", "|---|---|---|"]
        lines += [
            f"| {r['time_ms']:.1f} | {r['severity']} | {r['body'][:160].replace('|', '/')} |"
            for r in ex["logs"]
        ]
    else:
        lines.append("no exemplar pointing to an exported trace was found")
    lines += ["", "## Queries", ""]
    for key, exprs in report["prometheus"]["queries"].items():
        lines += [f"- {key}: " + "; ".join(f"`{q}`" for q in exprs)]
    return "\n".join(lines) + "\n"


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;max-width:1340px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px}h3{font-size:14px}
.figures{display:grid;grid-template-columns:repeat(auto-fill,minmax(240px,1fr));gap:8px}
.fig{border:1px solid #ddd;border-radius:6px;padding:8px 10px}.fig .label{font-size:12px;color:#555}
.fig .num{font-size:20px;font-weight:600}
.pass{color:#1a7f37}.fail{color:#cf222e}
.charts{display:flex;flex-wrap:wrap;gap:12px}
svg.chart{border:1px solid #ddd;border-radius:6px;background:#fff}
svg .title{font-size:13px;font-weight:600}
svg .tick{font-size:11px;fill:#444}svg .legend{font-size:10px;fill:#444}
svg .axis{stroke:#888;stroke-width:1}svg .nodata{font-size:14px;fill:#999;text-anchor:middle}
table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ddd;padding:3px 6px;text-align:left}
code{font-size:11px}
"""


# Inline and offline: after layout, each chart records how many of its data points have a rendered box, so a
# headless browser's DOM shows that the charts were drawn (tests/e2e/test_demo_report.py).
RENDER_CHECK = """
window.addEventListener("load", () => {
  for (const chart of document.querySelectorAll("svg.chart")) {
    let drawn = 0;
    for (const el of chart.querySelectorAll("[data-value]")) {
      const box = el.getBBox();
      if (box.width > 0 && box.height > 0) drawn++;
    }
    chart.setAttribute("data-drawn", String(drawn));
  }
  document.body.setAttribute("data-rendered", "1");
});
"""


def _num(report: dict[str, Any], f: Figure) -> str:
    return (
        f'<div class="fig"><div class="label">{html.escape(f.label)}</div>'
        f'<div class="num">{html.escape(f.prefix)}<span data-key="{html.escape(f.key)}" '
        f'data-decimals="{f.decimals}">{fmt(lookup(report, f.key), f.decimals)}</span></div></div>'
    )


def _series(report: dict[str, Any], key: str) -> list[svg.Series]:
    return [
        svg.Series(s["name"], [(float(x), float(y)) for x, y in s["points"]])
        for s in report["prometheus"]["series"][key]["series"]
    ]


def render_html(report: dict[str, Any]) -> str:
    exp = report["exports"]
    prom = report["prometheus"]
    charts = []
    for key, _, title, unit in TIME_SERIES:
        charts.append(svg.line_chart(title, _series(report, key), unit))
    charts.append(
        svg.bar_chart("Cost by model, exported spans (USD)", list(exp["cost_by_model_usd"].items()), "USD")
    )
    charts.append(
        svg.bar_chart(
            "Cost by tenant, Prometheus: Top tenants by spend (USD)",
            list(prom["totals"]["cost_by_tenant_usd"]["values"].items()),
            "USD",
        )
    )
    charts.append(svg.bar_chart("Tokens, exported spans", list(exp["tokens"].items()), "", decimals=0))
    charts.append(
        svg.bar_chart(
            "Redactions by type, exported spans and logs", list(exp["redactions_by_type"].items()), "", 0
        )
    )
    check = report["pii_check"]
    if check.get("applicable"):
        ok = check["found_in_exports"] == 0
        privacy = (
            f'<p class="{"pass" if ok else "fail"}">PII values the load generator injected, '
            'found in any export: <b><span data-key="pii_check/found_in_exports" data-decimals="0">'
            f"{check['found_in_exports']}</span></b>"
            f" — {'PASS' if ok else 'FAIL'} ({check['distinct_values']} distinct values, by kind "
            f"{html.escape(json.dumps(check['by_kind']))}; "
            f"searched {html.escape(', '.join(check['searched']))})</p>"
        )
    else:
        privacy = f"<p>not applicable: {html.escape(check['reason'])}</p>"
    ex = report["example"]
    if ex:
        e = ex["exemplar"]
        spans = [
            svg.WaterfallSpan(
                s["name"], s["service"], s["start_ms"], s["duration_ms"], s["depth"], s["error"]
            )
            for s in ex["spans"]
        ]
        rows = "".join(
            f"<tr><td>{html.escape(s['name'])}</td><td>{html.escape(s['service'])}</td>"
            f"<td><code>{html.escape(json.dumps(s['attributes']))}</code></td></tr>"
            for s in ex["spans"]
        )
        log_rows = (
            "".join(
                f"<tr><td>{r['time_ms']:.1f}</td><td>{html.escape(r['severity'])}</td>"
                f"<td>{html.escape(r['body'][:300])}</td></tr>"
                for r in ex["logs"]
            )
            or '<tr><td colspan="3">no log lines for this trace</td></tr>'
        )
        example = (
            f"<p>Exemplar on <code>{html.escape(e['metric'])}</code> "
            f"<code>{html.escape(json.dumps(e['series']))}</code>, value {e['value']:.4f} s, "
            f"-> trace <code>{html.escape(ex['trace_id'])}</code> "
            f"(span <code>{html.escape(e['span_id'])}</code>)</p>"
            + svg.waterfall(f"Trace {ex['trace_id']} (from traces.jsonl)", spans)
            + "<h3>Span attributes</h3>"
            + f"<table><tr><th>span</th><th>service</th><th>attributes</th></tr>{rows}</table>"
            + "<h3>Log lines of this trace (from logs.jsonl)</h3>"
            + f"<table><tr><th>ms</th><th>severity</th><th>body</th></tr>{log_rows}</table>"
        )
    else:
        example = "<p>no exemplar pointing to an exported trace was found</p>"
    queries = "".join(
        f"<li>{html.escape(k)}: " + "; ".join(f"<code>{html.escape(q)}</code>" for q in v) + "</li>"
        for k, v in prom["queries"].items()
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        "<title>llm-otel-pipeline demo report</title>"
        f"<style>{CSS}</style></head><body>"
        "<h1>llm-otel-pipeline demo report</h1>"
        f"<p>Generated {html.escape(report['generated_at'])} over a {report['window']['seconds']} s window. "
        "Time series and Prometheus totals use the PromQL of the Grafana dashboards (every variable at All); "
        "traces and logs come from the Collector's export files. The panels' totals use increase() over the "
        "window, which extrapolates to its edges; the cost counter itself equals the exported spans' sum "
        "(tests/e2e/test_cost_agreement.py).</p>"
        f'<div class="figures">{"".join(_num(report, f) for f in figures(report))}</div>'
        f"<h2>Privacy</h2>{privacy}"
        f'<h2>Charts</h2><div class="charts">{"".join(charts)}</div>'
        f"<h2>One request end to end</h2>{example}"
        f"<h2>Queries</h2><ul>{queries}</ul>"
        f"<script>{RENDER_CHECK}</script>"
        "</body></html>\n"
    )
