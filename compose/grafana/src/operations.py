"""LLM operations (on call): traffic, errors, latency with exemplars, streaming, retries, alerts, error logs."""

# ruff: noqa: E501 - PromQL, TraceQL and LogQL stay whole on one line each so they read as queries

from __future__ import annotations

from common import (
    ANY_ERROR,
    ENV_JOB_JOIN,
    ENV_JOIN,
    GENAI_VARS,
    JOB,
    LOKI,
    MODEL,
    PROVIDER,
    S4XX,
    S5XX,
    S429,
    TENANT,
    new_dashboard,
    q,
    quantile,
    sel,
    st,
    ts,
)
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import logs, loki

GENAI = sel(JOB, MODEL, PROVIDER, TENANT)
HTTP = sel(JOB)
# "none" as an explicit 0 over the requests that were answered, not a line that is simply missing
NO_HTTP_ERRORS = (
    f"sum(rate(http_server_request_duration_seconds_count{HTTP}[$__rate_interval]){ENV_JOIN}) * 0"
)


def build() -> dash.Dashboard:
    d = new_dashboard(
        "llm-operations",
        "On-call view: request rate, errors by type, latency and TTFT with exemplars to Tempo, streams, retries, "
        "firing alerts and the gateway's error logs.",
        GENAI_VARS,
    )
    d = d.with_row(dash.Row("Traffic and errors"))
    d = d.with_panel(
        ts(
            "Request rate by route and status",
            "How many HTTP requests per second does each route answer, by "
            "status code (http.server.request.duration, OTel HTTP server instrumentation)?",
            [
                q(
                    f"sum by (http_route, http_response_status_code) (rate(http_server_request_duration_seconds_count{HTTP}"
                    f"[$__rate_interval]){ENV_JOIN})",
                    "{{http_route}} {{http_response_status_code}}",
                )
            ],
            unit="reqps",
        )
    )
    d = d.with_panel(
        ts(
            "Error rate by type",
            "Which errors happen, per second: HTTP 5xx and 4xx answers, 429s, and GenAI "
            "operations by error.type (upstream errors, timeouts)?",
            [
                q(
                    f"sum(rate(http_server_request_duration_seconds_count{sel(JOB, S5XX)}"
                    f"[$__rate_interval]){ENV_JOIN}) or {NO_HTTP_ERRORS}",
                    "5xx",
                    ref="A",
                ),
                q(
                    f"sum(rate(http_server_request_duration_seconds_count{sel(JOB, S4XX)}"
                    f"[$__rate_interval]){ENV_JOIN}) or {NO_HTTP_ERRORS}",
                    "4xx",
                    ref="B",
                ),
                q(
                    f"sum(rate(http_server_request_duration_seconds_count{sel(JOB, S429)}"
                    f"[$__rate_interval]){ENV_JOIN}) or {NO_HTTP_ERRORS}",
                    "429",
                    ref="C",
                ),
                q(
                    f"sum by (error_type) (rate(gen_ai_client_operation_duration_seconds_count{sel(JOB, MODEL, PROVIDER, TENANT, ANY_ERROR)}"
                    f"[$__rate_interval]){ENV_JOIN}) or sum(rate(gen_ai_client_operation_duration_seconds_count{GENAI}[$__rate_interval]){ENV_JOIN}) * 0",
                    "GenAI {{error_type}}",
                    ref="D",
                ),
            ],
            unit="reqps",
        )
    )
    d = d.with_row(dash.Row("Latency"))
    lat = "gen_ai_client_operation_duration_seconds_bucket"
    d = d.with_panel(
        ts(
            "GenAI operation latency p50 / p95 / p99",
            "How long do GenAI calls take? Exemplar dots open the "
            "trace of a real call in Tempo (gen_ai.client.operation.duration).",
            [
                q(quantile(0.5, lat, GENAI, join=ENV_JOIN), "p50", ref="A", exemplar=True),
                q(quantile(0.95, lat, GENAI, join=ENV_JOIN), "p95", ref="B", exemplar=True),
                q(quantile(0.99, lat, GENAI, join=ENV_JOIN), "p99", ref="C", exemplar=True),
            ],
            unit="s",
        )
    )
    d = d.with_panel(
        ts(
            "Time to first token p95 and time per output token p95",
            "How fast do streams start, and how fast "
            "do they produce tokens (gen_ai.server.time_to_first_token / time_per_output_token)? Exemplars "
            "link to traces.",
            [
                q(f"llm:ttft:p95_5m{{{JOB}}}{ENV_JOB_JOIN}", "TTFT p95 SLI {{job}}", ref="S"),
                q(
                    quantile(0.95, "gen_ai_server_time_to_first_token_seconds_bucket", GENAI, join=ENV_JOIN),
                    "TTFT p95",
                    ref="A",
                    exemplar=True,
                ),
                q(
                    quantile(
                        0.95, "gen_ai_server_time_per_output_token_seconds_bucket", GENAI, join=ENV_JOIN
                    ),
                    "time per output token p95",
                    ref="B",
                    exemplar=True,
                ),
            ],
            unit="s",
        )
    )
    d = d.with_panel(
        ts(
            "Span latency p95 by service (spanmetrics)",
            "How long do GenAI spans take per service and model, "
            "for any app whose traces pass the pipeline (traces.span.metrics.duration, with exemplars)?",
            [
                q(
                    quantile(
                        0.95,
                        "traces_span_metrics_duration_seconds_bucket",
                        sel(
                            'deployment_environment_name=~"$env"',
                            'service_name=~"$service"',
                            MODEL,
                            PROVIDER,
                            TENANT,
                            'gen_ai_operation_name!=""',
                        ),
                        by="service_name, gen_ai_response_model",
                    ),
                    "{{service_name}} {{gen_ai_response_model}}",
                    exemplar=True,
                )
            ],
            unit="s",
            w=24,
        )
    )
    d = d.with_row(dash.Row("Load"))
    d = d.with_panel(
        ts(
            "In-flight requests and active streams",
            "How many HTTP requests are being served right now, and "
            "how many streaming responses are open (gateway: llm_gateway.active_streams)?",
            [
                q(f"sum(http_server_active_requests{HTTP}{ENV_JOIN})", "in-flight requests", ref="A"),
                q(
                    f"sum(llm_gateway_active_streams{sel(JOB, TENANT)}{ENV_JOIN})",
                    "active streams (gateway)",
                    ref="B",
                ),
            ],
            w=8,
        )
    )
    d = d.with_panel(
        ts(
            "Upstream retries",
            "How often does the gateway retry an upstream provider, by error.type? "
            "Gateway only (llm_gateway.upstream.retries); 0 when nothing was retried.",
            [
                q(
                    f"sum by (error_type) (rate(llm_gateway_upstream_retries_total{sel(JOB, PROVIDER)}[$__rate_interval])"
                    f"{ENV_JOIN}) or sum(rate(http_server_request_duration_seconds_count{HTTP}[$__rate_interval]){ENV_JOIN})"
                    " * 0",
                    "{{error_type}}",
                )
            ],
            unit="reqps",
            w=8,
        )
    )
    d = d.with_panel(
        st(
            "Firing alerts",
            "How many Prometheus alerts are firing now (ALERTS)? The rules are in compose/prometheus/rules/.",
            [
                q(
                    'count(ALERTS{alertstate="firing"}) or sum(up{job="prometheus"}) * 0',
                    "firing",
                    instant=True,
                )
            ],
            w=8,
            h=8,
        )
    )
    d = d.with_row(dash.Row("Logs"))
    d = d.with_panel(
        logs.Panel()
        .title("Gateway error logs")
        .description(
            "Which requests failed, in the gateway's own words? Warning and error records from Loki; the "
            "trace_id field opens the trace in Tempo. Gateway and any app that logs over OTLP."
        )
        .datasource(LOKI)
        .span(24)
        .height(10)
        .show_time(True)
        .enable_log_details(True)
        .wrap_log_message(True)
        .with_target(
            loki.Dataquery()
            .ref_id("A")
            .datasource(LOKI)
            .expr(
                '{service_name=~"$service", service_name=~".+", deployment_environment_name=~"$env"} '
                "| severity_number >= 13"
            )
        )
    )
    return d
