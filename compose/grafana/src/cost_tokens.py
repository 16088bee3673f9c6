"""Cost & tokens (developers, FinOps): tokens by kind and model, cost per hour by dimension, cost per request,
unpriced spans, and the most expensive traces (TraceQL)."""

# ruff: noqa: E501 - PromQL, TraceQL and LogQL stay whole on one line each so they read as queries

from __future__ import annotations

from common import (
    ENV,
    GENAI_VARS,
    MODEL,
    PROM,
    PROVIDER,
    SVC,
    TENANT,
    new_dashboard,
    q,
    sel,
    traceql_table,
    ts,
)
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import heatmap
from grafana_foundation_sdk.models import prometheus as pm

COST = sel(ENV, SVC, MODEL, PROVIDER, TENANT)


def per_hour(by: str) -> str:
    return f"sum by ({by}) (rate(llm_cost_USD_total{COST}[$__rate_interval])) * 3600"


def tokens(kind: str) -> str:
    return f"sum by (gen_ai_response_model) (rate(llm_tokens_{kind}_total{COST}[$__rate_interval]))"


def build() -> dash.Dashboard:
    d = new_dashboard(
        "llm-cost-tokens",
        "Where tokens and money go. Cost and token counters are computed by the Collector from the priced, "
        "redacted spans (llm.cost, llm.tokens.*), so every app whose GenAI spans pass the pipeline shows up.",
        GENAI_VARS,
    )
    d = d.with_row(dash.Row("Tokens"))
    # A model that never reports a kind of token shows 0 for it rather than no line at all.
    zero = f"sum by (gen_ai_response_model) (rate(llm_tokens_input_total{COST}[$__rate_interval])) * 0"
    d = d.with_panel(
        ts(
            "Tokens per second by model and kind",
            "How many input, output, cached and reasoning tokens per "
            "second does each model use (gen_ai.usage.* on the spans)?",
            [
                q(tokens("input"), "{{gen_ai_response_model}} input", ref="A"),
                q(tokens("output"), "{{gen_ai_response_model}} output", ref="B"),
                q(f"{tokens('cache_read')} or {zero}", "{{gen_ai_response_model}} cached", ref="C"),
                q(f"{tokens('reasoning')} or {zero}", "{{gen_ai_response_model}} reasoning", ref="D"),
            ],
            w=24,
        )
    )
    d = d.with_row(dash.Row("Cost"))
    for by, label in [("gen_ai_response_model", "model"), ("gen_ai_provider_name", "provider")]:
        d = d.with_panel(
            ts(
                f"Cost per hour by {label}",
                f"What does each {label} cost, in USD per hour over 5 minutes "
                "(SLI llm:cost_usd_per_hour:rate5m, the same series the cost alerts read)?",
                [q(f"sum by ({by}) (llm:cost_usd_per_hour:rate5m{sel(MODEL, PROVIDER)})", "{{" + by + "}}")],
                unit="currencyUSD",
                stack=True,
            )
        )
    for by, label in [("llm_gateway_tenant", "tenant"), ("service_name", "service")]:
        d = d.with_panel(
            ts(
                f"Cost per hour by {label}",
                f"What does each {label} cost, in USD per hour at the current rate "
                "(llm.cost, computed by the Collector from the priced spans)?",
                [q(per_hour(by), "{{" + by + "}}")],
                unit="currencyUSD",
                stack=True,
            )
        )
    d = d.with_panel(
        heatmap.Panel()
        .title("Cost per request distribution")
        .description(
            "How is the cost of one priced GenAI call distributed (llm.cost.per_span histogram)? Wide "
            "spread = a few expensive calls dominate."
        )
        .datasource(PROM)
        .span(12)
        .height(8)
        .calculate(False)
        .unit("currencyUSD")
        .with_target(
            q(
                f"sum by (le) (increase(llm_cost_per_span_USD_bucket{COST}[$__rate_interval]))",
                "{{le}}",
                exemplar=True,
                fmt=pm.PromQueryFormat.HEATMAP,
            )
        )
        .show_legend()
        .cell_gap(1)
    )
    priced = f"sum by (gen_ai_response_model) (increase(llm_cost_priced_spans_total{COST}[$__range]))"
    d = d.with_panel(
        ts(
            "Unpriced spans by model",
            "Which models had GenAI spans with usage but no price "
            "(gen_ai.cost.status = unpriced)? Never a silent $0: a model at 0 here is priced; anything above 0 "
            "needs a price in the sidecar's cost config.",
            [
                q(
                    f"sum by (gen_ai_response_model) (increase(llm_cost_unpriced_spans_total{COST}[$__range])) or "
                    f"{priced} * 0",
                    "{{gen_ai_response_model}}",
                )
            ],
            unit="short",
        )
    )
    d = d.with_row(dash.Row("Traces"))
    d = d.with_panel(
        traceql_table(
            "Most expensive calls",
            "Which GenAI calls in the range cost the most? TraceQL over Tempo; sort by "
            "the cost column, click a trace id to open it.",
            '{ span.gen_ai.usage.cost > 0.0 && resource.service.name =~ "$service" } '
            "| select(span.gen_ai.usage.cost, span.gen_ai.response.model, span.llm_gateway.tenant, "
            "span.gen_ai.usage.input_tokens, span.gen_ai.usage.output_tokens)",
        )
    )
    return d
