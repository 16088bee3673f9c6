"""Helpers for tests that run real processes: free ports, a Collector process, the native stack,
the Collector's OTLP JSON export files and Prometheus' HTTP API."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parents[1]
COLLECTOR_BIN = Path(os.environ.get("OTELCOL_BIN") or REPO / "build" / "otelcol-llm")
RUN_SH = REPO / "otel-collector" / "run.sh"
STACK_PY = REPO / "compose" / "native" / "stack.py"

T = TypeVar("T")


def free_ports(n: int) -> list[int]:
    """n distinct free loopback ports (held open together so they differ)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def wait_for(cond: Callable[[], T | None], timeout: float, what: str, interval: float = 0.25) -> T:
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = cond()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last value: {last!r})")


def http_status(url: str, timeout: float = 2) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


# --- compose/native: the stack script and the read-back helpers the demo uses too -----------------

sys.path.insert(0, str(REPO / "compose" / "native"))
import stack as native_stack  # noqa: E402
from readback import attr, exported_log_records, exported_spans, read_jsonl  # noqa: E402
from readback import exemplars as prom_exemplars  # noqa: E402
from readback import query as prom_query  # noqa: E402
from sdk_app import SdkApp  # noqa: E402

__all__ = [
    "SdkApp",
    "attr",
    "exported_log_records",
    "exported_spans",
    "native_stack",
    "prom_exemplars",
    "prom_query",
    "read_jsonl",
]


# --- a bare Collector process (our config + overlays) -------------------------------------------


COLLECTOR_PORTS = native_stack.COLLECTOR_PORTS


@dataclass
class CollectorProcess:
    """otel-collector/run.sh with the native overlay, every port free and private to this instance.
    ``native=False``: the production exporters (Tempo, Loki endpoints from ``extra_env``) instead; ``args``
    are passed on to run.sh (more ``--config`` overlays, feature gates); ``ports`` given are used as is."""

    run_dir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    ports: dict[str, int] = field(default_factory=dict)
    native: bool = True
    args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.ports:
            self.ports = dict(zip(COLLECTOR_PORTS, free_ports(len(COLLECTOR_PORTS)), strict=True))

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        for var in ("OTLP_INGEST_TOKEN", "OTEL_EXPORTER_OTLP_HEADERS"):  # ingest auth; an SDK's header
            env.pop(var, None)
        # loop-through (SIDECAR_ENDPOINT = the internal receiver) unless extra_env says otherwise
        env.update(
            native_stack.collector_env(self.ports, self.run_dir, sidecar_port=self.ports["internal_otlp"])
        )
        if self.native:
            env.update(COLLECTOR_NATIVE="1", RUN_DIR=str(self.run_dir))
        else:
            env.pop("COLLECTOR_NATIVE", None)
        env.update(OTELCOL_BIN=str(COLLECTOR_BIN))
        env.update(self.extra_env)
        return env

    def command(self) -> list[str]:
        return [str(RUN_SH), *self.args]

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['health_check']}/"

    @property
    def traces_file(self) -> Path:
        return Path(native_stack.export_files(self.run_dir)["traces"])

    @property
    def logs_file(self) -> Path:
        return Path(native_stack.export_files(self.run_dir)["logs"])

    def start(self, timeout: float = 60) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.run_dir / "collector.log", "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(self.command(), env=self.env(), stdout=log, stderr=subprocess.STDOUT)
        log.close()

        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"Collector exited with {self.proc.returncode}:\n{self.log_tail()}")
            return http_status(self.health_url) == 200

        wait_for(ready, timeout, "the Collector's health_check")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def log_tail(self, lines: int = 40) -> str:
        path = self.run_dir / "collector.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


@contextlib.contextmanager
def running_collector(run_dir: Path, **extra_env: str) -> Iterator[CollectorProcess]:
    col = CollectorProcess(run_dir, extra_env)
    col.start()
    try:
        yield col
    finally:
        col.stop()


# --- the native stack ---------------------------------------------------------------------------


@dataclass
class NativeStack:
    run_dir: Path
    env: dict[str, str]
    info: dict[str, Any] = field(default_factory=dict)

    def run(self, command: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, str(STACK_PY), command],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"stack.py {command} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def up(self) -> None:
        self.run("up")
        self.info = json.loads((self.run_dir / "stack.json").read_text())

    def down(self) -> None:
        self.run("down", check=False)

    def gateway_keys(self) -> list[str]:
        """API keys of the gateway config the stack runs (the open gateway accepts any key)."""
        import yaml

        config = self.env.get("GATEWAY_CONFIG") or str(REPO / "app" / "demo-config.yaml")
        tenants = (yaml.safe_load(Path(config).read_text()) or {}).get("tenants", [])
        return [k for t in tenants for k in t["keys"]] or ["sk-open-gateway"]

    @property
    def prometheus(self) -> str:
        return str(self.info["urls"]["prometheus"])

    @property
    def otlp_grpc(self) -> str:
        return str(self.info["urls"]["otlp_grpc"])

    @property
    def traces_file(self) -> Path:
        return Path(self.info["export_files"]["traces"])

    @property
    def logs_file(self) -> Path:
        return Path(self.info["export_files"]["logs"])


def stack_env(run_dir: Path, **overrides: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("OTLP_INGEST_TOKEN", None)
    env["RUN_DIR"] = str(run_dir)
    port_vars = [var for var, _ in native_stack.PORTS.values()]
    for var, port in zip(port_vars, free_ports(len(port_vars)), strict=True):
        env[var] = str(port)
    env.update(overrides)
    return env
