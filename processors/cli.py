"""Command line and environment: flags win over SIDECAR_* variables, which win over defaults."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

DEFAULT_LISTEN = "127.0.0.1:4319"
DEFAULT_FORWARD = "127.0.0.1:14317"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@dataclass(frozen=True)
class Options:
    listen: str
    forward: str
    config: str | None
    workers: int
    log_level: str


def _host_port(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return value


def _workers(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 256:
        raise argparse.ArgumentTypeError(f"expected an integer between 1 and 256, got {value!r}")
    return int(value)


def parse_args(argv: list[str] | None = None, environ: dict[str, str] | None = None) -> Options:
    env = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(
        prog="python -m processors",
        description="OTLP/gRPC sidecar: token cost enrichment and PII redaction, fail-closed forwarding.",
    )
    parser.add_argument(
        "--listen",
        type=_host_port,
        default=None,
        help=f"HOST:PORT to serve OTLP/gRPC on (env SIDECAR_LISTEN, default {DEFAULT_LISTEN})",
    )
    parser.add_argument(
        "--forward",
        type=_host_port,
        default=None,
        help=f"HOST:PORT of the Collector's internal OTLP/gRPC receiver "
        f"(env SIDECAR_FORWARD, default {DEFAULT_FORWARD})",
    )
    parser.add_argument(
        "--config", default=None, help="YAML config file (env SIDECAR_CONFIG; default: built-in)"
    )
    parser.add_argument(
        "--workers",
        type=_workers,
        default=None,
        help="processes that parse, price and redact batches behind one gRPC front "
        "(env SIDECAR_WORKERS, default 1: all in one process)",
    )
    parser.add_argument(
        "--log-level",
        default=None,
        choices=LOG_LEVELS,
        help="stderr JSON log level (env SIDECAR_LOG_LEVEL, default INFO)",
    )
    ns = parser.parse_args(argv)

    def from_env(name: str, conv: Callable[[str], T], default: str) -> T:
        raw = env.get(name, "") or default
        try:
            return conv(raw)
        except argparse.ArgumentTypeError as exc:
            parser.error(f"{name}: {exc}")

    listen = ns.listen or from_env("SIDECAR_LISTEN", _host_port, DEFAULT_LISTEN)
    forward = ns.forward or from_env("SIDECAR_FORWARD", _host_port, DEFAULT_FORWARD)
    workers = ns.workers or from_env("SIDECAR_WORKERS", _workers, "1")
    config = ns.config or env.get("SIDECAR_CONFIG") or None
    level = ns.log_level or env.get("SIDECAR_LOG_LEVEL", "INFO").upper()
    if level not in LOG_LEVELS:
        parser.error(f"SIDECAR_LOG_LEVEL: expected one of {', '.join(LOG_LEVELS)}, got {level!r}")
    return Options(listen, forward, config, workers, level)
