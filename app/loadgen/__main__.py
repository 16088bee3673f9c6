"""``python -m app.loadgen --base-url URL --rate RPS --duration S ...``: one JSON summary line on stdout."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from app.loadgen.runner import DEFAULT_MODELS, LoadConfig, LoadGenerator


def _share(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return value


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def _csv(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip())


def parse_args(argv: list[str] | None = None) -> tuple[LoadConfig, bool]:
    p = argparse.ArgumentParser(
        prog="python -m app.loadgen",
        description="Drive the LLM gateway with a realistic, seeded request mix.",
    )
    p.add_argument("--base-url", default="http://127.0.0.1:8000")
    p.add_argument(
        "--rate", type=_positive, default=5.0, help="target requests per second (Poisson arrivals)"
    )
    p.add_argument("--duration", type=_positive, default=10.0, help="seconds to send for")
    p.add_argument("--concurrency", type=int, default=32, help="max requests in flight")
    p.add_argument("--api-key", default=None, help="one API key for every request")
    p.add_argument(
        "--tenants-keys", type=_csv, default=(), help="comma-separated API keys, picked per request"
    )
    p.add_argument("--pii-rate", type=_share, default=0.05, help="share of prompts that contain PII")
    p.add_argument("--stream-share", type=_share, default=0.3, help="share of streaming requests")
    p.add_argument("--models", type=_csv, default=DEFAULT_MODELS)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--feedback-share", type=_share, default=0.0, help="share of responses given a feedback score"
    )
    p.add_argument("--timeout", type=_positive, default=30.0, help="per-request timeout in seconds")
    p.add_argument("--quiet", action="store_true", help="no progress line on stderr")
    p.add_argument("--pii-values-out", default=None, help="write every injected PII value here (JSON lines)")
    args = p.parse_args(argv)
    if args.concurrency < 1:
        p.error("--concurrency must be >= 1")
    keys = tuple(args.tenants_keys) or ((args.api_key,) if args.api_key else ())
    return LoadConfig(
        base_url=args.base_url.rstrip("/"),
        rate=args.rate,
        duration_s=args.duration,
        concurrency=args.concurrency,
        api_keys=keys,
        pii_rate=args.pii_rate,
        stream_share=args.stream_share,
        models=tuple(args.models),
        seed=args.seed,
        feedback_share=args.feedback_share,
        timeout_s=args.timeout,
        pii_values_path=args.pii_values_out,
    ), args.quiet


def main(argv: list[str] | None = None) -> int:
    config, quiet = parse_args(argv)
    summary = asyncio.run(LoadGenerator(config, progress=None if quiet else sys.stderr).run())
    print(json.dumps(summary, sort_keys=False), flush=True)
    return 0 if summary["ok"] > 0 or summary["requests"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
