"""Privacy: what the sidecar redacted, where, how often, and whether it refused (fail closed)."""

# ruff: noqa: E501 - PromQL, TraceQL and LogQL stay whole on one line each so they read as queries

from __future__ import annotations

from common import (
    ENV,
    ENV_JOIN,
    ENV_VAR,
    SERVICE_VAR,
    SVC,
    new_dashboard,
    q,
    quantile,
    sel,
    traceql_table,
    ts,
)
from grafana_foundation_sdk.builders import dashboard as dash

SIDE = sel()


def build() -> dash.Dashboard:
    d = new_dashboard(
        "llm-privacy",
        "PII and secret redaction by the sidecar (processors/): types, services, the share of telemetry that "
        "needed it, traces with redactions, and fail-closed refusals.",
        [ENV_VAR, SERVICE_VAR],
    )
    d = d.with_panel(
        ts(
            "Redactions per second by PII type",
            "Which kinds of personal data or secrets are being removed, "
            "per second (SLI privacy:pii_redactions:rate5m, from sidecar.redactions)?",
            [q("sum by (pii_type, signal) (privacy:pii_redactions:rate5m)", "{{pii_type}} ({{signal}})")],
            unit="short",
            stack=True,
        )
    )
    d = d.with_panel(
        ts(
            "Redacted values per second by service",
            "Which services send personal data in their spans (sum of pii.redacted.count on exported spans)?",
            [
                q(
                    f"sum by (service_name) (rate(llm_redacted_values_total{sel(ENV, SVC)}[$__rate_interval]))",
                    "{{service_name}}",
                )
            ],
            unit="short",
            stack=True,
        )
    )
    d = d.with_panel(
        ts(
            "Share of spans and logs that needed redaction",
            "Which share of the exported spans and log records had at least one value redacted?",
            [
                q(
                    f"sum(rate(llm_redacted_spans_total{sel(ENV, SVC)}[$__rate_interval])) / "
                    f"sum(rate(llm_spans_total{sel(ENV, SVC)}[$__rate_interval]))",
                    "spans",
                    ref="A",
                ),
                q(
                    f"(sum(rate(llm_redacted_logs_total{sel(ENV, SVC)}[$__rate_interval])) or vector(0)) / "
                    f"sum(rate(llm_logs_total{sel(ENV, SVC)}[$__rate_interval]))",
                    "log records",
                    ref="B",
                ),
            ],
            unit="percentunit",
        )
    )
    d = d.with_panel(
        ts(
            "Fail-closed refusals and held items",
            "Did the sidecar refuse to forward anything it could not "
            "redact (batches by outcome: failed = fail closed, INTERNAL), and how many items wait in the "
            "Collector's persistent queue in front of the sidecar (held, never sent unredacted)?",
            [
                q(
                    f"sum by (signal, outcome) (rate(sidecar_batches_total[$__rate_interval]){ENV_JOIN})",
                    "batches {{signal}} {{outcome}}",
                    ref="A",
                ),
                q(
                    'sum by (data_type) (otelcol_exporter_queue_size{exporter="otlp_grpc/sidecar"})',
                    "held for the sidecar {{data_type}}",
                    ref="B",
                ),
            ],
            unit="short",
        )
    )
    d = d.with_panel(
        ts(
            "Redaction processing time p95",
            "How long does the sidecar take to price and redact one batch (sidecar.process.duration)?",
            [
                q(
                    quantile(
                        0.95, "sidecar_process_duration_seconds_bucket", SIDE, by="signal", join=ENV_JOIN
                    ),
                    "{{signal}}",
                    exemplar=True,
                )
            ],
            unit="s",
            w=24,
        )
    )
    d = d.with_panel(
        traceql_table(
            "Traces with redactions",
            "Which traces had values redacted, and of which types? TraceQL over Tempo "
            "(pii.redacted.count is an integer attribute).",
            '{ span.pii.redacted.count > 0 && resource.service.name =~ "$service" } '
            "| select(span.pii.redacted.count, span.pii.redacted.types, span.gen_ai.response.model)",
        )
    )
    return d
