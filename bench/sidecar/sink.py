"""The benchmark's OTLP/gRPC sink: accepts trace, log and metric exports on loopback and drops them.

Run: python bench/sidecar/sink.py PORT   (prints "ready" once serving; SIGTERM stops it)
"""

from __future__ import annotations

import signal
import sys
import threading
from concurrent import futures

import grpc

SERVICES = (
    "opentelemetry.proto.collector.trace.v1.TraceService",
    "opentelemetry.proto.collector.logs.v1.LogsService",
    "opentelemetry.proto.collector.metrics.v1.MetricsService",
)


def main() -> int:
    port = int(sys.argv[1])
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=16),
        options=[("grpc.max_receive_message_length", 256 * 1024 * 1024), ("grpc.so_reuseport", 0)],
    )

    def export(_raw: bytes, _context: grpc.ServicerContext) -> bytes:
        return b""  # an empty Export*ServiceResponse: full success

    server.add_generic_rpc_handlers(
        tuple(
            grpc.method_handlers_generic_handler(s, {"Export": grpc.unary_unary_rpc_method_handler(export)})
            for s in SERVICES
        )
    )
    if not server.add_insecure_port(f"127.0.0.1:{port}"):
        print(f"cannot bind 127.0.0.1:{port}", file=sys.stderr)
        return 1
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print("ready", flush=True)
    stop.wait(3600)
    server.stop(1).wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
