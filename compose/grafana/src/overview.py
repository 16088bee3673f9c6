"""LLM overview (executives): availability vs the SLO, volume, spend, tokens, cache hits, feedback."""

# ruff: noqa: E501 - PromQL, TraceQL and LogQL stay whole on one line each so they read as queries

from __future__ import annotations

from common import (
    ENV,
    ENV_JOB_JOIN,
    ENV_JOIN,
    GENAI_VARS,
    JOB,
    MODEL,
    PROVIDER,
    SVC,
    TENANT,
    new_dashboard,
    q,
    sel,
    st,
    ts,
)
from grafana_foundation_sdk.builders import dashboard as dash

OPS = "gen_ai_client_operation_duration_seconds_count"
GENAI = sel(JOB, MODEL, PROVIDER, TENANT)
COST = sel(ENV, SVC, MODEL, PROVIDER, TENANT)


def build() -> dash.Dashboard:
    d = new_dashboard(
        "llm-overview",
        "Executive view: is the LLM service up, how much is it used, what does it cost. GenAI semconv metrics "
        "(any instrumentation) and the pipeline's cost counters.",
        GENAI_VARS,
    )
    d = d.with_row(dash.Row("Service level"))
    d = d.with_panel(
        st(
            "Availability (5 m)",
            "Which share of model calls succeeded over the last 5 minutes (SLI "
            "llm:availability:ratio_rate5m; a call is bad when error.type is set, client_disconnect excepted)? "
            "The objective is slo:objective:ratio.",
            [
                q(f"llm:availability:ratio_rate5m{{{JOB}}}{ENV_JOB_JOIN}", "{{job}}", ref="A", instant=True),
                q(
                    f'slo:objective:ratio{{slo="availability", {JOB}}}{ENV_JOB_JOIN}',
                    "objective {{job}}",
                    ref="B",
                    instant=True,
                ),
            ],
            unit="percentunit",
            decimals=3,
        )
    )
    d = d.with_panel(
        st(
            "Error budget left (3 d)",
            "How much of the availability error budget (1 - objective) is unspent "
            "over the last 3 days? 1 = untouched, 0 = spent, below 0 = SLO missed "
            "(1 - slo:sli_error:ratio_rate3d / slo:error_budget:ratio).",
            [
                q(
                    f'1 - slo:sli_error:ratio_rate3d{{slo="availability", {JOB}}} / on (job, slo) '
                    f"slo:error_budget:ratio{ENV_JOB_JOIN}",
                    "{{job}}",
                    instant=True,
                )
            ],
            unit="percentunit",
            decimals=1,
        )
    )
    d = d.with_panel(
        st(
            "Latency SLO compliance (5 m)",
            "Which share of model calls finished within the 3 s latency "
            "objective over the last 5 minutes (llm:latency_slo_compliance:ratio_rate5m)?",
            [q(f"llm:latency_slo_compliance:ratio_rate5m{{{JOB}}}{ENV_JOB_JOIN}", "{{job}}", instant=True)],
            unit="percentunit",
            decimals=3,
        )
    )
    d = d.with_panel(
        st(
            "Requests per day",
            "How many GenAI operations ran in the last 24 hours?",
            [q(f"sum(increase({OPS}{GENAI}[1d]){ENV_JOIN})", "requests", instant=True)],
            decimals=0,
        )
    )
    d = d.with_panel(
        st(
            "Feedback score",
            "What is the mean user feedback score (0 bad .. 1 good) in the range? "
            "Gateway only (llm_gateway.feedback.score, POST /v1/feedback).",
            [
                q(
                    f"sum(increase(llm_gateway_feedback_score_sum{sel(JOB, MODEL, PROVIDER, TENANT)}[$__range]){ENV_JOIN})"
                    f" / sum(increase(llm_gateway_feedback_score_count{sel(JOB, MODEL, PROVIDER, TENANT)}[$__range]){ENV_JOIN})",
                    "score",
                    instant=True,
                )
            ],
            decimals=2,
        )
    )
    d = d.with_row(dash.Row("Spend"))
    for title, description, since in [
        (
            "Spend today",
            "What have priced GenAI calls cost since midnight (pipeline-computed llm.cost)?",
            "now/d",
        ),
        ("Spend this month", "What have priced GenAI calls cost since the first of the month?", "now/M"),
    ]:
        d = d.with_panel(
            st(
                title,
                description,
                [q(f"sum(increase(llm_cost_USD_total{COST}[$__range]))", "USD", instant=True)],
                unit="currencyUSD",
                decimals=2,
                time_from=since,
            )
        )
    d = d.with_panel(
        st(
            "Spend per request",
            "What does one priced GenAI call cost on average in the range?",
            [
                q(
                    f"sum(increase(llm_cost_USD_total{COST}[$__range])) / "
                    f"sum(increase(llm_cost_priced_spans_total{COST}[$__range]))",
                    "USD per request",
                    instant=True,
                )
            ],
            unit="currencyUSD",
            decimals=5,
        )
    )
    d = d.with_panel(
        st(
            "Cache-hit rate",
            "How often does the provider's prompt cache help? Calls that read from the cache "
            "(SLI llm:cache_hit:ratio_rate5m; needs OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental in "
            "the app) and the share of input tokens served from it (gen_ai.usage.cache_read.input_tokens on the "
            "spans, any app).",
            [
                q(
                    f"llm:cache_hit:ratio_rate5m{{{JOB}}}{ENV_JOB_JOIN}",
                    "calls {{job}}",
                    ref="A",
                    instant=True,
                ),
                q(
                    f"(sum(increase(llm_tokens_cache_read_total{COST}[$__range])) or vector(0)) / "
                    f"sum(increase(llm_tokens_input_total{COST}[$__range]))",
                    "input tokens",
                    ref="B",
                    instant=True,
                ),
            ],
            unit="percentunit",
            decimals=1,
        )
    )
    for title, description, by in [
        ("Spend by model", "Which models does the money go to (USD per hour)?", "gen_ai_response_model"),
        (
            "Spend by tenant",
            "Which tenants spend the money (USD per hour)? Tenant none = apps without the gateway's tenant attribute.",
            "llm_gateway_tenant",
        ),
    ]:
        d = d.with_panel(
            ts(
                title,
                description,
                [
                    q(
                        f"sum by ({by}) (rate(llm_cost_USD_total{COST}[$__rate_interval])) * 3600",
                        "{{" + by + "}}",
                    )
                ],
                unit="currencyUSD",
                stack=True,
            )
        )
    d = d.with_panel(
        st(
            "Top tenants by spend",
            "Which ten tenants spent most in the time range?",
            [
                q(
                    f"topk(10, sum by (llm_gateway_tenant) (increase(llm_cost_USD_total{COST}[$__range])))",
                    "{{llm_gateway_tenant}}",
                    instant=True,
                )
            ],
            unit="currencyUSD",
            w=12,
            decimals=4,
        )
    )
    d = d.with_panel(
        ts(
            "Tokens per request",
            "How many input and output tokens does one model call use on average "
            "(SLI llm:tokens_per_request:ratio_rate5m, from gen_ai.client.token.usage)?",
            [
                q(
                    f"llm:tokens_per_request:ratio_rate5m{{{JOB}}}{ENV_JOB_JOIN}",
                    "{{job}} {{gen_ai_token_type}}",
                )
            ],
            w=12,
        )
    )
    return d
