"""Self-telemetry: every metric the sidecar emits, defined in one place, exported with the OTel SDK over OTLP.

Only metrics are exported. The sidecar's own spans and logs are NOT sent over OTLP: they would travel through
the Collector back into the sidecar (a feedback loop). Logs go to stderr as JSON lines instead.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterable

from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

SERVICE_NAME = "llm-otel-sidecar"

# name: (unit, description, attribute keys) — docs/sidecar.md lists the same table
ITEMS_RECEIVED = "sidecar.items.received"
ITEMS_FORWARDED = "sidecar.items.forwarded"
BATCHES = "sidecar.batches"
FORWARD_ERRORS = "sidecar.forward.errors"
FORWARD_DURATION = "sidecar.forward.duration"
PROCESS_DURATION = "sidecar.process.duration"
REDACTIONS = "sidecar.redactions"
GENAI_COST = "sidecar.gen_ai.cost"
GENAI_UNPRICED = "sidecar.gen_ai.unpriced_spans"
GENAI_TOKENS = "sidecar.gen_ai.tokens"
LAST_FORWARD = "sidecar.forward.last_success"
BATCHES_SPLIT = "sidecar.batches.split"
ITEMS_RESUMED = "sidecar.items.resumed"
ITEMS_REPAIRED = "sidecar.items.repaired"
ITEMS_QUARANTINED = "sidecar.items.quarantined"

METRICS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    ITEMS_RECEIVED: ("{item}", "Spans, log records or metric data points received", ("signal",)),
    ITEMS_FORWARDED: (
        "{item}",
        "Spans, log records or metric data points forwarded and acknowledged downstream",
        ("signal",),
    ),
    BATCHES: ("{batch}", "Export requests handled, by outcome", ("signal", "outcome")),
    FORWARD_ERRORS: ("{error}", "Requests not forwarded, by kind", ("signal", "kind")),
    FORWARD_DURATION: ("s", "Duration of the forward to the Collector", ("signal",)),
    PROCESS_DURATION: ("s", "Duration of parsing + cost + redaction of one batch", ("signal",)),
    REDACTIONS: ("{redaction}", "Values redacted, by PII type", ("signal", "pii.type")),
    GENAI_COST: (
        "USD",
        "Cost of priced GenAI spans; exemplars carry the trace id of the costliest span",
        ("gen_ai.provider.name", "gen_ai.response.model"),
    ),
    GENAI_UNPRICED: (
        "{span}",
        "GenAI spans exported as unpriced (unknown model, invalid usage…), by reason",
        ("gen_ai.response.model", "reason"),
    ),
    GENAI_TOKENS: (
        "{token}",
        "Tokens of the priced GenAI spans, by type (input, output, cache_read, cache_write, reasoning)",
        ("gen_ai.provider.name", "gen_ai.response.model", "gen_ai.token.type"),
    ),
    LAST_FORWARD: ("s", "Unix time of the last successful forward (for silence alerts)", ("signal",)),
    BATCHES_SPLIT: ("{batch}", "Batches over the forward limit, forwarded in several parts", ("signal",)),
    ITEMS_RESUMED: (
        "{item}",
        "Items of a split batch not forwarded again on a retry: already acknowledged (no duplicate)",
        ("signal",),
    ),
    ITEMS_REPAIRED: ("{item}", "Items forwarded with a field repaired or truncated", ("signal", "reason")),
    ITEMS_QUARANTINED: (
        "{item}",
        "Items not forwarded but written to the dead-letter directory (PII at rest)",
        ("signal", "reason"),
    ),
}

_DURATION_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.0075,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


class Telemetry:
    def __init__(self, meter_provider: metrics.MeterProvider | None = None) -> None:
        self._provider = meter_provider
        meter = (meter_provider or metrics.NoOpMeterProvider()).get_meter("processors")
        self.items_received = meter.create_counter(ITEMS_RECEIVED, *METRICS[ITEMS_RECEIVED][:2])
        self.items_forwarded = meter.create_counter(ITEMS_FORWARDED, *METRICS[ITEMS_FORWARDED][:2])
        self.batches = meter.create_counter(BATCHES, *METRICS[BATCHES][:2])
        self.forward_errors = meter.create_counter(FORWARD_ERRORS, *METRICS[FORWARD_ERRORS][:2])
        self.forward_duration = meter.create_histogram(
            FORWARD_DURATION,
            *METRICS[FORWARD_DURATION][:2],
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        self.process_duration = meter.create_histogram(
            PROCESS_DURATION,
            *METRICS[PROCESS_DURATION][:2],
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        self.redactions = meter.create_counter(REDACTIONS, *METRICS[REDACTIONS][:2])
        self.cost = meter.create_counter(GENAI_COST, *METRICS[GENAI_COST][:2])
        self.unpriced = meter.create_counter(GENAI_UNPRICED, *METRICS[GENAI_UNPRICED][:2])
        self.tokens = meter.create_counter(GENAI_TOKENS, *METRICS[GENAI_TOKENS][:2])
        self.batches_split = meter.create_counter(BATCHES_SPLIT, *METRICS[BATCHES_SPLIT][:2])
        self.items_resumed = meter.create_counter(ITEMS_RESUMED, *METRICS[ITEMS_RESUMED][:2])
        self.items_repaired = meter.create_counter(ITEMS_REPAIRED, *METRICS[ITEMS_REPAIRED][:2])
        self.items_quarantined = meter.create_counter(ITEMS_QUARANTINED, *METRICS[ITEMS_QUARANTINED][:2])
        self._last_forward: dict[str, float] = {}
        self._lock = threading.Lock()
        meter.create_observable_gauge(
            LAST_FORWARD,
            [self._observe_last_forward],
            unit=METRICS[LAST_FORWARD][0],
            description=METRICS[LAST_FORWARD][1],
        )

    def _observe_last_forward(self, _options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            items = list(self._last_forward.items())
        return [Observation(ts, {"signal": signal}) for signal, ts in items]

    def forwarded(self, signal: str) -> None:
        with self._lock:
            self._last_forward[signal] = time.time()

    def add_cost(self, provider: str, model: str, usd: float, trace_id: bytes, span_id: bytes) -> None:
        """Count cost inside a context whose current span is the priced span, so the SDK's trace-based
        exemplar filter attaches that span's trace id as the exemplar."""
        attrs = {"gen_ai.provider.name": provider, "gen_ai.response.model": model}
        tid = int.from_bytes(trace_id, "big") if len(trace_id) == 16 else 0
        sid = int.from_bytes(span_id, "big") if len(span_id) == 8 else 0
        if tid and sid:
            ctx = SpanContext(
                trace_id=tid, span_id=sid, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED)
            )
            self.cost.add(usd, attrs, context=trace.set_span_in_context(NonRecordingSpan(ctx)))
        else:
            self.cost.add(usd, attrs)

    def shutdown(self) -> None:
        if self._provider is not None:
            shutdown = getattr(self._provider, "shutdown", None)
            if shutdown is not None:
                shutdown(timeout_millis=5000)


def setup_telemetry(worker_index: int = 0) -> Telemetry:
    """A Telemetry exporting over OTLP/gRPC (standard OTEL_EXPORTER_OTLP_* env; default the local Collector),
    or a no-op one when OTEL_SDK_DISABLED=true."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return Telemetry(None)
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics import MeterProvider, TraceBasedExemplarFilter
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource

    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"
    )
    insecure = endpoint.startswith("http://") or "://" not in endpoint
    exporter = OTLPMetricExporter(endpoint=endpoint, insecure=insecure)
    interval_ms = int(os.environ.get("OTEL_METRIC_EXPORT_INTERVAL", "10000"))
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=interval_ms)
    resource = Resource.create(
        {
            "service.name": os.environ.get("OTEL_SERVICE_NAME", SERVICE_NAME),
            "service.instance.id": f"{socket.gethostname()}-{os.getpid()}-w{worker_index}",
        }
    )
    provider = MeterProvider(
        metric_readers=[reader], resource=resource, exemplar_filter=TraceBasedExemplarFilter()
    )
    return Telemetry(provider)
