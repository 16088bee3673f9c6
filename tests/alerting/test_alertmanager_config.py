"""compose/alertmanager: amtool accepts the config, the route tree sends each severity where it belongs,
no secret is inline, and the templates render the summary, runbook and dashboard links."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest
import yaml

from tests.alerting.rules import ALERTMANAGER_DIR, ALERTMANAGER_YML

AMTOOL = shutil.which("amtool")
pytestmark = pytest.mark.skipif(
    AMTOOL is None, reason="amtool comes with `make tools` (prometheus-alertmanager)"
)
ROUTE_CASES = yaml.safe_load((ALERTMANAGER_DIR / "tests" / "routes.yml").read_text())


def _amtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert AMTOOL is not None
    return subprocess.run([AMTOOL, *args], capture_output=True, text=True, timeout=30)


def test_amtool_check_config() -> None:
    result = _amtool("check-config", str(ALERTMANAGER_YML))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 templates" in result.stdout


@pytest.mark.parametrize("case", ROUTE_CASES, ids=lambda c: f"{c['labels']}->{c['receiver']}")
def test_route(case: dict[str, Any]) -> None:
    labels = [f"{k}={v}" for k, v in case["labels"].items()]
    result = _amtool(
        "config", "routes", "test", f"--config.file={ALERTMANAGER_YML}",
        f"--verify.receivers={case['receiver']}", *labels,
    )  # fmt: skip
    assert result.returncode == 0, f"{labels} went to {result.stdout.strip()}, want {case['receiver']}"


def test_every_severity_has_a_route_case() -> None:
    severities = {c["labels"].get("severity") for c in ROUTE_CASES}
    assert {"page", "ticket", "info", None} <= severities


def test_secrets_come_from_files_never_from_the_config() -> None:
    config = yaml.safe_load(ALERTMANAGER_YML.read_text())
    inline = {"api_url", "routing_key", "service_key", "slack_api_url", "pagerduty_url_key", "auth_password"}
    text = json.dumps(config)
    for key in inline:
        assert f'"{key}"' not in text, f"{key} is inline; use {key}_file"
    receivers = {r["name"]: r for r in config["receivers"]}
    assert receivers["slack"]["slack_configs"][0]["api_url_file"]
    assert receivers["pagerduty"]["pagerduty_configs"][0]["routing_key_file"]
    assert receivers["blackhole"].keys() == {"name"}


def test_inhibitions() -> None:
    inhibits = yaml.safe_load(ALERTMANAGER_YML.read_text())["inhibit_rules"]
    pairs = {(tuple(i["source_matchers"]), tuple(i["target_matchers"])) for i in inhibits}
    assert any(s == ('alertname="SidecarDown"',) and "SidecarSilent" in t[0] for s, t in pairs)
    collector = next(i for i in inhibits if i["source_matchers"] == ['alertname="CollectorDown"'])
    for dependent in ("SidecarSilent", "CollectorExportFailing", "HighErrorRate", "AvailabilityBudgetBurn"):
        assert any(_matches(m, dependent) for m in collector["target_matchers"]), dependent
    for independent in ("CollectorDown", "GPUMemoryHigh", "HostDiskFilling"):
        assert not any(_matches(m, independent) for m in collector["target_matchers"]), independent


def _matches(matcher: str, alertname: str) -> bool:
    import re

    op, pattern = re.fullmatch(r'alertname(=~|=)"(.*)"', matcher).groups()  # type: ignore[union-attr]
    return bool(re.fullmatch(pattern, alertname)) if op == "=~" else pattern == alertname


def test_templates_render_summary_runbook_and_dashboard_links() -> None:
    # amtool renders with its own example data: one firing alert whose annotations we cannot choose, so this
    # proves the templates parse and produce the link structure; the e2e test checks a real payload.
    glob = str(ALERTMANAGER_DIR / "templates" / "*.tmpl")
    title = _amtool(
        "template", "render", f"--template.glob={glob}", '--template.text={{ template "llm.title" . }}'
    )
    assert title.returncode == 0, title.stderr
    assert title.stdout.startswith("[") and "]" in title.stdout
    text = _amtool(
        "template", "render", f"--template.glob={glob}", '--template.text={{ template "llm.text" . }}'
    )
    assert text.returncode == 0, text.stderr
    assert "Runbook:" in text.stdout and "Dashboard: http://localhost:3000" in text.stdout
