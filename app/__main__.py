"""``python -m app --host HOST --port PORT [--config FILE]``: run the gateway under uvicorn."""

from __future__ import annotations

import argparse
import gc
import os
import sys

from app.config import ConfigError, load_config


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m app", description="OpenAI-compatible LLM gateway (OTLP only)"
    )
    parser.add_argument("--host", default=os.environ.get("GATEWAY_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GATEWAY_PORT", "8000")))
    parser.add_argument(
        "--config",
        default=os.environ.get("GATEWAY_CONFIG") or None,
        help="YAML/JSON config file (default: zero-config simulated provider)",
    )
    parser.add_argument(
        "--log-level",
        default=os.environ.get("GATEWAY_LOG_LEVEL", "warning"),
        help="uvicorn's own log level (request logs are structured and always on)",
    )
    parser.add_argument(
        "--no-stderr-logs",
        action="store_true",
        default=os.environ.get("GATEWAY_STDERR_LOGS", "true").lower() in ("0", "false", "no"),
        help="do not print the JSON request log on stderr (OTLP logs are unaffected)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"error: invalid gateway configuration: {exc}", file=sys.stderr)
        return 2
    import uvicorn
    from opentelemetry import metrics, trace
    from opentelemetry._logs import set_logger_provider

    from app.api import create_app, silence_injected_disconnects
    from app.telemetry.setup import setup_telemetry

    try:
        telemetry = setup_telemetry()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if telemetry.enabled:
        trace.set_tracer_provider(telemetry.tracer_provider)
        metrics.set_meter_provider(telemetry.meter_provider)
        set_logger_provider(telemetry.logger_provider)
    app = create_app(config, telemetry, log_to_stderr=not args.no_stderr_logs)
    silence_injected_disconnects()
    # Everything built so far (modules, the app, the SDK) lives as long as the process: keep it out of the
    # cyclic collector, whose full passes over it otherwise stall the event loop for milliseconds.
    gc.collect()
    gc.freeze()
    # Almost everything a request allocates is freed by reference counting; the cyclic collector's
    # generation-0 passes (every 700 net allocations by default) still cost ~300 ms per 8 s under load here,
    # ~55 µs per proxied request, and found next to nothing. A threshold of 50,000 leaves cycles bounded and
    # ran no collection at all in the same 8 s (bench: docs/gateway.md, "Benchmark").
    gc.set_threshold(50_000, 10, 10)
    try:
        uvicorn.run(
            app,
            host=args.host,
            port=args.port,
            log_level=args.log_level,
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=5,
        )
    finally:
        telemetry.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
