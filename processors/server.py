"""Runs the sidecar's gRPC server (OTLP trace + logs Export, grpc.health.v1), the forward channel and the
SIGTERM drain. Batches are processed in this process (``Pipeline``) or, with ``--workers N``, by a pool of
worker processes (``workers.WorkerPool``); forwarding is the same either way."""

from __future__ import annotations

import logging
import signal
import threading
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from processors.config import SidecarConfig
from processors.deadletter import DeadLetter, InFlight, default_directory
from processors.forwarding import ExportForwarder, ForwardLimit
from processors.handlers import (
    LOGS_METHOD,
    LOGS_SERVICE,
    METRICS_METHOD,
    METRICS_SERVICE,
    TRACE_METHOD,
    TRACE_SERVICE,
    Processor,
)
from processors.telemetry import Telemetry

log = logging.getLogger("processors.server")
_MAX_FRAME_SIZE = (1 << 24) - 1  # the largest HTTP/2 allows


@dataclass
class RunningServer:
    server: grpc.Server
    health: health.HealthServicer
    channel: grpc.Channel
    port: int

    def stop(self, grace: float) -> None:
        """Refuse new RPCs, let in-flight batches finish (up to ``grace`` s), close the forward channel."""
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait()
        self.channel.close()


def start_server(
    config: SidecarConfig,
    pipeline: Processor,
    telemetry: Telemetry,
    listen: str,
    forward: str,
    reuse_port: bool,
) -> RunningServer:
    limit = config.server.max_message_bytes
    channel = grpc.insecure_channel(
        forward,
        options=[
            ("grpc.max_send_message_length", -1),  # ForwardLimit decides; never refused on our side
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ("grpc.enable_retries", 0),
        ],
    )
    forward_limit = ForwardLimit(config.server.forward_max_message_bytes)  # one per channel
    dead_letter = DeadLetter(
        Path(config.server.dead_letter_dir) if config.server.dead_letter_dir else default_directory(),
        config.server.dead_letter_max_bytes,
    )
    try:
        inflight: InFlight | None = InFlight(dead_letter.directory)
    except OSError as exc:  # quarantining will report its own errors; crash loops are then not bounded
        log.error("cannot use the dead-letter directory", extra={"error": str(exc)})
        inflight = None
    forwarders = {
        service: ExportForwarder(
            signal=name,
            method=method,
            process=process,
            server_config=config.server,
            telemetry=telemetry,
            channel=channel,
            limit=forward_limit,
            dead_letter=dead_letter,
            inflight=inflight,
        )
        for service, method, name, process in (
            (TRACE_SERVICE, TRACE_METHOD, "traces", pipeline.process_traces),
            (LOGS_SERVICE, LOGS_METHOD, "logs", pipeline.process_logs),
            (METRICS_SERVICE, METRICS_METHOD, "metrics", pipeline.process_metrics),
        )
    }
    server = grpc.server(
        futures.ThreadPoolExecutor(
            max_workers=config.server.max_concurrent_batches + 4, thread_name_prefix="sidecar"
        ),
        options=[
            ("grpc.so_reuseport", 1 if reuse_port else 0),
            # our handler answers up to 2x the limit with a precise message; beyond that gRPC refuses it
            ("grpc.max_receive_message_length", 2 * limit),
            # let the Collector send a batch in a few large HTTP/2 frames rather than ~100 of 16 KB
            ("grpc.http2.max_frame_size", _MAX_FRAME_SIZE),
        ],
    )
    server.add_generic_rpc_handlers(
        tuple(
            grpc.method_handlers_generic_handler(
                service, {"Export": grpc.unary_unary_rpc_method_handler(forwarder.handle)}
            )
            for service, forwarder in forwarders.items()
        )
    )
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port(listen)
    if port == 0:
        raise OSError(f"cannot listen on {listen} (address in use or invalid)")
    server.start()
    for service in ("", *forwarders):
        health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
    return RunningServer(server, health_servicer, channel, port)


def run_worker(
    config: SidecarConfig,
    pipeline: Processor,
    telemetry: Telemetry,
    listen: str,
    forward: str,
    reuse_port: bool,
) -> int:
    """Serve until SIGTERM/SIGINT, then drain and return 0."""
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        running = start_server(config, pipeline, telemetry, listen, forward, reuse_port)
        log.info("sidecar serving", extra={"listen": listen, "port": running.port, "forward": forward})
        while not stop.wait(3600):
            pass
        log.info("draining", extra={"grace_s": config.server.drain_timeout_seconds})
        running.stop(config.server.drain_timeout_seconds)
        log.info("stopped")
        return 0
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        telemetry.shutdown()
