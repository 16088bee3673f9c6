"""Entry point: ``python -m processors --listen HOST:PORT --forward HOST:PORT [--config F] [--workers N]``."""

from __future__ import annotations

import logging
import os
import sys

from processors.cli import parse_args
from processors.config import load_config
from processors.config_loader import ConfigError
from processors.jsonlog import setup_logging

log = logging.getLogger("processors")


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    setup_logging(opts.log_level)
    try:
        config = load_config(opts.config)
        # heavy imports after the config is known to be good; building the pipeline validates the rest
        from processors.handlers import Pipeline

        pipeline = Pipeline(config)
    except ConfigError as exc:
        log.error("bad config", extra={"field": exc.field, "problem": exc.problem})
        print(f"processors: {exc}", file=sys.stderr)
        return 2
    from processors.workers import ENV_WORKER_INDEX, supervise

    worker_index = os.environ.get(ENV_WORKER_INDEX)
    if opts.workers > 1 and worker_index is None:
        return supervise(opts)
    from processors.server import run_worker
    from processors.telemetry import setup_telemetry

    telemetry = setup_telemetry(int(worker_index or 0))
    try:
        return run_worker(
            config, pipeline, telemetry, opts.listen, opts.forward, reuse_port=worker_index is not None
        )
    except OSError as exc:
        log.error("cannot start", extra={"error": str(exc)})
        print(f"processors: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
