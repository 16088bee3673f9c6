"""End to end: `python -m app` exporting real OTLP/gRPC, driven by `python -m app.loadgen`."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.app.conftest import REPO, GatewayProcess


def _load_sink() -> ModuleType:
    path = REPO / "bench" / "gateway" / "otlp_sink.py"
    spec = importlib.util.spec_from_file_location("gateway_otlp_sink", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _attrs(kvs: Any) -> dict[str, Any]:
    out = {}
    for kv in kvs:
        kind = kv.value.WhichOneof("value")
        out[kv.key] = getattr(kv.value, kind) if kind else None
    return out


@pytest.mark.e2e
def test_gateway_process_exports_otlp_under_loadgen_traffic(tmp_path: Path) -> None:
    sink = _load_sink().OtlpSink(keep=True).start()
    gateway = None
    try:
        gateway = GatewayProcess(
            [],
            {
                "OTEL_SDK_DISABLED": "false",
                "OTEL_EXPORTER_OTLP_ENDPOINT": sink.endpoint,
                "OTEL_EXPORTER_OTLP_HEADERS": "Authorization=Bearer%20ingest-token-123",
                "OTEL_SERVICE_NAME": "gateway-e2e",
                "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=e2e",
                "OTEL_BSP_SCHEDULE_DELAY": "200",
                "OTEL_BLRP_SCHEDULE_DELAY": "200",
                "OTEL_METRIC_EXPORT_INTERVAL": "500",
                "GATEWAY_API_KEYS": "k-a:team-a,k-b:team-b",
                "SIMULATED_ERROR_RATE": "0.1",
                "SIMULATED_TIMEOUT_AFTER_S": "0.2",
            },
        )
        load = subprocess.run(
            [
                sys.executable,
                "-m",
                "app.loadgen",
                "--base-url",
                gateway.base_url,
                "--rate",
                "25",
                "--duration",
                "2",
                "--tenants-keys",
                "k-a,k-b",
                "--pii-rate",
                "0.5",
                "--stream-share",
                "0.5",
                "--seed",
                "5",
                "--feedback-share",
                "0.3",
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert load.returncode == 0, load.stderr
        summary = json.loads(load.stdout.strip().splitlines()[-1])
        assert "[loadgen]" in load.stderr  # progress line
    finally:
        out, err = gateway.stop() if gateway else ("", "")
        # Give the final flush on shutdown a moment to land in the sink.
        time.sleep(0.5)
        sink.stop()

    assert summary["requests"] > 20
    assert summary["ok"] > 0 and summary["streamed"] > 0 and summary["pii_prompts"] > 0
    assert summary["requests"] == summary["ok"] + sum(summary["errors"].values())
    assert summary["prompt_tokens"] > 0 and summary["completion_tokens"] > 0

    received = sink.received
    assert received.authorization == {"Bearer ingest-token-123"}
    chat_spans = [s for s in sink.spans() if s.name.startswith("chat ")]
    assert len(chat_spans) == summary["requests"]  # one GenAI span per model call, failures included
    resource = _attrs(received.trace_requests[0].resource_spans[0].resource.attributes)
    assert resource["service.name"] == "gateway-e2e"
    assert resource["deployment.environment.name"] == "e2e"
    tenants = Counter(_attrs(s.attributes)["llm_gateway.tenant"] for s in chat_spans)
    assert set(tenants) == {"team-a", "team-b"}
    ok_tokens = sum(
        _attrs(s.attributes).get("gen_ai.usage.output_tokens", 0)
        for s in chat_spans
        if "error.type" not in _attrs(s.attributes)
    )
    assert ok_tokens >= summary["completion_tokens"]  # the loadgen only counts responses it fully read
    metric_names = {
        m.name
        for req in received.metric_requests
        for rm in req.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
    }
    for name in (
        "gen_ai.client.token.usage",
        "gen_ai.client.operation.duration",
        "gen_ai.server.time_to_first_token",
        "http.server.request.duration",
        "llm_gateway.errors",
        "llm_gateway.active_streams",
    ):
        assert name in metric_names, name
    assert received.logs >= summary["requests"]
    # The JSON request log on stderr carries trace ids too.
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    requests = [r for r in lines if r.get("event.name") == "llm_gateway.request"]
    assert requests and all(len(r["trace_id"]) == 32 for r in requests)
    assert out == ""
