"""`make demo`: start the native stack, drive traffic through it, print what came out, stop it.

Traffic comes from the gateway's load generator (app.loadgen) when app/ is present, otherwise from a
synthetic OpenTelemetry SDK application. The summary is read back from the Collector's export files
and from Prometheus — nothing in it is computed from what was sent.

Environment: DEMO_RATE (requests/s, default 8), DEMO_DURATION (seconds, default 30), DEMO_PII_RATE
(default 0.2), DEMO_KEEP=1 (leave the stack running), plus every variable of stack.py.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import readback
import report
import stack
from readback import attr, exported_log_records, exported_spans
from sdk_app import SdkApp


def _scalar(base: str, promql: str) -> float | None:
    result = readback.query(base, promql)
    return float(result[0]["value"][1]) if result else None


def drive_gateway(settings: stack.Settings, rate: float, duration: float, pii_rate: float) -> dict[str, Any]:
    config_path = Path(os.environ.get("GATEWAY_CONFIG") or stack.REPO / "app" / "demo-config.yaml")
    keys = [k for t in (yaml.safe_load(config_path.read_text()) or {}).get("tenants", []) for k in t["keys"]]
    cmd = [
        sys.executable,
        "-m",
        "app.loadgen",
        "--base-url",
        settings.url("app"),
        "--rate",
        str(rate),
        "--duration",
        str(duration),
        "--pii-rate",
        str(pii_rate),
        "--stream-share",
        "0.3",
        "--seed",
        "7",
        "--feedback-share",
        "0.2",
    ]
    if keys:
        cmd += ["--tenants-keys", ",".join(keys)]
    cmd += ["--pii-values-out", str(pii_values_path(settings))]
    print(
        f"==> load generator: {rate:g} req/s for {duration:g}s, {pii_rate:.0%} of prompts carry PII",
        flush=True,
    )
    result = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True)
    lines = [ln for ln in result.stdout.splitlines() if ln.strip().startswith("{")]
    return dict(json.loads(lines[-1])) if lines else {}


def pii_values_path(settings: stack.Settings) -> Path:
    """Where the load generator lists every PII value it injected, for the report's privacy check."""
    return settings.run_dir / "loadgen-pii-values.jsonl"


def write_report(settings: stack.Settings, load: dict[str, Any], start: float) -> dict[str, Path] | None:
    files = stack.export_files(settings.run_dir)
    try:
        data = report.gather(
            settings.url("prometheus"),
            settings.url("prom_exporter"),
            files["traces"],
            files["logs"],
            pii_values_path(settings),
            start,
            time.time(),
            load,
        )
        return report.write(data, settings.run_dir)
    except (OSError, KeyError, ValueError, RuntimeError) as exc:
        print(f"error: the report could not be written: {exc}", file=sys.stderr)
        return None


def drive_synthetic(settings: stack.Settings, count: int) -> dict[str, Any]:
    """No gateway yet: a plain OpenTelemetry SDK app sends GenAI-shaped spans, logs and metrics."""
    app = SdkApp(
        f"127.0.0.1:{settings.ports['otlp_grpc']}", "demo-synthetic-app", export_interval_ms=2000, batch=True
    )
    log = app.logger
    duration = app.meter.create_histogram("gen_ai.client.operation.duration", unit="s")
    tracer = app.tracer
    print(
        f"==> no gateway (app/) yet: sending {count} synthetic GenAI requests with the OTel SDK", flush=True
    )
    for i in range(count):
        model = ("gpt-4o-mini", "gpt-4o", "claude-3-5-haiku-latest")[i % 3]
        with tracer.start_as_current_span(f"chat {model}") as span:
            span.set_attributes(
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "anthropic" if "claude" in model else "openai",
                    "gen_ai.request.model": model,
                    "gen_ai.response.model": model,
                    "gen_ai.usage.input_tokens": 200 + i,
                    "gen_ai.usage.output_tokens": 50 + i,
                }
            )
            if i % 5 == 0:
                span.set_attribute(
                    "gen_ai.input.messages",
                    json.dumps(
                        [
                            {
                                "role": "user",
                                "parts": [{"type": "text", "content": f"mail me at user{i}@example.com"}],
                            }
                        ]
                    ),
                )
            duration.record(0.2 + i % 10 / 10, {"gen_ai.request.model": model})
            log.info("synthetic request %d for %s", i, model)
        time.sleep(0.05)
    app.shutdown()
    return {"requests": count}


def wait_until_settled(settings: stack.Settings, seconds: float = 40) -> None:
    """Until the exported span count stops growing and Prometheus has scraped the latest metrics."""
    traces = stack.export_files(settings.run_dir)["traces"]
    last, stable_since, deadline = -1, time.monotonic(), time.monotonic() + seconds
    while time.monotonic() < deadline:
        size = traces.stat().st_size if traces.exists() else 0
        if size != last:
            last, stable_since = size, time.monotonic()
        elif time.monotonic() - stable_since > 12:  # > metric export (5s) + scrape (5s) intervals
            return
        time.sleep(1)


def summarise(settings: stack.Settings, load: dict[str, Any]) -> bool:
    prom = settings.url("prometheus")
    files = stack.export_files(settings.run_dir)
    spans = exported_spans(files["traces"])
    logs = exported_log_records(files["logs"])
    genai = [s for s in spans if attr(s, "gen_ai.operation.name")]
    priced = [s for s in genai if attr(s, "gen_ai.cost.status") == "priced"]
    unpriced = [s for s in genai if attr(s, "gen_ai.cost.status") == "unpriced"]
    cost = sum(float(attr(s, "gen_ai.usage.cost") or 0) for s in genai)
    redacted_types: collections.Counter[str] = collections.Counter()
    redactions = 0
    for item in [*spans, *logs]:
        n = attr(item, "pii.redacted.count")
        if n:
            redactions += int(n)
            redacted_types.update(attr(item, "pii.redacted.types") or [])
    series = readback.prometheus(
        prom,
        "/api/v1/series",
        **{"match[]": '{__name__=~".+", job!~"prometheus|alertmanager|otelcol"}', "start": time.time() - 600},
    )
    metric_names = sorted({s["__name__"] for s in series})

    print("\n==================== llm-otel-pipeline demo summary ====================")
    if load:
        print(f"traffic         {json.dumps(load, sort_keys=True)}")
    print(f"spans exported  {len(spans)} ({len(genai)} GenAI spans)  -> {files['traces']}")
    print(f"logs exported   {len(logs)}  -> {files['logs']}")
    print(f"metrics         {len(series)} series, {len(metric_names)} metric names in Prometheus ({prom})")
    for name in [n for n in metric_names if n.startswith(("gen_ai_", "sidecar_", "traces_span"))][:12]:
        print(f"                  {name}")
    if settings.sidecar_enabled:
        print(f"cost            ${cost:.6f} over {len(priced)} priced spans; {len(unpriced)} unpriced")
        prom_cost = _scalar(prom, 'sum({__name__=~"sidecar_gen_ai_cost.*_total"})')
        if prom_cost is not None:
            print(f"                ${prom_cost:.6f} in Prometheus (sidecar cost counter)")
        print(f"redactions      {redactions} values: {dict(redacted_types.most_common())}")
    else:
        print("cost/redaction  the sidecar is not part of this stack yet: spans pass through unchanged")

    linked = _exemplar_trace(prom, {s["traceId"] for s in spans})
    if linked:
        metric, trace_id = linked
        names = [s["name"] for s in spans if s["traceId"] == trace_id]
        print(f"exemplar        {metric} -> trace_id {trace_id}")
        print(
            f"                that trace in traces.jsonl: {len(names)} spans: {', '.join(sorted(names)[:6])}"
        )
    else:
        print("exemplar        none found that points to an exported trace")
    print("Tempo, Loki and Grafana are not part of the native stack: they need Docker (compose/README.md);")
    print("here traces and logs go to the Collector's file exporter instead.")
    print("=========================================================================")
    return bool(spans) and bool(logs) and bool(series) and linked is not None


def _exemplar_trace(prom: str, exported: set[str]) -> tuple[str, str] | None:
    for metric in (
        "gen_ai_client_operation_duration_seconds_bucket",
        "traces_span_metrics_duration_seconds_bucket",
        "http_server_request_duration_seconds_bucket",
    ):
        for ex in readback.exemplars(prom, metric):
            trace_id = ex["labels"].get("trace_id")
            if trace_id in exported:
                return metric, trace_id
    return None


def main() -> int:
    settings = stack.Settings.from_env(dict(os.environ))
    rate = float(os.environ.get("DEMO_RATE", "8"))
    duration = float(os.environ.get("DEMO_DURATION", "30"))
    pii_rate = float(os.environ.get("DEMO_PII_RATE", "0.2"))
    keep = os.environ.get("DEMO_KEEP") == "1"
    try:
        stack.up(settings, timeout=90)
    except stack.StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    ok = False
    try:
        pii_values_path(settings).unlink(missing_ok=True)
        start = time.time()
        if "app" in settings.services:
            load = drive_gateway(settings, rate, duration, pii_rate)
        else:
            load = drive_synthetic(settings, int(rate * duration))
        print("==> waiting for the last batches to be exported and scraped", flush=True)
        wait_until_settled(settings)
        ok = summarise(settings, load)
        paths = write_report(settings, load, start)
        if paths:
            leaked = json.loads(paths["json"].read_text())["pii_check"].get("found_in_exports", 0)
            print(f"==> report: {paths['html']}\n            {paths['md']}\n            {paths['json']}")
            print(f"    PII values the load generator injected, found in any export: {leaked}")
            ok = ok and leaked == 0
        else:
            ok = False
    finally:
        if keep:
            print(
                f"==> DEMO_KEEP=1: the stack keeps running; `make down RUN_DIR={settings.run_dir}` stops it"
            )
        else:
            stack.down(settings)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
