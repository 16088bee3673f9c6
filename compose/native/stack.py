"""Start, stop and inspect the native stack (supervisord runs the processes).

    python compose/native/stack.py up | down | status

supervisord is the process runner; this script does what docker compose's depends_on/healthcheck do:
it starts the services in dependency order and waits for each one's readiness check before the next.
Once up, compose/native/restarter.py (a supervisord event listener) restarts any service that stops on
its own, with backoff and without limit; `status` shows each service's restart count.
Every port and the run directory come from environment variables (defaults: shared/DESIGN.md), so
tests can run a whole stack on free ports. `up` writes $RUN_DIR/stack.json with the resolved
addresses; `down` stops every process and waits until none is left.
"""

from __future__ import annotations

import argparse
import functools
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import xmlrpc.client
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

REPO = Path(__file__).resolve().parents[2]
SUPERVISORD_CONF = REPO / "compose" / "native" / "supervisord.conf"
PROMETHEUS_CONF = REPO / "compose" / "prometheus" / "prometheus.yml"

# name -> (env var, default). Defaults are the ports of shared/DESIGN.md.
PORTS: dict[str, tuple[str, int]] = {
    "otlp_grpc": ("OTLP_GRPC_PORT", 4317),
    "otlp_http": ("OTLP_HTTP_PORT", 4318),
    "sidecar": ("SIDECAR_PORT", 4319),
    "internal_otlp": ("INTERNAL_OTLP_PORT", 14317),
    "prom_exporter": ("PROM_EXPORTER_PORT", 8889),
    "health_check": ("HEALTH_CHECK_PORT", 13133),
    "collector_telemetry": ("COLLECTOR_TELEMETRY_PORT", 8888),
    "zpages": ("ZPAGES_PORT", 55679),
    "pprof": ("PPROF_PORT", 1777),
    "app": ("APP_PORT", 8000),
    "prometheus": ("PROMETHEUS_PORT", 9090),
    "alertmanager": ("ALERTMANAGER_PORT", 9093),
    "node_exporter": ("NODE_EXPORTER_PORT", 9100),
    # no dcgm-exporter runs natively (no GPU); Prometheus scrapes whatever listens here (tests serve a sample)
    "dcgm_exporter": ("DCGM_EXPORTER_PORT", 9400),
}


class StackError(RuntimeError):
    """A problem the user has to fix; the message says what and how."""


@dataclass(frozen=True)
class Settings:
    run_dir: Path
    ports: dict[str, int]
    services: list[str]
    sidecar_enabled: bool
    ingest_token: str

    @classmethod
    def from_env(cls, env: dict[str, str]) -> Settings:
        run_dir = Path(env.get("RUN_DIR") or REPO / "run").resolve()
        ports: dict[str, int] = {}
        for name, (var, default) in PORTS.items():
            raw = env.get(var, str(default))
            if not raw.isdigit() or not 0 < int(raw) < 65536:
                raise StackError(f"{var}={raw!r} is not a TCP port (1-65535)")
            ports[name] = int(raw)
        sidecar_enabled = _flag(env, "STACK_SIDECAR", default=(REPO / "processors" / "__main__.py").exists())
        app_enabled = _flag(env, "STACK_APP", default=(REPO / "app" / "__main__.py").exists())
        services = ["alertmanager", "prometheus", "collector"]
        if _flag(env, "STACK_NODE_EXPORTER", default=_node_exporter_bin(env) is not None):
            if _node_exporter_bin(env) is None:
                raise StackError("STACK_NODE_EXPORTER is on but no prometheus-node-exporter: make tools")
            services.insert(0, "node_exporter")
        if sidecar_enabled:
            services.append("sidecar")
        if app_enabled:
            services.append("app")
        return cls(run_dir, ports, services, sidecar_enabled, env.get("OTLP_INGEST_TOKEN", ""))

    def url(self, port: str, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.ports[port]}"

    def describe(self) -> dict[str, Any]:
        return {
            "run_dir": str(self.run_dir),
            "services": self.services,
            "sidecar": "enabled"
            if self.sidecar_enabled
            else "bypassed (Collector loops traces/logs to itself)",
            "ingest_auth": bool(self.ingest_token),
            "ports": self.ports,
            "urls": {
                "otlp_grpc": f"127.0.0.1:{self.ports['otlp_grpc']}",
                "otlp_http": self.url("otlp_http"),
                "prometheus": self.url("prometheus"),
                "alertmanager": self.url("alertmanager"),
                "collector_metrics": self.url("prom_exporter") + "/metrics",
                "collector_health": self.url("health_check"),
                "gateway": self.url("app"),
            },
            "export_files": {name: str(path) for name, path in export_files(self.run_dir).items()},
        }


def _flag(env: dict[str, str], var: str, default: bool) -> bool:
    raw = env.get(var)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise StackError(f"{var}={raw!r}: expected 1/0, true/false, yes/no or on/off")


def _which(var: str, *names: str, hint: str) -> str:
    explicit = os.environ.get(var)
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise StackError(f"{var}={explicit} is not an executable file")
        return explicit
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    raise StackError(f"{' / '.join(names)} not found on PATH; {hint}")


def _node_exporter_bin(env: Mapping[str, str]) -> str | None:
    """Debian's prometheus-node-exporter (`make tools`); the stack runs without it when it is missing."""
    explicit = env.get("NODE_EXPORTER_BIN")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    return shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")


def export_files(run_dir: Path) -> dict[str, Path]:
    """Where config.native.yaml's file exporters write (OTLP JSON, one ExportRequest per line)."""
    return {"traces": run_dir / "export" / "traces.jsonl", "logs": run_dir / "export" / "logs.jsonl"}


# The ports otel-collector/config.yaml listens on (the PORTS names collector_env reads).
COLLECTOR_PORTS = (
    "otlp_grpc",
    "otlp_http",
    "internal_otlp",
    "prom_exporter",
    "health_check",
    "collector_telemetry",
    "zpages",
    "pprof",
)


def collector_env(ports: Mapping[str, int], run_dir: Path, sidecar_port: int) -> dict[str, str]:
    """The variables otel-collector/config.yaml reads, for a Collector on loopback ports (names as in PORTS).
    sidecar_port = ports["internal_otlp"] loops traces and logs through the Collector itself."""
    return {
        "OTLP_GRPC_ENDPOINT": f"127.0.0.1:{ports['otlp_grpc']}",
        "OTLP_HTTP_ENDPOINT": f"127.0.0.1:{ports['otlp_http']}",
        "INTERNAL_OTLP_ENDPOINT": f"127.0.0.1:{ports['internal_otlp']}",
        "SIDECAR_ENDPOINT": f"127.0.0.1:{sidecar_port}",
        "PROM_EXPORTER_ENDPOINT": f"127.0.0.1:{ports['prom_exporter']}",
        "HEALTH_CHECK_ENDPOINT": f"127.0.0.1:{ports['health_check']}",
        "COLLECTOR_TELEMETRY_HOST": "127.0.0.1",
        "COLLECTOR_TELEMETRY_PORT": str(ports["collector_telemetry"]),
        "ZPAGES_ENDPOINT": f"127.0.0.1:{ports['zpages']}",
        "PPROF_ENDPOINT": f"127.0.0.1:{ports['pprof']}",
        "COLLECTOR_STORAGE_DIR": str(run_dir / "collector-queue"),
    }


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def child_env(settings: Settings) -> dict[str, str]:
    """The environment supervisord and therefore every service start with."""
    p = settings.ports
    env = dict(os.environ)
    collector_bin = Path(env.get("OTELCOL_BIN") or REPO / "build" / "otelcol-llm")
    if not os.access(collector_bin, os.X_OK):
        raise StackError(f"Collector binary {collector_bin} is missing: run `make collector`")
    env.update(
        REPO_DIR=str(REPO),
        RUN_DIR=str(settings.run_dir),
        STACK_PYTHON=sys.executable,
        OTELCOL_BIN=str(collector_bin),
        ALERTMANAGER_CONFIG=env.get("ALERTMANAGER_CONFIG")
        or str(REPO / "compose" / "alertmanager" / "alertmanager.yml"),
        PROMETHEUS_BIN=_which(
            "PROMETHEUS_BIN", "prometheus", hint="run `make tools` (Debian package prometheus)"
        ),
        ALERTMANAGER_BIN=_which(
            "ALERTMANAGER_BIN",
            "prometheus-alertmanager",
            "alertmanager",
            hint="run `make tools` (Debian package prometheus-alertmanager)",
        ),
        # Sidecar and gateway: where their own telemetry goes, and where the gateway listens.
        SIDECAR_LISTEN=f"127.0.0.1:{p['sidecar']}",
        SIDECAR_FORWARD=f"127.0.0.1:{p['internal_otlp']}",
        # batches the sidecar quarantines (PII at rest, mode 0700): docs/sidecar.md "Failure semantics"
        SIDECAR_DEAD_LETTER_DIR=env.get("SIDECAR_DEAD_LETTER_DIR") or str(settings.run_dir / "dead-letter"),
        GATEWAY_HOST="127.0.0.1",
        GATEWAY_PORT=str(p["app"]),
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{p['otlp_grpc']}",
        OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
        OTEL_METRIC_EXPORT_INTERVAL=env.get("OTEL_METRIC_EXPORT_INTERVAL", "5000"),
        OTEL_BSP_SCHEDULE_DELAY=env.get("OTEL_BSP_SCHEDULE_DELAY", "1000"),
        OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=env.get(
            "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true"
        ),
        OTEL_RESOURCE_ATTRIBUTES=env.get("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=native"),
        # the Collector (run.sh) and the sidecar read the one message limit of the loop (docs/collector.md)
        SIDECAR_MAX_MESSAGE_MIB=env.get("SIDECAR_MAX_MESSAGE_MIB") or "16",
    )
    demo_config = REPO / "app" / "demo-config.yaml"
    if "GATEWAY_CONFIG" not in env and demo_config.exists():
        env["GATEWAY_CONFIG"] = str(demo_config)
    env["NODE_EXPORTER_BIN"] = _node_exporter_bin(env) or "prometheus-node-exporter"
    sidecar = p["sidecar" if settings.sidecar_enabled else "internal_otlp"]
    env.update(collector_env(p, settings.run_dir, sidecar_port=sidecar))
    for name, (var, _) in PORTS.items():
        env[var] = str(p[name])
    if settings.ingest_token:
        env["OTEL_EXPORTER_OTLP_HEADERS"] = f"Authorization=Bearer%20{settings.ingest_token}"
    return env


def render_prometheus_config(settings: Settings) -> Path:
    """compose/prometheus/prometheus.yml with the Docker service addresses swapped for loopback ports."""
    p = settings.ports
    text = PROMETHEUS_CONF.read_text()
    for docker_addr, port in {
        "otel-collector:8889": p["prom_exporter"],
        "otel-collector:8888": p["collector_telemetry"],
        "alertmanager:9093": p["alertmanager"],
        "prometheus:9090": p["prometheus"],
        "node-exporter:9100": p["node_exporter"],
        "dcgm-exporter:9400": p["dcgm_exporter"],
    }.items():
        if docker_addr not in text:
            raise StackError(f"{PROMETHEUS_CONF} no longer mentions {docker_addr}; update stack.py")
        text = text.replace(docker_addr, f"127.0.0.1:{port}")
    # PROMETHEUS_RULES_DIR: a test-only rendered copy of the rules (tests/alerting); default the shipped ones
    rules_dir = os.environ.get("PROMETHEUS_RULES_DIR") or str(REPO / "compose" / "prometheus" / "rules")
    text = text.replace("  - rules/*.yml", f"  - {rules_dir}/*.yml")
    out = settings.run_dir / "prometheus" / "prometheus.yml"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return out


# --- readiness checks ---------------------------------------------------------------------------


def _http_ok(port: int, path: str) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", path)
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except OSError:
        return False


def _grpc_serving(port: int) -> bool:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
            return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)
    except grpc.RpcError:
        return False


def readiness(settings: Settings) -> dict[str, tuple[Callable[[], bool], str]]:
    p = settings.ports
    return {
        "alertmanager": (lambda: _http_ok(p["alertmanager"], "/-/ready"), settings.url("alertmanager")),
        "prometheus": (lambda: _http_ok(p["prometheus"], "/-/ready"), settings.url("prometheus")),
        "node_exporter": (lambda: _http_ok(p["node_exporter"], "/metrics"), settings.url("node_exporter")),
        "collector": (
            lambda: _http_ok(p["health_check"], "/"),
            f"OTLP grpc 127.0.0.1:{p['otlp_grpc']} http {settings.url('otlp_http')}",
        ),
        "sidecar": (lambda: _grpc_serving(p["sidecar"]), f"OTLP/gRPC 127.0.0.1:{p['sidecar']}"),
        "app": (lambda: _http_ok(p["app"], "/readyz"), settings.url("app") + "/v1"),
    }


# --- supervisord ---------------------------------------------------------------------------------


def _rpc(settings: Settings) -> Any:
    from supervisor.xmlrpc import SupervisorTransport

    sock = settings.run_dir / "supervisor.sock"
    return xmlrpc.client.ServerProxy(
        "http://127.0.0.1", transport=SupervisorTransport(None, None, f"unix://{sock}")
    )


def _supervisord_pid(settings: Settings) -> int | None:
    try:
        pid = int((settings.run_dir / "supervisord.pid").read_text().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def _log_tail(settings: Settings, service: str, lines: int = 25) -> str:
    path = settings.run_dir / "logs" / f"{service}.log"
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


def _check_ports_free(settings: Settings) -> None:
    # the sidecar's and gateway's ports matter only when they run
    optional = {
        "sidecar": settings.sidecar_enabled,
        "app": "app" in settings.services,
        "node_exporter": "node_exporter" in settings.services,
        "dcgm_exporter": False,  # only scraped, never started here
    }
    for name in sorted(PORTS):
        port = settings.ports[name]
        if optional.get(name, True) and not port_free(port):
            raise StackError(
                f"port {port} ({name}) is already in use on 127.0.0.1: stop what uses it "
                f"(`make down`?) or choose another with {PORTS[name][0]}=..."
            )


def up(settings: Settings, timeout: float) -> None:
    if _supervisord_pid(settings):
        raise StackError(f"a stack is already running from {settings.run_dir}: `make down` first")
    _check_ports_free(settings)
    env = child_env(settings)
    (settings.run_dir / "logs").mkdir(parents=True, exist_ok=True)
    (settings.run_dir / "export").mkdir(parents=True, exist_ok=True)
    render_prometheus_config(settings)
    (settings.run_dir / "stack.json").write_text(json.dumps(settings.describe(), indent=2) + "\n")
    (settings.run_dir / "restarts.json").unlink(missing_ok=True)  # counts are per `up`

    print(f"==> starting the native stack in {settings.run_dir}", flush=True)
    if not settings.sidecar_enabled:
        print("    sidecar bypassed: traces/logs loop through the Collector's internal receiver", flush=True)
    subprocess.run(
        [sys.executable, "-m", "supervisor.supervisord", "-c", str(SUPERVISORD_CONF)], env=env, check=True
    )
    rpc = _rpc(settings)
    _wait(lambda: _rpc_alive(rpc), 15, "supervisord did not open its control socket", settings, "supervisord")

    checks = readiness(settings)
    for service in settings.services:
        started = time.monotonic()
        try:
            rpc.supervisor.startProcess(service, False)
        except xmlrpc.client.Fault as exc:  # e.g. SPAWN_ERROR: the command does not start at all
            _fail_start(settings, service, f"{service} could not be started ({exc.faultString})")
        ready, where = checks[service]
        _wait(
            functools.partial(_running_and_ready, rpc, service, ready),
            timeout,
            f"{service} did not become ready",
            settings,
            service,
        )
        print(f"    {service:<12} ready in {time.monotonic() - started:4.1f}s  {where}", flush=True)
    print(f"==> stack is up; addresses in {settings.run_dir / 'stack.json'}", flush=True)


def _running_and_ready(rpc: Any, service: str, ready: Callable[[], bool]) -> bool:
    return _running(rpc, service) and ready()


def _rpc_alive(rpc: Any) -> bool:
    try:
        return bool(rpc.supervisor.getState()["statename"] == "RUNNING")
    except (OSError, xmlrpc.client.Fault):
        return False


def _running(rpc: Any, service: str) -> bool:
    info = rpc.supervisor.getProcessInfo(service)
    if info["statename"] in ("FATAL", "EXITED", "BACKOFF"):
        raise StackError(f"{service} exited ({info['statename']}, exit status {info['exitstatus']})")
    return bool(info["statename"] == "RUNNING")


def _wait(cond: Callable[[], bool], timeout: float, what: str, settings: Settings, service: str) -> None:
    """Until cond() holds; on timeout, or when cond raises (the service exited), fail the start."""
    deadline = time.monotonic() + timeout
    try:
        while not cond():
            if time.monotonic() > deadline:
                raise StackError(f"{what} (waited up to {timeout:.0f}s)")
            time.sleep(0.2)
    except StackError as exc:
        _fail_start(settings, service, str(exc))


def _fail_start(settings: Settings, service: str, problem: str) -> NoReturn:
    """Stop everything already started and raise with the last lines of the service's log."""
    tail = _log_tail(settings, service)
    down(settings, quiet=True)
    raise StackError(f"{problem}. Last lines of its log:\n{tail}")


def down(settings: Settings, quiet: bool = False) -> None:
    pid = _supervisord_pid(settings)
    if pid is None:
        if not quiet:
            print(f"==> no stack running from {settings.run_dir}")
        return
    if not quiet:
        print(f"==> stopping the native stack in {settings.run_dir}", flush=True)
    children = _descendants(pid)
    try:
        _rpc(settings).supervisor.shutdown()
    except (OSError, xmlrpc.client.Fault):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 45
    while time.monotonic() < deadline and (_alive(pid) or any(_alive(c) for c in children)):
        time.sleep(0.2)
    leftovers = [c for c in [pid, *children] if _alive(c)]
    for c in leftovers:
        os.kill(c, signal.SIGKILL)
    if not quiet:
        extra = f" (killed {len(leftovers)} that ignored SIGTERM)" if leftovers else ""
        print(f"==> stopped; no process left{extra}", flush=True)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().split(") ", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def status(settings: Settings) -> int:
    if _supervisord_pid(settings) is None:
        print(f"no stack running from {settings.run_dir}")
        return 1
    restarts = restart_counts(settings.run_dir)
    for info in _rpc(settings).supervisor.getAllProcessInfo():
        count = restarts.get(info["name"], 0)
        print(f"{info['name']:<12} {info['statename']:<9} restarts={count:<4} {info['description']}")
    return 0


def restart_counts(run_dir: Path) -> dict[str, int]:
    """How often each service was started again since the stack came up (compose/native/restarter.py)."""
    try:
        services = json.loads((run_dir / "restarts.json").read_text())["services"]
        return {str(name): int(info["restarts"]) for name, info in services.items()}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["up", "down", "status", "env"])
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds each service may take to be ready"
    )
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env(dict(os.environ))
        if args.command == "up":
            up(settings, args.timeout)
        elif args.command == "down":
            down(settings)
        elif args.command == "status":
            return status(settings)
        else:
            print(json.dumps(settings.describe(), indent=2))
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
