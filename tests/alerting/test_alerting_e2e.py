"""Alerts end to end on the native stack: the real gateway, Collector, sidecar, Prometheus (evaluating a
test-only copy of the shipped rules with `for:` capped at 5 s) and Alertmanager (the shipped routes and
templates, its PagerDuty/Slack endpoints and webhook pointed at a sink this test runs).

1. Upstream errors injected through the gateway (X-Simulated-Fault: 500) -> HighErrorRate fires in Prometheus
   -> Alertmanager routes it (severity=page) to PagerDuty -> the sink receives the Events API v2 payload with
   the runbook URL.
2. The sidecar is stopped while traffic continues -> SidecarDown fires and is delivered; SidecarSilent fires
   too and Alertmanager holds it back, inhibited by SidecarDown.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.request
import xmlrpc.client
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.alerting.render import render_test_alertmanager, render_test_rules
from tests.alerting.rules import RUNBOOK_BASE
from tests.stack_support import NativeStack, prom_query, stack_env, wait_for
from tests.stack_support import native_stack as stack_module

pytestmark = pytest.mark.e2e


class Sink:
    """An HTTP server on a free loopback port that records every POST (path, JSON body)."""

    def __init__(self) -> None:
        self.received: list[tuple[str, Any]] = []
        lock = threading.Lock()
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with lock:
                    received.append((self.path, json.loads(body or b"null")))
                self.send_response(202)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def pagerduty(self, alertname: str) -> list[dict[str, Any]]:
        return [
            body
            for path, body in list(self.received)
            if path == "/pagerduty" and alertname in body["payload"]["summary"]
        ]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Traffic:
    """Chat completions against the gateway from a background thread; `fault_share` of them carry an
    injected upstream 500 (the simulated provider honours X-Simulated-Fault)."""

    def __init__(self, base_url: str, api_key: str) -> None:
        self.fault_share = 0.0
        self.sent = 0
        self._stop = threading.Event()
        self._client = httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=20
        )
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
        while not self._stop.is_set():
            faulty = (self.sent % 10) < self.fault_share * 10
            headers = {"X-Simulated-Fault": "500"} if faulty else {}
            with contextlib.suppress(httpx.HTTPError):  # a failed request is what this traffic is for
                self._client.post("/v1/chat/completions", json=body, headers=headers)
            self.sent += 1
            self._stop.wait(0.1)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        self._client.close()


@pytest.fixture(scope="module")
def sink() -> Iterator[Sink]:
    s = Sink()
    yield s
    s.close()


@pytest.fixture(scope="module")
def alerting_stack(
    collector_bin: Path, tmp_path_factory: pytest.TempPathFactory, sink: Sink
) -> Iterator[NativeStack]:
    work = tmp_path_factory.mktemp("alerting")
    rules = render_test_rules(work / "rules", max_for="5s")
    am_config = render_test_alertmanager(work / "alertmanager", sink.url)
    run_dir = work / "run"
    env = stack_env(
        run_dir,
        PROMETHEUS_RULES_DIR=str(rules),
        ALERTMANAGER_CONFIG=str(am_config),
        OTEL_METRIC_EXPORT_INTERVAL="1000",
    )
    stack = NativeStack(run_dir, env)
    stack.up()
    try:
        yield stack
    finally:
        stack.down()


@pytest.fixture(scope="module")
def traffic(alerting_stack: NativeStack) -> Iterator[Traffic]:
    t = Traffic(str(alerting_stack.info["urls"]["gateway"]), alerting_stack.gateway_keys()[0])
    yield t
    t.stop()


def _firing(stack: NativeStack, alertname: str) -> list[dict[str, Any]]:
    return list(prom_query(stack.prometheus, f'ALERTS{{alertname="{alertname}", alertstate="firing"}}'))


def _alertmanager_alerts(stack: NativeStack, alertname: str) -> list[dict[str, Any]]:
    url = f"{stack.info['urls']['alertmanager']}/api/v2/alerts?filter=alertname%3D%22{alertname}%22"
    with urllib.request.urlopen(url, timeout=5) as resp:
        return list(json.load(resp))


def test_injected_upstream_errors_page_with_the_runbook(
    alerting_stack: NativeStack, traffic: Traffic, sink: Sink
) -> None:
    traffic.fault_share = 0.5
    started = time.monotonic()
    firing = wait_for(
        lambda: _firing(alerting_stack, "HighErrorRate"), 120, "HighErrorRate firing in Prometheus"
    )
    assert firing[0]["metric"]["job"] == "llm-gateway"
    assert firing[0]["metric"]["severity"] == "page"
    pages = wait_for(lambda: sink.pagerduty("HighErrorRate"), 60, "HighErrorRate delivered to PagerDuty")
    event = pages[0]
    details = event["payload"]["custom_details"]
    assert event["routing_key"] == "e2e-routing-key"  # read from the routing_key_file
    assert event["event_action"] == "trigger"
    assert details["runbook_url"] == f"{RUNBOOK_BASE}HighErrorRate.md"
    assert {"href": f"{RUNBOOK_BASE}HighErrorRate.md", "text": "runbook"} in event["links"]
    assert "of llm-gateway's model calls failed" in details["description"]
    print(f"HighErrorRate delivered {time.monotonic() - started:.0f}s after the first injected error")
    traffic.fault_share = 0.0


def test_stopped_sidecar_fires_sidecar_down_and_inhibits_sidecar_silent(
    alerting_stack: NativeStack, traffic: Traffic, sink: Sink
) -> None:
    traffic.fault_share = 0.0
    rpc = stack_module._rpc(stack_module.Settings.from_env(alerting_stack.env))
    try:
        rpc.supervisor.stopProcess("sidecar")
    except xmlrpc.client.Fault as exc:
        pytest.fail(f"could not stop the sidecar: {exc.faultString}")
    started = time.monotonic()
    wait_for(lambda: _firing(alerting_stack, "SidecarDown"), 180, "SidecarDown firing in Prometheus")
    page = wait_for(lambda: sink.pagerduty("SidecarDown"), 60, "SidecarDown delivered to PagerDuty")
    assert page[0]["payload"]["custom_details"]["runbook_url"] == f"{RUNBOOK_BASE}SidecarDown.md"
    print(f"SidecarDown delivered {time.monotonic() - started:.0f}s after the sidecar stopped")

    down = _alertmanager_alerts(alerting_stack, "SidecarDown")
    assert down and down[0]["status"]["state"] == "active"

    def silent_inhibited() -> list[dict[str, Any]]:
        alerts = _alertmanager_alerts(alerting_stack, "SidecarSilent")
        ok = [a for a in alerts if a["status"]["state"] == "suppressed" and a["status"]["inhibitedBy"]]
        return ok if alerts and len(ok) == len(alerts) else []

    silent = wait_for(silent_inhibited, 120, "SidecarSilent in Alertmanager, suppressed by SidecarDown")
    down_fingerprints = {a["fingerprint"] for a in _alertmanager_alerts(alerting_stack, "SidecarDown")}
    for alert in silent:
        assert set(alert["status"]["inhibitedBy"]) <= down_fingerprints
    assert _firing(alerting_stack, "SidecarSilent"), (
        "SidecarSilent fires in Prometheus; only Alertmanager holds it"
    )
