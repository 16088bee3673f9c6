"""docker compose (for Docker users) and the native stack describe the same topology."""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
COMPOSE = REPO / "compose"


def _compose() -> dict:  # type: ignore[type-arg]
    return dict(yaml.safe_load((COMPOSE / "docker-compose.yaml").read_text()))


def test_published_ports_are_the_design_defaults() -> None:
    published = {
        name: sorted(int(p.split(":")[0]) for p in svc.get("ports", []))
        for name, svc in _compose()["services"].items()
    }
    # the Collector's ports belong to the namespace holder it shares with the sidecar
    assert published["otel-net"] == [4317, 4318, 13133]
    assert published["otel-collector"] == []
    assert published["app"] == [8000]
    assert published["prometheus"] == [9090]
    assert published["alertmanager"] == [9093]
    assert published["grafana"] == [3000]
    assert published["tempo"] == [3200]
    assert published["loki"] == [3100]
    assert published["sidecar"] == []  # only the Collector talks to it


def test_collector_image_ships_the_same_manifest_and_configs() -> None:
    dockerfile = (COMPOSE / "collector.Dockerfile").read_text()
    assert "otel-collector/builder-config.yaml" in dockerfile
    for name in (
        "config.yaml",
        "config.native.yaml",
        "config.ingest-auth.yaml",
        "config.tail-sampling.yaml",
        "run.sh",
    ):
        assert f"otel-collector/{name}" in dockerfile
        assert (REPO / "otel-collector" / name).exists()
    makefile = (REPO / "Makefile").read_text()
    ocb = next(
        line.split(":=")[1].strip() for line in makefile.splitlines() if line.startswith("OCB_VERSION")
    )
    assert f"ARG OCB_VERSION={ocb}" in dockerfile


def test_sidecar_and_collector_point_at_each_other() -> None:
    services = _compose()["services"]
    collector_env = services["otel-collector"]["environment"]
    assert collector_env["SIDECAR_ENDPOINT"] == "127.0.0.1:4319"
    assert services["sidecar"]["command"][-2:] == ["--forward", "127.0.0.1:14317"]
    assert collector_env["INTERNAL_OTLP_ENDPOINT"] == "127.0.0.1:14317"
    assert collector_env["TEMPO_OTLP_ENDPOINT"] == "tempo:4317"
    assert collector_env["LOKI_OTLP_ENDPOINT"] == "http://loki:3100/otlp"


def test_prometheus_scrapes_compose_service_names_and_loads_rules() -> None:
    prom = yaml.safe_load((COMPOSE / "prometheus" / "prometheus.yml").read_text())
    targets = {t for job in prom["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    services = set(_compose()["services"]) | {"prometheus"}
    assert {t.split(":")[0] for t in targets} <= services
    assert prom["rule_files"] == ["rules/*.yml"]
    assert list((COMPOSE / "prometheus" / "rules").glob("*.yml"))


def test_grafana_links_metrics_to_traces_and_traces_to_logs() -> None:
    ds = yaml.safe_load(
        (COMPOSE / "grafana" / "provisioning" / "datasources" / "datasources.yaml").read_text()
    )
    by_uid = {d["uid"]: d for d in ds["datasources"]}
    assert by_uid["prometheus"]["jsonData"]["exemplarTraceIdDestinations"][0]["datasourceUid"] == "tempo"
    assert by_uid["prometheus"]["jsonData"]["exemplarTraceIdDestinations"][0]["name"] == "trace_id"
    assert by_uid["tempo"]["jsonData"]["tracesToLogsV2"]["datasourceUid"] == "loki"
    assert by_uid["loki"]["jsonData"]["derivedFields"][0]["datasourceUid"] == "tempo"


# --- no way around the sidecar (issue 8 item 8) ---------------------------------------------------

LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
_ENV_REF = re.compile(r"\$\{env:([A-Z0-9_]+)(?::-([^}]*))?\}")


def _host(address: str) -> str:
    return address.rsplit(":", 1)[0]


def _resolve(value: str, env: Mapping[str, str]) -> str:
    """A Collector config value with its ${env:VAR:-default} references resolved as the Collector would."""
    return _ENV_REF.sub(lambda m: env.get(m.group(1)) or (m.group(2) or ""), value)


def _env(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _runs_collector(service: Mapping[str, Any]) -> bool:
    dockerfile = str((service.get("build") or {}).get("dockerfile", ""))
    return "collector.Dockerfile" in dockerfile or "otelcol" in str(service.get("image", ""))


def _runs_sidecar(service: Mapping[str, Any]) -> bool:
    command = service.get("command") or []
    return "processors" in (command if isinstance(command, list) else str(command).split())


def _sidecar_listen(service: Mapping[str, Any]) -> str:
    """Where `python -m processors` listens: --listen, else SIDECAR_LISTEN, else its built-in default."""
    from processors.cli import DEFAULT_LISTEN

    command = [str(c) for c in service.get("command") or []]
    if "--listen" in command:
        return command[command.index("--listen") + 1]
    return _env(service).get("SIDECAR_LISTEN", DEFAULT_LISTEN)


def _internal_receiver_endpoint(env: Mapping[str, str]) -> str:
    config = yaml.safe_load((REPO / "otel-collector" / "config.yaml").read_text())
    return _resolve(config["receivers"]["otlp/internal"]["protocols"]["grpc"]["endpoint"], env)


def test_every_internal_receiver_and_sidecar_listens_on_loopback_only() -> None:
    services = _compose()["services"]
    collectors = {name: s for name, s in services.items() if _runs_collector(s)}
    sidecars = {name: s for name, s in services.items() if _runs_sidecar(s)}
    assert collectors and sidecars, "the compose file should run a Collector and a sidecar"
    for name, svc in collectors.items():
        endpoint = _internal_receiver_endpoint(_env(svc))
        assert _host(endpoint) in LOOPBACK, f"{name}: internal receiver listens on {endpoint}"
        assert _host(_env(svc)["SIDECAR_ENDPOINT"]) in LOOPBACK, name
    for name, svc in sidecars.items():
        listen = _sidecar_listen(svc)
        assert _host(listen) in LOOPBACK, f"{name}: sidecar listens on {listen}"
        command = [str(c) for c in svc["command"]]
        assert _host(command[command.index("--forward") + 1]) in LOOPBACK, name


def test_the_sidecar_shares_the_collectors_network_namespace_and_nobody_else_does() -> None:
    services = _compose()["services"]
    modes = {name: s.get("network_mode") for name, s in services.items() if s.get("network_mode")}
    holder = services["otel-collector"].get("network_mode")
    assert holder and holder.startswith("service:"), "the Collector must join a shared network namespace"
    assert modes == {"otel-collector": holder, "sidecar": holder}
    # loopback of that namespace is reachable only by these two; its published ports do not include them
    published = {int(p.split(":")[0]) for p in services[holder.split(":", 1)[1]].get("ports", [])}
    assert not published & {4319, 14317}
    for name, svc in services.items():
        assert not any(str(p).split(":")[-1] in ("4319", "14317") for p in svc.get("ports", [])), name


def test_the_native_stack_binds_the_loop_to_loopback_too(tmp_path: Path) -> None:
    sys.path.insert(0, str(REPO / "compose" / "native"))
    import stack

    env = stack.collector_env({k: d for k, (_, d) in stack.PORTS.items()}, tmp_path, sidecar_port=4319)
    assert _host(_internal_receiver_endpoint(env)) in LOOPBACK
    conf = (COMPOSE / "native" / "supervisord.conf").read_text()
    assert "--listen 127.0.0.1:%(ENV_SIDECAR_PORT)s" in conf


def test_prometheus_runs_without_lifecycle_or_remote_write_receiver() -> None:
    command = _compose()["services"]["prometheus"]["command"]
    lines = (COMPOSE / "native" / "supervisord.conf").read_text().splitlines()
    conf = "\n".join(line for line in lines if not line.lstrip().startswith(";"))
    for flag in ("--web.enable-lifecycle", "--web.enable-remote-write-receiver"):
        assert flag not in command
        assert flag not in conf


# --- one message limit for the whole sidecar loop (issue 9 item 1) -----------------------------------


def test_every_hop_of_the_loop_takes_its_limit_from_sidecar_max_message_mib() -> None:
    from processors.config import ServerConfig

    mib_ref, bytes_ref = "${env:SIDECAR_MAX_MESSAGE_MIB:-16}", "${env:OTELCOL_MAX_MESSAGE_BYTES:-16777216}"
    # what the sidecar hands back (split / truncated to fit) must fit the internal receiver's default limit;
    # what it accepts must be at least what the Collector's exporter can send it
    assert ServerConfig().forward_max_message_bytes == 16 << 20, "must be the Collector's default"
    assert ServerConfig().max_message_bytes >= 16 << 20
    config = yaml.safe_load((REPO / "otel-collector" / "config.yaml").read_text())
    receivers = config["receivers"]
    assert receivers["otlp"]["protocols"]["grpc"]["max_recv_msg_size_mib"] == mib_ref
    assert receivers["otlp"]["protocols"]["http"]["max_request_body_size"] == bytes_ref
    assert receivers["otlp/internal"]["protocols"]["grpc"]["max_recv_msg_size_mib"] == mib_ref
    queues = {name: e["sending_queue"] for name, e in config["exporters"].items() if "sending_queue" in e}
    assert queues
    for name, queue in queues.items():
        assert queue["batch"]["sizer"] == "bytes", name
        assert queue["batch"]["max_size"] == bytes_ref, name
    run_sh = (REPO / "otel-collector" / "run.sh").read_text()
    assert "mib=${SIDECAR_MAX_MESSAGE_MIB:-16}" in run_sh
    assert "export OTELCOL_MAX_MESSAGE_BYTES=$((mib * 1048576))" in run_sh

    services = _compose()["services"]
    compose_value = "${SIDECAR_MAX_MESSAGE_MIB:-16}"
    for name in ("otel-collector", "sidecar", "tempo"):
        assert _env(services[name])["SIDECAR_MAX_MESSAGE_MIB"] == compose_value, name
    tempo = yaml.safe_load((COMPOSE / "tempo" / "tempo.yaml").read_text())
    grpc = tempo["distributor"]["receivers"]["otlp"]["protocols"]["grpc"]
    assert grpc["max_recv_msg_size_mib"] == compose_value
    assert "-config.expand-env=true" in services["tempo"]["command"]
