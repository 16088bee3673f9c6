"""The Collector configurations validate with the built distribution, and a broken one does not."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.stack_support import REPO, RUN_SH


def _validate(env_extra: dict[str, str], *extra_args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "OTLP_INGEST_TOKEN"}
    env.update(env_extra)
    return subprocess.run(
        [str(RUN_SH), "validate", *extra_args], env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    "env_extra",
    [
        pytest.param({}, id="production"),
        pytest.param({"COLLECTOR_NATIVE": "1", "RUN_DIR": "/tmp/llm-otel-validate"}, id="native-overlay"),
        pytest.param(
            {"COLLECTOR_NATIVE": "1", "RUN_DIR": "/tmp/llm-otel-validate", "OTLP_INGEST_TOKEN": "t0k"},
            id="native+ingest-auth",
        ),
        pytest.param({"OTLP_INGEST_TOKEN": "t0k"}, id="production+ingest-auth"),
    ],
)
def test_configs_validate(collector_bin: Path, env_extra: dict[str, str]) -> None:
    result = _validate(env_extra)
    assert result.returncode == 0, result.stdout + result.stderr


def test_validate_rejects_a_broken_overlay(collector_bin: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("service:\n  pipelines:\n    traces/in:\n      exporters: [no_such_exporter]\n")
    result = _validate({}, "--config", str(broken))
    assert result.returncode != 0
    assert "no_such_exporter" in result.stdout + result.stderr


def test_native_overlay_only_swaps_tempo_and_loki_for_files() -> None:
    import yaml

    base = yaml.safe_load((REPO / "otel-collector" / "config.yaml").read_text())
    native = yaml.safe_load((REPO / "otel-collector" / "config.native.yaml").read_text())
    assert set(native) == {"exporters", "service"}
    assert set(native["exporters"]) == {"file/traces", "file/logs"}
    assert set(native["service"]) == {"pipelines"}
    out = native["service"]["pipelines"]
    assert set(out) == {"traces/out", "logs/out"}
    # the same exporter lists (connectors included), with Tempo and Loki swapped for the files
    swap = {"otlp_grpc/tempo": "file/traces", "otlp_http/loki": "file/logs"}
    for name in ("traces/out", "logs/out"):
        assert set(out[name]) == {"exporters"}
        base_exporters = base["service"]["pipelines"][name]["exporters"]
        assert out[name]["exporters"] == [swap.get(e, e) for e in base_exporters], name
    assert "otlp_grpc/tempo" in base["service"]["pipelines"]["traces/out"]["exporters"]
    assert "otlp_http/loki" in base["service"]["pipelines"]["logs/out"]["exporters"]


def test_every_exporter_leaving_the_process_has_retry_and_a_persistent_queue() -> None:
    import yaml

    base = yaml.safe_load((REPO / "otel-collector" / "config.yaml").read_text())
    leaving = [name for name in base["exporters"] if name.split("/")[0] in ("otlp_grpc", "otlp_http")]
    assert leaving, "no network exporters found"
    for name in leaving:
        cfg = base["exporters"][name]
        assert cfg["retry_on_failure"]["enabled"] is True, name
        assert cfg["sending_queue"]["enabled"] is True, name
        assert cfg["sending_queue"]["storage"] == "file_storage", name


def test_prometheus_config_and_alert_rules_pass_promtool() -> None:
    import shutil

    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: run `make tools`")
    prom = REPO / "compose" / "prometheus"
    for args in (
        ["check", "config", str(prom / "prometheus.yml")],
        ["test", "rules", *map(str, sorted((prom / "tests").glob("*.yml")))],
    ):
        result = subprocess.run([promtool, *args], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
