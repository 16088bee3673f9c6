"""The gateway's instruments, with the semconv explicit bucket boundary advice."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from time import time_ns
from typing import Any

from opentelemetry import metrics
from opentelemetry.context import Context

from app import __version__
from app.telemetry.lean_metrics import LeanMeterProvider

# Bucket advice from the GenAI semconv (gen-ai-metrics.md).
TOKEN_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864]
DURATION_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92]
TTFT_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0]
TPOT_BUCKETS = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5]
FEEDBACK_BUCKETS = [0.0, 0.25, 0.5, 0.75, 1.0]

Attrs = Mapping[str, Any]
_INPUT = ("gen_ai.token.type", "input")
_OUTPUT = ("gen_ai.token.type", "output")


class GatewayMetrics:
    def __init__(self, meter_provider: metrics.MeterProvider, latest_experimental: bool) -> None:
        meter = meter_provider.get_meter("app.gateway", __version__)

        # A LeanHistogram with the lean provider (whose record_locked record_call uses), else the other
        # provider's histogram.
        def h(name: str, unit: str, description: str, buckets: Sequence[float]) -> Any:
            return meter.create_histogram(
                name, unit=unit, description=description, explicit_bucket_boundaries_advisory=buckets
            )

        self.token_usage = h(
            "gen_ai.client.token.usage", "{token}", "Number of input and output tokens used.", TOKEN_BUCKETS
        )
        self.operation_duration = h(
            "gen_ai.client.operation.duration", "s", "GenAI operation duration.", DURATION_BUCKETS
        )
        self.time_to_first_token = h(
            "gen_ai.server.time_to_first_token",
            "s",
            "Time to generate first token for successful responses.",
            TTFT_BUCKETS,
        )
        self.time_per_output_token = h(
            "gen_ai.server.time_per_output_token",
            "s",
            "Time per output token generated after the first token for successful responses.",
            TPOT_BUCKETS,
        )
        self.active_streams = meter.create_up_down_counter(
            "llm_gateway.active_streams", unit="{stream}", description="Streaming responses in flight."
        )
        self.retries = meter.create_counter(
            "llm_gateway.upstream.retries", unit="{retry}", description="Upstream request retries."
        )
        self.errors = meter.create_counter(
            "llm_gateway.errors",
            unit="{error}",
            description="Requests that ended in an error, by error.type.",
        )
        self.feedback = h(
            "llm_gateway.feedback.score",
            "1",
            "User feedback scores (0 = bad, 1 = good) for responses.",
            FEEDBACK_BUCKETS,
        )
        self.latest = latest_experimental
        # The lean provider (app/telemetry/lean_metrics.py) whose instruments these are, if they are.
        self._lean = meter_provider if isinstance(meter_provider, LeanMeterProvider) else None
        if latest_experimental:
            self.inf_duration = h(
                "gen_ai.client.inference.duration", "s", "GenAI inference duration.", DURATION_BUCKETS
            )
            self.inf_ttfc = h(
                "gen_ai.client.inference.time_to_first_chunk",
                "s",
                "Time to receive the first chunk of a streamed response.",
                DURATION_BUCKETS,
            )
            self.inf_tpoc = h(
                "gen_ai.client.inference.time_per_output_chunk",
                "s",
                "Time per output chunk after the first one.",
                TPOT_BUCKETS,
            )
            self.inf_input = h(
                "gen_ai.client.inference.usage.input_tokens", "{token}", "Input tokens used.", TOKEN_BUCKETS
            )
            self.inf_output = h(
                "gen_ai.client.inference.usage.output_tokens", "{token}", "Output tokens used.", TOKEN_BUCKETS
            )
            self.inf_cache_read = h(
                "gen_ai.client.inference.usage.cache_read.input_tokens",
                "{token}",
                "Input tokens served from a provider-managed cache.",
                TOKEN_BUCKETS,
            )

    def record_call(
        self,
        attrs: Attrs,
        duration_s: float,
        usage: Mapping[str, int],
        error_type: str | None,
        ctx: Context | None,
        ttft_s: float | None = None,
        per_token_s: float | None = None,
    ) -> None:
        """One finished model call (with a stream's first-chunk and per-token times for a successful one).
        ``ctx`` holds the GenAI span, so exemplars point at it."""
        inp = usage.get("gen_ai.usage.input_tokens")
        out = usage.get("gen_ai.usage.output_tokens")
        cached = usage.get("gen_ai.usage.cache_read.input_tokens") if self.latest else None
        if self._lean is None:
            self._record_call_api(attrs, duration_s, inp, out, cached, error_type, ctx, ttft_s, per_token_s)
            return
        # The lean instruments' path: the attribute tuple is built once, the exemplar's ids looked up once
        # and the provider's lock taken once for all of the call's 3-10 measurements.
        key = tuple(attrs.items())
        duration_key = key if error_type is None else (*key, ("error.type", error_type))
        ids = self._lean.exemplars.ids(ctx)
        now = time_ns()
        with self._lean.lock:
            self.operation_duration.record_locked(duration_s, duration_key, ids, now)
            if inp is not None:
                self.token_usage.record_locked(inp, (*key, _INPUT), ids, now)
            if out is not None:
                self.token_usage.record_locked(out, (*key, _OUTPUT), ids, now)
            if ttft_s is not None:
                self.time_to_first_token.record_locked(ttft_s, key, ids, now)
                if per_token_s is not None:
                    self.time_per_output_token.record_locked(per_token_s, key, ids, now)
            if self.latest:
                self.inf_duration.record_locked(duration_s, duration_key, ids, now)
                if inp is not None:
                    self.inf_input.record_locked(inp, key, ids, now)
                if out is not None:
                    self.inf_output.record_locked(out, key, ids, now)
                if cached is not None:
                    self.inf_cache_read.record_locked(cached, key, ids, now)
                if ttft_s is not None:
                    self.inf_ttfc.record_locked(ttft_s, key, ids, now)

    def _record_call_api(
        self,
        attrs: Attrs,
        duration_s: float,
        inp: int | None,
        out: int | None,
        cached: int | None,
        error_type: str | None,
        ctx: Context | None,
        ttft_s: float | None,
        per_token_s: float | None,
    ) -> None:
        """``record_call`` through the metrics API, for instruments of any other meter provider."""
        duration_attrs = attrs if error_type is None else {**attrs, "error.type": error_type}
        self.operation_duration.record(duration_s, duration_attrs, context=ctx)
        if inp is not None:
            self.token_usage.record(inp, {**attrs, "gen_ai.token.type": "input"}, context=ctx)
        if out is not None:
            self.token_usage.record(out, {**attrs, "gen_ai.token.type": "output"}, context=ctx)
        if ttft_s is not None:
            self.time_to_first_token.record(ttft_s, attrs, context=ctx)
            if per_token_s is not None:
                self.time_per_output_token.record(per_token_s, attrs, context=ctx)
        if self.latest:
            self.inf_duration.record(duration_s, duration_attrs, context=ctx)
            if inp is not None:
                self.inf_input.record(inp, attrs, context=ctx)
            if out is not None:
                self.inf_output.record(out, attrs, context=ctx)
            if cached is not None:
                self.inf_cache_read.record(cached, attrs, context=ctx)
            if ttft_s is not None:
                self.inf_ttfc.record(ttft_s, attrs, context=ctx)

    def record_chunk_gap(self, attrs: Attrs, gap_s: float, ctx: Context | None) -> None:
        if self.latest:
            self.inf_tpoc.record(gap_s, attrs, context=ctx)
