"""The committed dashboards, checked without a running stack: they are what the source makes, every panel
says what it answers, every datasource exists, and every PromQL / TraceQL / LogQL target is well formed."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.dashboards import model, querylang

UIDS = {
    "llm-overview",
    "llm-operations",
    "llm-cost-tokens",
    "llm-privacy",
    "llm-pipeline-health",
    "llm-hosts-gpus",
}
GENAI_VARIABLES = {"datasource", "env", "service", "model", "provider", "tenant"}

# Attribute types of what the pipeline exports: the sidecar's cost attributes are doubles and its redaction
# count an integer (shared/DESIGN.md, "Names other parts rely on"); the request parameters and usage counts
# are typed by the GenAI semantic conventions. The end-to-end test checks these types on exported spans.
FLOAT_ATTRS = {
    "gen_ai.usage.cost", "gen_ai.cost.input", "gen_ai.cost.output", "gen_ai.cost.cache_read",
    "gen_ai.cost.cache_write", "gen_ai.request.temperature", "gen_ai.request.top_p",
    "gen_ai.request.frequency_penalty", "gen_ai.request.presence_penalty",
    "gen_ai.response.time_to_first_chunk",
}  # fmt: skip
INT_ATTRS = {
    "pii.redacted.count", "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens",
    "gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.reasoning.output_tokens",
    "gen_ai.request.max_tokens", "gen_ai.request.seed", "gen_ai.request.choice.count",
    "http.response.status_code", "server.port",
}  # fmt: skip


def test_committed_json_is_what_the_source_makes() -> None:
    """`make dashboards` output == the files in git: a stale or hand-edited dashboard fails here."""
    result = subprocess.run(
        [sys.executable, str(model.SOURCE_DIR / "build.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_the_check_notices_an_edited_a_missing_and_a_foreign_file(tmp_path: Path) -> None:
    build = [sys.executable, str(model.SOURCE_DIR / "build.py"), "--dir", str(tmp_path)]
    subprocess.run(build, check=True, capture_output=True)
    check = [*build, "--check"]
    assert subprocess.run(check, capture_output=True).returncode == 0
    one = sorted(tmp_path.rglob("*.json"))[0]
    original = one.read_text()
    one.write_text(original.replace('"LLM', '"LLX', 1))
    edited = subprocess.run(check, capture_output=True, text=True)
    assert edited.returncode == 1 and "out of date" in edited.stderr
    one.unlink()
    assert subprocess.run(check, capture_output=True).returncode == 1
    one.write_text(original)
    (tmp_path / "llm" / "hand-made.json").write_text("{}")
    foreign = subprocess.run(check, capture_output=True, text=True)
    assert foreign.returncode == 1 and "not made by the source" in foreign.stderr


def test_six_dashboards_with_stable_uids_and_a_links_row() -> None:
    boards = model.dashboards()
    assert set(boards) == UIDS
    for uid, d in boards.items():
        links = d.get("links", [])
        assert any(lk["type"] == "dashboards" and "llm-otel-pipeline" in lk["tags"] for lk in links), uid
        assert "llm-otel-pipeline" in d["tags"], uid
        assert d.get("description"), uid


def test_shared_variables() -> None:
    boards = model.dashboards()
    for uid in ("llm-overview", "llm-operations", "llm-cost-tokens"):
        assert {v["name"] for v in model.variables(boards[uid])} >= GENAI_VARIABLES, uid
    for uid, d in boards.items():
        names = {v["name"] for v in model.variables(d)}
        assert "datasource" in names, uid
        for var in model.variables(d):
            if var["type"] == "query":
                assert model.variable_query(var), f"{uid}: {var['name']} is not a label_values() query"
                assert var.get("includeAll") and var.get("allValue") == ".*", f"{uid}: {var['name']}"


def test_every_panel_says_what_it_answers() -> None:
    for uid, d in model.dashboards().items():
        for panel in model.panels(d):
            if panel["type"] == "row":
                continue
            description = panel.get("description", "")
            assert len(description) >= 30 and "?" in description, (
                f"{uid} / {panel.get('title')}: {description!r}"
            )


def test_variables_used_in_queries_exist() -> None:
    for d in model.dashboards().values():
        names = {v["name"] for v in model.variables(d)}
        for t in model.targets(d):
            used = set(re.findall(r"\$\{?([A-Za-z]\w*)", t.query)) - {
                "__rate_interval",
                "__range",
                "__interval",
            }
            assert used <= names, f"{t}: {used - names}"


def test_no_target_returns_a_series_without_data() -> None:
    """A fallback may show 0 for "nothing happened", but only over real series of the same selection (or as
    the numerator of a ratio whose denominator is real): a bare `or vector(0)` would make the end-to-end
    "returns a series" proof pass on no data at all."""
    for t in model.all_targets("prometheus"):
        assert "vector(" not in re.sub(r"or vector\(0\)\) /", "", t.query), t


def test_histogram_panels_show_exemplars() -> None:
    histogram_targets = [t for t in model.all_targets("prometheus") if "_bucket" in t.query]
    assert len(histogram_targets) >= 8
    for t in histogram_targets:
        assert t.exemplar, f"{t} reads a histogram but does not ask for exemplars"


def test_every_datasource_uid_exists_in_the_provisioning_file() -> None:
    provisioned = model.provisioned_datasources()
    for uid, d in model.dashboards().items():
        ds_var = next(v for v in model.variables(d) if v["name"] == "datasource")
        assert ds_var["current"]["value"] in provisioned, uid
        for ref in model.datasource_refs(d):
            ref_uid = ref.get("uid", "")
            if ref_uid == "${datasource}":
                ref_uid = ds_var["current"]["value"]
            assert ref_uid in provisioned, f"{uid}: datasource {ref} is not provisioned"
            assert provisioned[ref_uid]["type"] == ref.get("type"), f"{uid}: {ref} vs {provisioned[ref_uid]}"
    for ds in provisioned.values():
        json_data = ds.get("jsonData", {})
        linked = [d.get("datasourceUid") for d in json_data.get("exemplarTraceIdDestinations", [])]
        linked += [json_data.get(k, {}).get("datasourceUid") for k in ("tracesToLogsV2", "tracesToMetrics")]
        linked += [json_data.get(k, {}).get("datasourceUid") for k in ("serviceMap", "lokiSearch")]
        linked += [d.get("datasourceUid") for d in json_data.get("derivedFields", [])]
        assert {u for u in linked if u} <= set(provisioned), ds["uid"]


def _all_values(d: dict[str, object]) -> dict[str, str]:
    return {v["name"]: ".*" for v in model.variables(d) if v["name"] != "datasource"}


def test_promql_targets_parse(tmp_path: Path) -> None:
    """Every PromQL target, variables filled in, checked by promtool's PromQL parser (as recording rules)."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: run `make tools`")
    rules = []
    for d in model.dashboards().values():
        for i, t in enumerate(model.targets(d)):
            if t.datasource_type == "prometheus":
                rules.append(
                    {
                        "record": f"dashboard:{d['uid'].replace('-', '_')}:{i}",
                        "expr": model.substitute(t.query, _all_values(d)),
                    }
                )
    for ds in model.provisioned_datasources().values():
        for i, q in enumerate(ds.get("jsonData", {}).get("tracesToMetrics", {}).get("queries", [])):
            expr = q["query"].replace("$$__tags", 'service_name="llm-gateway"')
            rules.append({"record": f"datasource:traces_to_metrics:{i}", "expr": expr})
    path = tmp_path / "targets.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(rules) >= 60


def test_datasource_provisioning_escapes_grafana_variables() -> None:
    """Grafana's provisioning expands $VAR from the environment: every Grafana ${__...} must be $$-escaped."""
    text = model.DATASOURCES.read_text()
    assert not re.search(r"(?<!\$)\$\{?__", text), "unescaped $__ variable in datasources.yaml"
    t2m = model.provisioned_datasources()["tempo"]["jsonData"]["tracesToMetrics"]
    assert t2m["queries"], (
        "Tempo -> metrics needs explicit queries (spanmetrics names differ from the default)"
    )
    assert all("traces_span_metrics_" in q["query"] or "llm_cost" in q["query"] for q in t2m["queries"])


def _traceql_in_docs() -> list[tuple[str, str]]:
    """TraceQL in the documentation: ```traceql blocks and `{ span.… }` / `{ resource.… }` snippets."""
    found = []
    for path in [model.REPO / "README.md", *sorted((model.REPO / "docs").glob("*.md"))]:
        text = path.read_text()
        for block in re.findall(r"```traceql\n(.*?)```", text, re.S):
            found += [(str(path), line.strip()) for line in block.splitlines() if line.strip()]
        found += [(str(path), q) for q in re.findall(r"`(\{\s*(?:span|resource)\.[^`]*)`", text)]
    return found


def test_traceql_is_well_formed_and_compares_floats_with_float_literals() -> None:
    queries = [(str(t), t.query) for t in model.all_targets("tempo")]
    queries += _traceql_in_docs()
    assert len(queries) >= 2
    problems = []
    for where, q in queries:
        try:
            problems += [f"{where}: {p}" for p in querylang.literal_mismatches(q, FLOAT_ATTRS, INT_ATTRS)]
        except querylang.TraceQLError as exc:
            problems.append(f"{where}: {exc}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("{ span.gen_ai.usage.cost > 0 }", "float attribute needs a float literal"),
        ("{ span.pii.redacted.count > 0.0 }", "integer attribute needs an integer literal"),
        ("{ span.something.new > 1 }", "unknown type"),
        ("{ span.gen_ai.usage.cost > }", "is not a literal"),
        ("{ gen_ai.usage.cost > 0.0 }", "neither a scoped attribute"),
        ("{ span.gen_ai.usage.cost > 0.0 } | sort()", "unsupported pipeline stage"),
    ],
)
def test_the_traceql_check_rejects(query: str, problem: str) -> None:
    try:
        problems = querylang.literal_mismatches(query, FLOAT_ATTRS, INT_ATTRS)
    except querylang.TraceQLError as exc:
        problems = [str(exc)]
    assert any(problem in p for p in problems), problems


def test_logql_selects_loki_index_labels() -> None:
    index = model.loki_index_labels()
    assert {"service_name", "deployment_environment_name"} <= index
    queries = model.all_targets("loki")
    assert queries
    for t in queries:
        values = {v: ".*" for v in ("service", "env", "model", "provider", "tenant")}
        assert not querylang.logql_problems(t.query, index, values), t
    # Tempo's trace -> logs query: its tags become the stream selector
    t2l = model.provisioned_datasources()["tempo"]["jsonData"]["tracesToLogsV2"]
    assert {tag["value"] for tag in t2l["tags"]} <= index
    query = (
        t2l["query"].replace("$${__tags}", 'service_name="llm-gateway"').replace("$${__trace.traceId}", "abc")
    )
    assert not querylang.logql_problems(query, index, {})


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ('{deployment_environment_name=~".*"}', "empty string"),
        ('{gen_ai_request_model="x"}', "not a Loki index label"),
        ('{service_name="x"} | unwrap foo', "unsupported pipeline stage"),
    ],
)
def test_the_logql_check_rejects(query: str, problem: str) -> None:
    assert any(problem in p for p in querylang.logql_problems(query, model.loki_index_labels(), {}))


def test_dashboards_are_provisioned_into_folders() -> None:
    provider = yaml.safe_load(
        (model.REPO / "compose" / "grafana" / "provisioning" / "dashboards" / "dashboards.yaml").read_text()
    )["providers"][0]
    assert provider["options"]["foldersFromFilesStructure"] is True
    folders = {p.parent.name for p in model.DASHBOARDS_DIR.rglob("*.json")}
    assert len(folders) >= 2 and all(
        p.parent != model.DASHBOARDS_DIR for p in model.DASHBOARDS_DIR.rglob("*.json")
    )


def test_compose_has_node_and_gpu_profiles_and_no_default_admin_password() -> None:
    compose = yaml.safe_load((model.REPO / "compose" / "docker-compose.yaml").read_text())
    services = compose["services"]
    assert services["node-exporter"]["profiles"] == ["node"]
    assert services["dcgm-exporter"]["profiles"] == ["gpu"]
    password = services["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"]
    assert password.startswith("${GRAFANA_ADMIN_PASSWORD:?"), password  # compose refuses to start without it
    local = (model.REPO / "compose" / "local-dev.env").read_text()
    assert "GRAFANA_ADMIN_PASSWORD=" in local
    prom = yaml.safe_load((model.REPO / "compose" / "prometheus" / "prometheus.yml").read_text())
    targets = {t for job in prom["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    assert {"node-exporter:9100", "dcgm-exporter:9400"} <= targets


def _collector_config(*names: str) -> dict[str, object]:
    merged: dict[str, object] = {}
    for name in names:
        merged = _merge(merged, yaml.safe_load((model.REPO / "otel-collector" / name).read_text()))
    return merged


def _merge(a: dict[str, object], b: dict[str, object]) -> dict[str, object]:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v  # type: ignore[arg-type]
    return out


@pytest.mark.parametrize(
    "files", [("config.yaml",), ("config.yaml", "config.native.yaml")], ids=["docker", "native"]
)
def test_collector_feeds_servicegraph_and_cost_dimensions_from_the_redacted_spans(
    files: tuple[str, ...],
) -> None:
    cfg = _collector_config(*files)
    pipelines = cfg["service"]["pipelines"]  # type: ignore[index]
    assert {"servicegraph", "signaltometrics"} <= set(pipelines["traces/out"]["exporters"])
    assert "signaltometrics" in pipelines["logs/out"]["exporters"]
    # never before redaction
    assert "signaltometrics" not in str(pipelines["traces/in"]) + str(pipelines["logs/in"])
    assert pipelines["metrics/cost"]["receivers"] == ["signaltometrics"]
    assert pipelines["metrics/servicegraph"]["receivers"] == ["servicegraph"]
    cost_metric = next(m for m in cfg["connectors"]["signaltometrics"]["spans"] if m["name"] == "llm.cost")  # type: ignore[index]
    dims = {a["key"] for a in cost_metric["attributes"] + cost_metric["include_resource_attributes"]}
    assert {
        "service.name",
        "llm_gateway.tenant",
        "deployment.environment.name",
        "gen_ai.response.model",
    } <= dims
    # every dimension has a default: a span missing one is still counted (exactness), in a bucket of its own
    assert all(
        "default_value" in a for a in cost_metric["attributes"] + cost_metric["include_resource_attributes"]
    )
