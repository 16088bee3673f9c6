"""Pipeline health: the Collector's receivers, exporters, queues and memory limiter; the sidecar's
throughput, errors, durations and freshness."""

# ruff: noqa: E501 - PromQL, TraceQL and LogQL stay whole on one line each so they read as queries

from __future__ import annotations

from common import ENV_JOIN, ENV_VAR, new_dashboard, q, quantile, sel, st, ts
from grafana_foundation_sdk.builders import dashboard as dash

RX = "receiver, transport"


def build() -> dash.Dashboard:
    d = new_dashboard(
        "llm-pipeline-health",
        "Is the path that carries the telemetry healthy? Collector self-telemetry (otelcol_*) and the "
        "sidecar's (sidecar.*).",
        [ENV_VAR],
    )
    d = d.with_row(dash.Row("Collector"))
    d = d.with_panel(
        ts(
            "Accepted per receiver and signal",
            "How many spans, metric points and log records per second does "
            "each receiver accept (otlp = apps, otlp/internal = back from the sidecar)?",
            [
                q(
                    f"sum by ({RX}) (rate(otelcol_receiver_accepted_spans_total[$__rate_interval]))",
                    "spans {{receiver}}",
                    ref="A",
                ),
                q(
                    f"sum by ({RX}) (rate(otelcol_receiver_accepted_metric_points_total[$__rate_interval]))",
                    "metric points {{receiver}}",
                    ref="B",
                ),
                q(
                    f"sum by ({RX}) (rate(otelcol_receiver_accepted_log_records_total[$__rate_interval]))",
                    "log records {{receiver}}",
                    ref="C",
                ),
            ],
            unit="short",
        )
    )
    d = d.with_panel(
        ts(
            "Refused per receiver and signal",
            "Did a receiver refuse data (memory limiter, bad requests, "
            "authentication)? Refused data was not acknowledged, so the sender keeps it.",
            [
                q(
                    f"sum by ({RX}) (rate(otelcol_receiver_refused_spans_total[$__rate_interval]))",
                    "spans {{receiver}}",
                    ref="A",
                ),
                q(
                    f"sum by ({RX}) (rate(otelcol_receiver_refused_metric_points_total[$__rate_interval]))",
                    "metric points {{receiver}}",
                    ref="B",
                ),
                q(
                    f"sum by ({RX}) (rate(otelcol_receiver_refused_log_records_total[$__rate_interval]))",
                    "log records {{receiver}}",
                    ref="C",
                ),
            ],
            unit="short",
        )
    )
    for signal, suffix in [
        ("spans", "spans"),
        ("log records", "log_records"),
        ("metric points", "metric_points"),
    ]:
        d = d.with_panel(
            ts(
                f"Exporter {signal}: sent, failed, enqueue failed",
                f"How many {signal} per second does each "
                "exporter deliver, fail to send (retried from the queue) or fail to enqueue (queue full: lost)?",
                [
                    q(
                        f"sum by (exporter) (rate(otelcol_exporter_sent_{suffix}_total[$__rate_interval]))",
                        "sent {{exporter}}",
                        ref="A",
                    ),
                    q(
                        f"sum by (exporter) (rate(otelcol_exporter_send_failed_{suffix}_total[$__rate_interval]))",
                        "failed {{exporter}}",
                        ref="B",
                    ),
                    q(
                        f"sum by (exporter) (rate(otelcol_exporter_enqueue_failed_{suffix}_total[$__rate_interval])) or "
                        f"sum by (exporter) (rate(otelcol_exporter_sent_{suffix}_total[$__rate_interval])) * 0",
                        "enqueue failed {{exporter}}",
                        ref="C",
                    ),
                ],
                unit="short",
                w=8,
            )
        )
    d = d.with_panel(
        ts(
            "Queue fill per exporter",
            "How full is each exporter's persistent sending queue (size / capacity)? "
            "Near 1 means the backend or the sidecar is not keeping up and new data will be refused.",
            [
                q(
                    "max by (exporter, data_type) (otelcol_exporter_queue_size) / "
                    "max by (exporter, data_type) (otelcol_exporter_queue_capacity)",
                    "{{exporter}} {{data_type}}",
                )
            ],
            unit="percentunit",
        )
    )
    d = d.with_panel(
        ts(
            "Memory limiter refusals and memory",
            "Is the memory limiter refusing data (refused items at the "
            "receivers while it is over its limit), and how close is the Collector's heap to it?",
            [
                q(
                    "sum(rate(otelcol_receiver_refused_spans_total[$__rate_interval])) + "
                    "sum(rate(otelcol_receiver_refused_log_records_total[$__rate_interval])) + "
                    "sum(rate(otelcol_receiver_refused_metric_points_total[$__rate_interval]))",
                    "refused items/s",
                    ref="A",
                ),
                q("sum(otelcol_process_runtime_heap_alloc_bytes) / 1e6", "heap MB", ref="B"),
            ],
            unit="short",
        )
    )
    d = d.with_panel(
        ts(
            "Derived metrics dropped at the cost series cap",
            "Did a new cost/token dimension combination get "
            "dropped because COST_MAX_SERIES was reached (deltatocumulative error=limit)? 0 = every priced span "
            "counted.",
            [
                q(
                    'sum(rate(otelcol_deltatocumulative_datapoints_total{error="limit"}[$__rate_interval])) or '
                    "sum(rate(otelcol_deltatocumulative_datapoints_total[$__rate_interval])) * 0",
                    "dropped/s",
                )
            ],
            unit="short",
            w=24,
        )
    )
    d = d.with_row(dash.Row("Sidecar"))
    d = d.with_panel(
        ts(
            "Sidecar received, forwarded, errors by kind",
            "How many spans/log records per second does the "
            "sidecar receive and get acknowledged downstream, and which errors stop a forward?",
            [
                q(
                    f"sum by (signal) (rate(sidecar_items_received_total[$__rate_interval]){ENV_JOIN})",
                    "received {{signal}}",
                    ref="A",
                ),
                q(
                    f"sum by (signal) (rate(sidecar_items_forwarded_total[$__rate_interval]){ENV_JOIN})",
                    "forwarded {{signal}}",
                    ref="B",
                ),
                q(
                    f"sum by (signal, kind) (rate(sidecar_forward_errors_total[$__rate_interval]){ENV_JOIN}) or "
                    f"sum by (signal) (rate(sidecar_items_received_total[$__rate_interval]){ENV_JOIN}) * 0",
                    "errors {{signal}} {{kind}}",
                    ref="C",
                ),
            ],
            unit="short",
        )
    )
    d = d.with_panel(
        ts(
            "Sidecar processing and forward duration p95",
            "How long does one batch take to price and redact, "
            "and to be acknowledged by the Collector (sidecar.process.duration, sidecar.forward.duration)?",
            [
                q(
                    quantile(
                        0.95, "sidecar_process_duration_seconds_bucket", sel(), by="signal", join=ENV_JOIN
                    ),
                    "process {{signal}}",
                    ref="A",
                    exemplar=True,
                ),
                q(
                    quantile(
                        0.95, "sidecar_forward_duration_seconds_bucket", sel(), by="signal", join=ENV_JOIN
                    ),
                    "forward {{signal}}",
                    ref="B",
                    exemplar=True,
                ),
            ],
            unit="s",
        )
    )
    d = d.with_panel(
        st(
            "Age of the last forward",
            "How many seconds ago did the sidecar last forward a batch, per signal "
            "(sidecar.forward.last_success)? Growing = nothing gets through.",
            [
                q(
                    f"time() - max by (signal) (sidecar_forward_last_success_seconds{ENV_JOIN})",
                    "{{signal}}",
                    instant=True,
                )
            ],
            unit="s",
            w=12,
        )
    )
    d = d.with_panel(
        st(
            "Export freshness",
            "How many seconds ago did the metrics the dashboards read last change "
            "(spanmetrics calls, i.e. traces through the whole loop)?",
            [
                q(
                    "time() - max(timestamp(changes(traces_span_metrics_calls_total[5m]) > 0))",
                    "seconds",
                    instant=True,
                )
            ],
            unit="s",
            w=12,
        )
    )
    return d
