"""compose/native/stack.py's settings: defaults from DESIGN.md, errors that name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.stack_support import native_stack as stack


def test_defaults_are_the_design_ports(tmp_path: Path) -> None:
    settings = stack.Settings.from_env({"RUN_DIR": str(tmp_path)})
    assert settings.ports["otlp_grpc"] == 4317
    assert settings.ports["otlp_http"] == 4318
    assert settings.ports["sidecar"] == 4319
    assert settings.ports["internal_otlp"] == 14317
    assert settings.ports["prom_exporter"] == 8889
    assert settings.ports["health_check"] == 13133
    assert settings.ports["app"] == 8000
    assert settings.ports["prometheus"] == 9090
    assert settings.ports["alertmanager"] == 9093
    assert settings.run_dir == tmp_path


@pytest.mark.parametrize("value", ["abc", "0", "70000", "-1"])
def test_a_bad_port_names_its_variable(value: str) -> None:
    with pytest.raises(stack.StackError, match=f"PROMETHEUS_PORT={value!r} is not a TCP port"):
        stack.Settings.from_env({"PROMETHEUS_PORT": value})


def test_sidecar_can_be_bypassed_and_the_collector_loops_to_itself(tmp_path: Path) -> None:
    settings = stack.Settings.from_env(
        {"RUN_DIR": str(tmp_path), "STACK_SIDECAR": "0", "STACK_APP": "no", "STACK_NODE_EXPORTER": "off"}
    )
    assert settings.services == ["alertmanager", "prometheus", "collector"]
    assert "bypassed" in settings.describe()["sidecar"]


def test_a_bad_flag_value_is_an_error() -> None:
    with pytest.raises(stack.StackError, match="STACK_APP='maybe'"):
        stack.Settings.from_env({"STACK_APP": "maybe"})


def test_prometheus_config_is_rendered_with_loopback_targets(tmp_path: Path) -> None:
    settings = stack.Settings.from_env({"RUN_DIR": str(tmp_path), "PROM_EXPORTER_PORT": "18889"})
    text = stack.render_prometheus_config(settings).read_text()
    assert "127.0.0.1:18889" in text
    assert "otel-collector:" not in text and "alertmanager:9093" not in text
    assert str(stack.REPO / "compose" / "prometheus" / "rules") in text


def test_node_exporter_runs_first_when_installed(tmp_path: Path) -> None:
    exporter = tmp_path / "prometheus-node-exporter"
    exporter.write_text("#!/bin/sh\n")
    exporter.chmod(0o755)
    env = {"RUN_DIR": str(tmp_path), "NODE_EXPORTER_BIN": str(exporter)}
    assert stack.Settings.from_env(env).services[0] == "node_exporter"
    assert stack.Settings.from_env({**env, "NODE_EXPORTER_PORT": "19100"}).ports["node_exporter"] == 19100
    assert "node_exporter" not in stack.Settings.from_env({**env, "STACK_NODE_EXPORTER": "0"}).services
    missing = {**env, "NODE_EXPORTER_BIN": str(tmp_path / "nope"), "STACK_NODE_EXPORTER": "1"}
    with pytest.raises(stack.StackError, match="make tools"):
        stack.Settings.from_env(missing)
