"""The dashboards against real data: the native stack (Collector, sidecar, gateway, Prometheus, node-exporter)
under the load generator, plus a recorded dcgm-exporter sample served as a scrape target. Every PromQL target
of every dashboard must return series with its variables at All and at one concrete value; the Collector's
cost counter must equal the exported spans' costs."""

from __future__ import annotations

import contextlib
import functools
import http.server
import math
import random
import re
import subprocess
import sys
import threading
import time
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from tests.dashboards import model
from tests.stack_support import (
    NativeStack,
    SdkApp,
    attr,
    prom_query,
    read_jsonl,
    running_collector,
    stack_env,
    wait_for,
)

pytestmark = pytest.mark.e2e

TESTDATA = Path(__file__).parent / "testdata"
DCGM_SAMPLE = TESTDATA / "dcgm-exporter.metrics"
SLI_RULES = TESTDATA / "sli-rules"
REPO_RULES = model.REPO / "compose" / "prometheus" / "rules"
LOAD_SECONDS = 30
# priced models of the demo config plus one no price table knows: the unpriced path is exercised too
MODELS = "gpt-4o-mini,gpt-4o,claude-3-5-sonnet-latest,e2e-unpriced-model"


class _SampleHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = DCGM_SAMPLE.read_bytes() if self.path == "/metrics" else b""
        self.send_response(200 if body else 404)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@contextlib.contextmanager
def dcgm_sample_server() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SampleHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def _load_sli_rules_if_missing(stack: NativeStack) -> None:
    """The SLI recording rules come from the alerting work; until they are in compose/prometheus/rules the
    test Prometheus also loads the copy in testdata/sli-rules (and is reloaded)."""
    ours = " ".join(p.read_text() for p in REPO_RULES.glob("*.yml"))
    if "llm:availability:ratio_rate5m" in ours:
        return
    config = stack.run_dir / "prometheus" / "prometheus.yml"
    text = config.read_text()
    rules_line = f"  - {REPO_RULES}/*.yml"
    assert rules_line in text, text
    config.write_text(text.replace(rules_line, f"{rules_line}\n  - {SLI_RULES}/*.yml"))
    req = urllib.request.Request(stack.prometheus + "/-/reload", method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200


@dataclass
class LoadedStack:
    stack: NativeStack
    loadgen: str


@pytest.fixture(scope="module")
def loaded_stack(collector_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoadedStack]:
    run_dir = tmp_path_factory.mktemp("dashboards-stack")
    with dcgm_sample_server() as dcgm_port:
        env = stack_env(
            run_dir,
            OTEL_METRIC_EXPORT_INTERVAL="1000",
            # the gateway then also emits gen_ai.client.inference.* (the cache-hit SLI reads one of them)
            OTEL_SEMCONV_STABILITY_OPT_IN="gen_ai_latest_experimental",
            DCGM_EXPORTER_PORT=str(dcgm_port),
        )
        stack = NativeStack(run_dir, env)
        stack.up()
        try:
            assert "node_exporter" in stack.info["services"], "node-exporter is missing: run `make tools`"
            _load_sli_rules_if_missing(stack)
            keys = ",".join(stack.gateway_keys())
            result = subprocess.run(
                [sys.executable, "-m", "app.loadgen", "--base-url", stack.info["urls"]["gateway"],
                 "--rate", "8", "--duration", str(LOAD_SECONDS), "--pii-rate", "0.3",
                 "--feedback-share", "0.3", "--tenants-keys", keys, "--models", MODELS,
                 "--seed", "20261201", "--quiet"],
                capture_output=True, text=True, timeout=LOAD_SECONDS + 120, env=env,
            )  # fmt: skip
            assert result.returncode == 0, result.stderr[-2000:]
            _stream_and_rate_once_per_tenant_and_model(stack, stack.gateway_keys())
            yield LoadedStack(stack, result.stdout.strip().splitlines()[-1])
        finally:
            stack.down()


def _stream_and_rate_once_per_tenant_and_model(stack: NativeStack, keys: list[str]) -> None:
    """After the random load, one successful streamed call per tenant and model, and a feedback score on it:
    the panels fed only by streams (time to first token, time per output token) or by feedback (feedback
    score) then have series at every concrete variable value, whatever the seeded load and the simulated
    faults left out (of ~20 calls per combination otherwise, ~5 streams and ~6 scores, fewer after faults;
    once none of the streams of one succeeded, once none of its responses was rated). Waits until every
    such series has the two samples rate() and increase() need."""
    import httpx
    import openai

    def stream_and_rate(key: str, model_name: str) -> None:
        client = openai.OpenAI(base_url=stack.info["urls"]["gateway"] + "/v1", api_key=key, max_retries=5)
        for attempt in range(10):  # simulated faults: 429/5xx (retried by the client), broken streams
            try:
                chunks = list(
                    client.chat.completions.create(
                        model=model_name,
                        messages=[{"role": "user", "content": "Name three colours."}],
                        max_tokens=16,
                        stream=True,
                        stream_options={"include_usage": True},
                    )
                )
                if any(chunk.usage is not None for chunk in chunks):
                    break
            except (openai.APIError, httpx.HTTPError):
                if attempt == 9:
                    raise
        rated = httpx.post(
            stack.info["urls"]["gateway"] + "/v1/feedback",
            json={"response_id": chunks[0].id, "score": 1.0},
            headers={"authorization": f"Bearer {key}"},
            timeout=15,
        )
        assert rated.status_code == 200, rated.text

    with ThreadPoolExecutor(max_workers=12) as pool:
        for done in [pool.submit(stream_and_rate, key, m) for key in keys for m in MODELS.split(",")]:
            done.result()
    for metric, what in [
        ("gen_ai_server_time_to_first_token_seconds_count", "time-to-first-token"),
        ("llm_gateway_feedback_score_count", "feedback score"),
    ]:
        wait_for(
            functools.partial(prom_query, stack.prometheus, f"min(count_over_time({metric}[5m])) >= 2"),
            90,
            f"two samples of every {what} series",
            interval=2,
        )


def _label_values(prometheus: str, selector: str, label: str) -> list[str]:
    """What Grafana's label_values(selector, label) lists (Prometheus' label values API)."""
    from readback import prometheus as prom_api  # compose/native/readback.py, on sys.path via stack_support

    data = prom_api(
        prometheus, f"/api/v1/label/{label}/values", **{"match[]": selector, "start": time.time() - 3600}
    )
    return sorted(str(v) for v in data if v)


def _concrete_values(prometheus: str, dashboard: dict[str, Any]) -> dict[str, str]:
    """One real value per variable: the first (sorted) of what its label_values() query finds, as Grafana
    would list it; regex-escaped as Grafana does for =~."""
    values = {}
    for var in model.variables(dashboard):
        q = model.variable_query(var)
        if q is None:
            continue
        found = _label_values(prometheus, *q)
        assert found, f"{dashboard['uid']}: variable {var['name']} ({q}) has no values"
        values[var["name"]] = model.prom_regex_escape(found[0])
    return values


def _wait_for_rules_and_scrapes(prometheus: str) -> None:
    for expr in (
        "llm:availability:ratio_rate5m",
        "node_uname_info",
        "DCGM_FI_DEV_FB_USED",
        "llm_cost_USD_total",
        "traces_service_graph_request_total",
        "llm:cost_usd_per_hour:rate5m",
    ):
        wait_for(lambda e=expr: prom_query(prometheus, e), 90, f"{expr} in Prometheus", interval=2)  # type: ignore[misc]


@pytest.mark.parametrize("mode", ["all", "concrete"])
def test_every_promql_target_returns_series(loaded_stack: LoadedStack, mode: str) -> None:
    prometheus = loaded_stack.stack.prometheus
    _wait_for_rules_and_scrapes(prometheus)
    empty, checked = [], 0
    for d in model.dashboards().values():
        values = (
            _concrete_values(prometheus, d)
            if mode == "concrete"
            else {v["name"]: ".*" for v in model.variables(d) if v["name"] != "datasource"}
        )
        for target in model.targets(d):
            if target.datasource_type != "prometheus":
                continue
            expr = model.substitute(target.query, values)
            checked += 1
            if not prom_query(prometheus, expr):
                empty.append(f"{target.dashboard} / {target.panel}: {expr}")
    assert checked >= 80
    assert not empty, f"{len(empty)} of {checked} targets returned no series ({mode}):\n" + "\n".join(empty)


def _exported_genai_spans(traces_file: Path) -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
    """((service, environment, tenant, model, provider), span) for every span in traces.jsonl, with the
    connector's defaults for missing dimensions."""
    for req in read_jsonl(traces_file):
        for rs in req.get("resourceSpans", []):
            res = rs.get("resource", {})
            service = attr(res, "service.name") or "unknown_service"
            env = attr(res, "deployment.environment.name") or "unset"
            for ss in rs.get("scopeSpans", []):
                for span in ss.get("spans", []):
                    key = (
                        service,
                        env,
                        attr(span, "llm_gateway.tenant") or "none",
                        attr(span, "gen_ai.response.model") or "unknown",
                        attr(span, "gen_ai.provider.name") or "unknown",
                    )
                    yield key, span


def _exported_costs(traces_file: Path) -> dict[tuple[str, ...], tuple[int, list[float]]]:
    """dimensions -> (priced spans, their costs) in traces.jsonl."""
    out: dict[tuple[str, ...], tuple[int, list[float]]] = defaultdict(lambda: (0, []))
    for key, span in _exported_genai_spans(traces_file):
        usd = attr(span, "gen_ai.usage.cost")
        if usd is not None:
            n, costs = out[key]
            out[key] = (n + 1, [*costs, float(usd)])
    return dict(out)


LABELS = ("service_name", "deployment_environment_name", "llm_gateway_tenant", "gen_ai_response_model",
          "gen_ai_provider_name")  # fmt: skip


def _counter(prometheus: str, metric: str) -> dict[tuple[str, ...], float]:
    rows = prom_query(prometheus, f"sum by ({', '.join(LABELS)}) ({metric})")
    return {tuple(r["metric"].get(label, "") for label in LABELS): float(r["value"][1]) for r in rows}


def test_cost_counter_equals_the_exported_span_costs(loaded_stack: LoadedStack) -> None:
    """Per service, environment, tenant, model and provider: the Collector's llm.cost counter in the real
    Prometheus equals the sum of gen_ai.usage.cost over the spans the pipeline exported, and the priced-span
    counter equals their number (exactly)."""
    stack = loaded_stack.stack

    def settled() -> (
        tuple[dict[tuple[str, ...], tuple[int, list[float]]], dict[tuple[str, ...], float]] | None
    ):
        exported = _exported_costs(stack.traces_file)
        counts = _counter(stack.prometheus, "llm_cost_priced_spans_total")
        if exported and counts == {k: float(n) for k, (n, _) in exported.items()}:
            return exported, _counter(stack.prometheus, "llm_cost_USD_total")
        return None

    exported, usd = wait_for(settled, 90, "priced-span counts equal to the exported spans", interval=2)
    assert len({k[2] for k in exported}) >= 3, exported.keys()  # the demo's three tenants
    assert set(usd) == set(exported)
    for key, (_, costs) in exported.items():
        exact = math.fsum(costs)
        # float addition in another order may differ in the last bits only; a lost or doubled span would
        # differ by its whole cost (>= 1e-7 USD here)
        assert usd[key] == pytest.approx(exact, rel=1e-12, abs=1e-15), key
    total_spans = sum(n for n, _ in exported.values())
    assert total_spans >= 100, loaded_stack.loadgen
    # never a silent $0: the spans the sidecar could not price are counted as such, exactly
    unpriced: dict[tuple[str, ...], float] = defaultdict(float)
    for key, span in _exported_genai_spans(stack.traces_file):
        if attr(span, "gen_ai.cost.status") == "unpriced":
            unpriced[key] += 1
    assert unpriced, "the load run sent a model without a price; no span says unpriced"
    wait_for(
        lambda: _counter(stack.prometheus, "llm_cost_unpriced_spans_total") == dict(unpriced),
        30,
        f"llm_cost_unpriced_spans_total == {dict(unpriced)}",
        interval=2,
    )


def test_traceql_float_attributes_are_doubles_in_the_exported_spans(loaded_stack: LoadedStack) -> None:
    """The attributes the dashboards' TraceQL compares with float literals really are doubles on the wire
    (and the integer ones integers), so the literal rule of the static test is about the real data."""
    from tests.dashboards.querylang import parse_traceql

    compared = {c.attribute: c.kind for t in model.all_targets("tempo") for c in parse_traceql(t.query)}
    kinds: dict[str, set[str]] = defaultdict(set)
    for req in read_jsonl(loaded_stack.stack.traces_file):
        for rs in req.get("resourceSpans", []):
            for ss in rs.get("scopeSpans", []):
                for span in ss.get("spans", []):
                    for kv in span.get("attributes", []):
                        if kv["key"] in compared:
                            kinds[kv["key"]] |= set(kv.get("value", {}))
    numeric = {a: k for a, k in compared.items() if k in ("int", "float")}
    assert numeric
    for attribute, literal in numeric.items():
        wire = {"float": "doubleValue", "int": "intValue"}[literal]
        assert kinds[attribute] == {wire}, (
            f"{attribute}: compared with an {literal} literal, exported as {kinds[attribute]}"
        )


# --- the counter path alone, bit-exact -----------------------------------------------------------------


def _scrape_counter(port: int, metric: str) -> dict[tuple[str, str], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out = {}
    for line in text.splitlines():
        m = re.match(rf"^{metric}\{{(.*)\}} (\S+)$", line)
        if m:
            labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(1)))
            out[(labels.get("llm_gateway_tenant", ""), labels.get("gen_ai_response_model", ""))] = float(
                m.group(2)
            )
    return out


def test_cost_counter_is_bit_exact_and_folds_unbounded_values(collector_bin: Path, tmp_path: Path) -> None:
    """Spans whose costs are multiples of 2^-10 USD add up without rounding in any order, so the counter must
    equal the exact sum with ==: nothing lost, nothing counted twice, across many batches. A span without a
    tenant is counted as tenant none; tenant values outside the allowed shape or the allow-list
    (COST_ALLOW_TENANT) fold into _OTHER, several of them in one batch included."""
    rng = random.Random(7)
    expected: dict[tuple[str, str], Fraction] = defaultdict(Fraction)
    with running_collector(tmp_path, COST_ALLOW_TENANT="^(team-a|team-b|none)$") as col:
        app = SdkApp(f"127.0.0.1:{col.ports['otlp_grpc']}", "e2e-cost-exact", batch=True)
        try:
            for i in range(600):
                # two different malformed tenants fold into the same _OTHER series within one batch
                tenant = rng.choice(["team-a", "team-b", None, "way too long " * 10, "has a space", "team-c"])
                modelname = rng.choice(["m-1", "m-2"])
                k = rng.randrange(1, 5000)
                with app.tracer.start_as_current_span(f"chat {modelname}") as span:
                    span.set_attribute("gen_ai.usage.cost", k / 1024)
                    span.set_attribute("gen_ai.response.model", modelname)
                    if tenant is not None:
                        span.set_attribute("llm_gateway.tenant", tenant)
                # team-c has the right shape but is not in COST_ALLOW_TENANT
                key_tenant = (
                    "none"
                    if tenant is None
                    else ("_OTHER" if " " in tenant or tenant == "team-c" else tenant)
                )
                expected[(key_tenant, modelname)] += Fraction(k, 1024)
                if i % 97 == 0:
                    app.flush()
            app.flush()
        finally:
            app.shutdown()
        want = {key: float(v) for key, v in expected.items()}

        def counted() -> dict[tuple[str, str], float] | None:
            got = _scrape_counter(col.ports["prom_exporter"], "llm_cost_USD_total")
            return got if got == want else None

        wait_for(counted, 30, f"llm_cost_USD_total == {want}", interval=0.5)
    assert {t for t, _ in want} == {"team-a", "team-b", "none", "_OTHER"}
