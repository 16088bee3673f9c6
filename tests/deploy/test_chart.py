"""The Helm chart: lint, render every documented values example, validate every object against the
Kubernetes and Prometheus operator schemas, run the rendered Collector configuration through
`otelcol-llm validate`, and check the promises the chart makes (loopback sidecar, rules = compose's rules)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.chart_support import (
    CHART,
    EXAMPLES,
    KUBE_VERSION,
    REPO,
    Doc,
    collector_invocation,
    container,
    copy_chart,
    find,
    helm,
    one,
    render,
    validate_object,
)

CASES: dict[str, list[Path]] = {"defaults": [], **{p.stem: [p] for p in EXAMPLES}}
# Every combination the docs mention, beyond the example files.
CASES["everything-on"] = []
EVERYTHING = {
    "loadBalancer.enabled": "true",
    "loadBalancer.resolver": "dns",
    "app.enabled": "true",
    "dcgmExporter.enabled": "true",
    "ingestAuth.enabled": "true",
    "ingestAuth.token": "t0ken",
    "gatewayTier.sidecar.config.redaction.placeholder_format": "[{type}]",
}


def _render(case: str) -> list[Doc]:
    return render(CASES[case], EVERYTHING if case == "everything-on" else None)


def _gateway_tier(docs: list[Doc]) -> Doc:
    hits = [
        d
        for d in docs
        if d["kind"] in ("Deployment", "StatefulSet") and d["metadata"]["name"].endswith("-collector")
    ]
    assert len(hits) == 1
    return hits[0]


def test_documented_examples_exist() -> None:
    assert {p.stem for p in EXAMPLES} >= {"minimal", "ha", "gpu", "existing-secrets"}


@pytest.mark.parametrize("case", sorted(CASES))
def test_helm_lint(case: str) -> None:
    args = ["lint", str(CHART), "--strict", "--kube-version", KUBE_VERSION]
    for path in CASES[case]:
        args += ["-f", str(path)]
    for k, v in (EVERYTHING if case == "everything-on" else {}).items():
        args += ["--set", f"{k}={v}"]
    helm(*args)


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_rendered_object_matches_its_schema(case: str) -> None:
    docs = _render(case)
    assert docs
    failures = []
    for doc in docs:
        try:
            validate_object(doc)
        except Exception as exc:  # collect them all, report together
            detail = getattr(exc, "message", None) or str(exc)
            path = ".".join(map(str, getattr(exc, "absolute_path", []) or []))
            failures.append(f"{doc['kind']}/{doc['metadata']['name']} {path}: {detail[:600]}")
    assert not failures, "\n".join(failures)


def test_schema_validation_catches_mistakes() -> None:
    """The validators are not rubber stamps: a typo in a Deployment and in a ServiceMonitor is refused."""
    docs = _render("defaults")
    deploy = json.loads(json.dumps(one(docs, "Deployment", "-collector")))
    deploy["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    with pytest.raises(Exception, match="imagePullPolcy"):
        validate_object(deploy)
    sm = json.loads(json.dumps(one(docs, "ServiceMonitor", "-collector")))
    sm["spec"]["endpoints"][0]["honourLabels"] = True
    with pytest.raises(Exception, match="honourLabels"):
        validate_object(sm)
    sm = json.loads(json.dumps(one(docs, "ServiceMonitor", "-collector")))
    sm["spec"]["endpoints"][0]["interval"] = "every 15 seconds"
    with pytest.raises(Exception, match="every 15 seconds"):
        validate_object(sm)


@pytest.mark.parametrize("case", sorted(CASES))
def test_rendered_collector_configs_pass_otelcol_validate(
    case: str, collector_bin: Path, tmp_path: Path
) -> None:
    docs = _render(case)
    workloads = [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")]
    collectors = [
        w
        for w in workloads
        if any(c["name"] == "collector" for c in w["spec"]["template"]["spec"]["containers"])
    ]
    assert collectors
    for w in collectors:
        argv, env = collector_invocation(docs, w, tmp_path / w["metadata"]["name"])
        assert argv[0] == "/usr/local/bin/otelcol-llm"
        run_env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), **env}
        # The k8s resolver builds its API client from the pod's service account; outside a pod, `validate`
        # needs some client configuration (it connects to nothing: validate does not start components).
        run_env["KUBECONFIG"] = str(_offline_kubeconfig(tmp_path))
        result = subprocess.run(
            [str(collector_bin), "validate", *argv[1:]],
            env=run_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, f"{w['metadata']['name']}: {argv}\n{result.stdout}\n{result.stderr}"


def _offline_kubeconfig(tmp_path: Path) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "none", "cluster": {"server": "https://127.0.0.1:9"}}],
                "users": [{"name": "none", "user": {"token": "none"}}],
                "contexts": [{"name": "none", "context": {"cluster": "none", "user": "none"}}],
                "current-context": "none",
            }
        )
    )
    return path


def test_otelcol_validate_rejects_a_broken_render(collector_bin: Path, tmp_path: Path) -> None:
    docs = render(sets={"loadBalancer.enabled": "true"})
    lb = one(docs, "Deployment", "-loadbalancer")
    argv, env = collector_invocation(docs, lb, tmp_path)
    text = (tmp_path / "resolver.yaml").read_text().replace("k8s:", "kubernetes:")
    run_env = {**os.environ, **env, "KUBECONFIG": str(_offline_kubeconfig(tmp_path))}
    ok = subprocess.run(
        [str(collector_bin), "validate", *argv[1:]], env=run_env, capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    (tmp_path / "resolver.yaml").write_text(text)
    result = subprocess.run(
        [str(collector_bin), "validate", *argv[1:]], env=run_env, capture_output=True, text=True
    )
    assert result.returncode != 0 and "kubernetes" in result.stderr


@pytest.mark.parametrize("case", sorted(CASES))
def test_sidecar_loop_stays_inside_the_pod(case: str) -> None:
    docs = _render(case)
    gw = _gateway_tier(docs)
    col, side = container(gw, "collector"), container(gw, "sidecar")
    env = {e["name"]: e.get("value") for e in col["env"]}
    assert env["INTERNAL_OTLP_ENDPOINT"] == "127.0.0.1:14317"
    assert env["SIDECAR_ENDPOINT"] == "127.0.0.1:4319"
    assert "--listen=127.0.0.1:4319" in side["args"] and "--forward=127.0.0.1:14317" in side["args"]
    assert not side.get("ports")
    for c in (col, side):
        assert {p["containerPort"] for p in c.get("ports", [])}.isdisjoint({4319, 14317})
    for svc in find(docs, "Service"):
        ports = {p["port"] for p in svc["spec"]["ports"]} | {
            p.get("targetPort") for p in svc["spec"]["ports"]
        }
        assert ports.isdisjoint({4319, 14317, "4319", "14317"}), svc["metadata"]["name"]


def _rule_groups_from_files(paths: list[Path]) -> list[Any]:
    groups = []
    for p in paths:
        groups.extend(yaml.safe_load(p.read_text())["groups"])
    return sorted(groups, key=lambda g: json.dumps(g, sort_keys=True))


def test_prometheus_rules_are_exactly_compose_rules() -> None:
    compose_files = sorted(
        [
            *(REPO / "compose/prometheus/rules").glob("*.yml"),
            *(REPO / "compose/prometheus/rules").glob("*.yaml"),
        ]
    )
    assert compose_files
    docs = render()
    rules = find(docs, "PrometheusRule")
    assert len(rules) == len(compose_files)
    rendered = sorted(
        (g for r in rules for g in r["spec"]["groups"]), key=lambda g: json.dumps(g, sort_keys=True)
    )
    assert rendered == _rule_groups_from_files(compose_files)
    for r in rules:
        assert r["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    # the release label is a value
    relabelled = render(sets={"prometheusRule.labels.release": "monitoring"})
    assert {r["metadata"]["labels"]["release"] for r in find(relabelled, "PrometheusRule")} == {"monitoring"}


def test_rule_sets_compared_are_not_vacuous(tmp_path: Path) -> None:
    """A rule changed in the chart's copy makes the rendered set differ from compose's."""
    chart = copy_chart(tmp_path / "chart")
    copy_path = sorted((chart / "files/prometheus/rules").glob("*.yml"))[0]
    data = yaml.safe_load(copy_path.read_text())
    data["groups"][0]["rules"][0]["for"] = "17m"
    copy_path.write_text(yaml.safe_dump(data))
    rendered = sorted(
        (g for r in find(render(chart=chart), "PrometheusRule") for g in r["spec"]["groups"]),
        key=lambda g: json.dumps(g, sort_keys=True),
    )
    compose = sorted((REPO / "compose/prometheus/rules").glob("*.yml"))
    assert rendered != _rule_groups_from_files(compose)


def test_service_monitors_keep_compose_job_names_and_release_label() -> None:
    docs = render(sets={"loadBalancer.enabled": "true", "serviceMonitor.labels.release": "prom"})
    jobs = set()
    for sm in find(docs, "ServiceMonitor"):
        assert sm["metadata"]["labels"]["release"] == "prom"
        for ep in sm["spec"]["endpoints"]:
            jobs |= {r["replacement"] for r in ep.get("relabelings", []) if r.get("targetLabel") == "job"}
    prom = yaml.safe_load((REPO / "compose/prometheus/prometheus.yml").read_text())
    compose_jobs = {j["job_name"] for j in prom["scrape_configs"]}
    assert {"otelcol", "otel-collector-exporter"} <= jobs <= compose_jobs | {"dcgm-exporter"}
    # the exporter endpoint honours the job/instance derived from service.name, as compose does
    gw = one(docs, "ServiceMonitor", "-collector")
    exporter = next(ep for ep in gw["spec"]["endpoints"] if ep["port"] == "prom-exporter")
    assert exporter["honorLabels"] is True


def _dashboards(chart: Path) -> list[Path]:
    return sorted((chart / "files/grafana/dashboards").glob("*.json"))


def test_one_dashboard_configmap_per_compose_dashboard(tmp_path: Path) -> None:
    chart = copy_chart(tmp_path / "chart")
    dash_dir = chart / "files/grafana/dashboards"
    dash_dir.mkdir(parents=True, exist_ok=True)
    # the real dashboards (whatever exists) plus two more, to prove the glob picks up new files
    extra = {
        "llm_cost.json": {"title": "LLM cost", "uid": "llm-cost", "panels": [{"expr": 'sum(x{a="{{b}}"})'}]},
        "pipeline-health.json": {"title": "Pipeline health", "uid": "pipeline-health", "panels": []},
    }
    for name, body in extra.items():
        (dash_dir / name).write_text(json.dumps(body, indent=2))
    docs = render(chart=chart, sets={"grafana.namespace": "monitoring"})
    cms = [
        d for d in find(docs, "ConfigMap") if d["metadata"].get("labels", {}).get("grafana_dashboard") == "1"
    ]
    files = _dashboards(chart)
    assert len(cms) == len(files) >= 2
    by_key = {k: v for cm in cms for k, v in cm["data"].items()}
    for f in files:
        assert json.loads(by_key[f.name]) == json.loads(f.read_text())
        assert by_key[f.name] == f.read_text().rstrip("\n")
    for cm in cms:
        assert cm["metadata"]["namespace"] == "monitoring"
        assert cm["metadata"]["annotations"]["grafana_folder"] == "LLM observability"
    # and the real chart ships exactly compose's dashboards
    real = [
        d for d in find(render(), "ConfigMap") if d["metadata"].get("labels", {}).get("grafana_dashboard")
    ]
    assert len(real) == len(sorted((REPO / "compose/grafana/dashboards").glob("**/*.json")))


def test_datasources_are_compose_datasources_with_cluster_urls() -> None:
    docs = render(sets={"backends.tempo.queryUrl": "http://tempo.obs:3200"})
    cm = one(docs, "ConfigMap", "-datasources")
    assert cm["metadata"]["labels"]["grafana_datasource"] == "1"
    rendered = [ds for text in cm["data"].values() for ds in yaml.safe_load(text)["datasources"]]
    compose = yaml.safe_load((REPO / "compose/grafana/provisioning/datasources/datasources.yaml").read_text())
    assert [d["uid"] for d in rendered] == [d["uid"] for d in compose["datasources"]]
    urls = {d["type"]: d["url"] for d in rendered}
    assert urls == {
        "prometheus": "http://kube-prometheus-stack-prometheus.monitoring.svc.cluster.local:9090",
        "tempo": "http://tempo.obs:3200",
        "loki": "http://loki-gateway.monitoring.svc.cluster.local",
    }
    for got, want in zip(rendered, compose["datasources"], strict=True):
        assert {k: v for k, v in got.items() if k != "url"} == {k: v for k, v in want.items() if k != "url"}


def test_backend_endpoints_default_to_the_upstream_charts_service_names() -> None:
    gw = one(render(), "Deployment", "-collector")
    env = {e["name"]: e.get("value") for e in container(gw, "collector")["env"]}
    assert env["TEMPO_OTLP_ENDPOINT"] == "tempo.monitoring.svc.cluster.local:4317"
    assert env["LOKI_OTLP_ENDPOINT"] == "http://loki-gateway.monitoring.svc.cluster.local/otlp"


def test_loadbalancer_routes_over_the_gateway_tier_headless_service() -> None:
    for resolver in ("k8s", "dns"):
        docs = render(sets={"loadBalancer.enabled": "true", "loadBalancer.resolver": resolver})
        headless = one(docs, "Service", "-collector-headless")
        assert headless["spec"]["clusterIP"] == "None"
        cm = one(docs, "ConfigMap", "-loadbalancer")
        res = yaml.safe_load(cm["data"]["resolver.yaml"])["exporters"]
        lb = yaml.safe_load(cm["data"]["loadbalancer.yaml"])["exporters"]
        assert lb["loadbalancing/traces"]["routing_key"] == "traceID"
        for exp in ("loadbalancing/traces", "loadbalancing/metrics"):
            r = res[exp]["resolver"]
            if resolver == "k8s":
                assert r["k8s"]["service"] == f"{headless['metadata']['name']}.llm"
            else:
                assert r["dns"]["hostname"] == f"{headless['metadata']['name']}.llm.svc.cluster.local"
        roles = find(docs, "Role")
        if resolver == "k8s":
            assert roles[0]["rules"] == [
                {
                    "apiGroups": ["discovery.k8s.io"],
                    "resources": ["endpointslices"],
                    "verbs": ["get", "list", "watch"],
                }
            ]
        else:
            assert not roles


def test_network_policies_with_the_loadbalancing_tier() -> None:
    docs = render(sets={"loadBalancer.enabled": "true", "app.enabled": "true"})
    gw = one(docs, "NetworkPolicy", "-collector")
    otlp_rule = next(r for r in gw["spec"]["ingress"] if {"port": 4317, "protocol": "TCP"} in r["ports"])
    # only the load-balancing tier reaches the gateway tier's OTLP ports
    assert [p["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for p in otlp_rule["from"]] == [
        "loadbalancer"
    ]
    lb = one(docs, "NetworkPolicy", "-loadbalancer")
    sources = lb["spec"]["ingress"][0]["from"]
    assert any("namespaceSelector" in s for s in sources)
    app = one(docs, "NetworkPolicy", "-gateway")
    assert app["spec"]["ingress"] == []


@pytest.mark.parametrize("case", ["defaults", "existing-secrets", "ha"])
def test_secrets_and_existing_secrets(case: str) -> None:
    docs = _render(case)
    gw = _gateway_tier(docs)
    env = {e["name"]: e for e in container(gw, "collector")["env"]}
    secrets = {s["metadata"]["name"] for s in find(docs, "Secret")}
    if case == "defaults":
        assert "OTLP_INGEST_TOKEN" not in env and not secrets
        return
    ref = env["OTLP_INGEST_TOKEN"]["valueFrom"]["secretKeyRef"]
    if case == "existing-secrets":
        assert ref == {"name": "otlp-ingest", "key": "token"}
        assert not secrets  # nothing secret rendered
        app = one(docs, "Deployment", "-gateway")
        assert container(app, "gateway")["envFrom"] == [{"secretRef": {"name": "gateway-keys"}}]
    else:
        assert ref["name"] in secrets


def test_ingest_auth_without_a_token_fails_to_render() -> None:
    args = ["template", "x", str(CHART), "--kube-version", KUBE_VERSION, "--set", "ingestAuth.enabled=true"]
    result = helm(*args, check=False)
    assert result.returncode != 0 and "ingestAuth.token or ingestAuth.existingSecret" in result.stderr


def test_statefulset_keeps_the_queue_on_a_pvc() -> None:
    docs = _render("ha")
    sts = one(docs, "StatefulSet", "-collector")
    assert sts["spec"]["serviceName"].endswith("-collector-headless")
    assert [t["metadata"]["name"] for t in sts["spec"]["volumeClaimTemplates"]] == ["queue"]
    vols = {v["name"] for v in sts["spec"]["template"]["spec"]["volumes"]}
    assert "queue" not in vols  # from the claim template, not an emptyDir
    hpa = one(docs, "HorizontalPodAutoscaler", "-collector")
    assert hpa["spec"]["scaleTargetRef"]["kind"] == "StatefulSet"


def test_gpu_example_runs_dcgm_exporter_on_gpu_nodes() -> None:
    docs = _render("gpu")
    ds = one(docs, "DaemonSet", "-dcgm-exporter")
    spec = ds["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    sm = one(docs, "ServiceMonitor", "-dcgm-exporter")
    assert sm["spec"]["endpoints"][0]["port"] == "metrics"


@pytest.mark.parametrize("case", sorted(CASES))
def test_rendered_app_and_sidecar_configs_pass_their_own_validation(case: str, tmp_path: Path) -> None:
    """The gateway and sidecar YAML the chart renders are accepted by the programs' own config parsers."""
    from app.config import ConfigError, parse_config

    checked = 0
    for cm in find(_render(case), "ConfigMap"):
        data = cm.get("data", {})
        if "gateway.yaml" in data:
            raw = yaml.safe_load(data["gateway.yaml"])
            env = {p.get("api_key_env", ""): "placeholder" for p in raw.get("providers", {}).values()}
            parse_config(raw, env=env)
            with pytest.raises(ConfigError):
                parse_config({**raw, "routs": []}, env=env)
            checked += 1
        if "sidecar.yaml" in data:
            code = "import sys; from processors.config import load_config; load_config(sys.argv[1])"
            good, bad = tmp_path / "sidecar.yaml", tmp_path / "sidecar-bad.yaml"
            good.write_text(data["sidecar.yaml"])
            bad.write_text(data["sidecar.yaml"] + "\nserver:\n  max_mesage_bytes: 1\n")
            ok = subprocess.run([sys.executable, "-c", code, str(good)], capture_output=True, text=True)
            assert ok.returncode == 0, ok.stderr
            refused = subprocess.run([sys.executable, "-c", code, str(bad)], capture_output=True, text=True)
            assert refused.returncode != 0
            checked += 1
    expected = {"everything-on": 1, "gpu": 1, "existing-secrets": 1}.get(case, 0)  # configs rendered
    assert checked == expected


def test_values_schema_is_current_and_refuses_unknown_values() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "deploy/helm/make_values_schema.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    for bad, needle in (
        ("gatewayTier.replica=3", "additional properties 'replica' not allowed"),
        ("gatewayTier.kind=ReplicaSet", "value must be one of 'Deployment', 'StatefulSet'"),
        ("loadBalancer.enabled=yes", "/loadBalancer/enabled"),
    ):
        args = ["template", "x", str(CHART), "--kube-version", KUBE_VERSION, "--set-string", bad]
        out = helm(*args, check=False)
        assert out.returncode != 0 and needle in out.stderr, (bad, out.stderr)


def test_gateway_tier_runs_the_config_the_scale_out_test_proves() -> None:
    docs = render()
    gw = _gateway_tier(docs)
    args = container(gw, "collector")["args"]
    assert args[:1] == ["--config=/conf/config.yaml"]
    assert not any("durable" in a for a in args)
    cm = one(docs, "ConfigMap", "-collector")
    assert cm["data"]["config.yaml"] == (REPO / "otel-collector/config.yaml").read_text().rstrip("\n")
