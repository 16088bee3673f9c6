"""Shared parts of every dashboard: datasources, variables, the links row, panel and query helpers.

Label names are those the Collector's prometheus exporter writes (dots become underscores). Where a metric
carries a dimension as a label, the panel filters on it; app metrics carry the environment only as a
resource attribute, so they are joined with target_info (ENV_JOIN)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Self, TypeVar

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus, stat, table, tempo, timeseries
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import prometheus as pm
from grafana_foundation_sdk.models import tempo as tm

TAG = "llm-otel-pipeline"
PROM = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")
TEMPO = dm.DataSourceRef(type_val="tempo", uid="tempo")
LOKI = dm.DataSourceRef(type_val="loki", uid="loki")

# dashboard uid -> title; the links row and docs/dashboards.md use the same list
DASHBOARDS = {
    "llm-overview": "LLM overview",
    "llm-operations": "LLM operations",
    "llm-cost-tokens": "Cost & tokens",
    "llm-privacy": "Privacy",
    "llm-pipeline-health": "Pipeline health",
    "llm-hosts-gpus": "Hosts & GPUs",
}

# Selector fragments: a variable set to All matches everything, including series without the label.
ENV = 'deployment_environment_name=~"$env"'
SVC = 'service_name=~"$service"'
JOB = 'job=~"$service"'
MODEL = 'gen_ai_response_model=~"$model"'
PROVIDER = 'gen_ai_provider_name=~"$provider"'
TENANT = 'llm_gateway_tenant=~"$tenant"'
ANY_ERROR = 'error_type!=""'
S5XX = 'http_response_status_code=~"5.."'
S4XX = 'http_response_status_code=~"4.."'
S429 = 'http_response_status_code="429"'
# For the SLI recording rules (aggregated by job only): the environment via target_info.
ENV_JOB_JOIN = " * on (job) group_left () max by (job) (target_info{" + ENV + "})"
# For metrics whose environment is a resource attribute only (target_info carries it).
ENV_JOIN = " * on (job, instance) group_left () max by (job, instance) (target_info{" + ENV + "})"


def sel(*parts: str) -> str:
    return "{" + ", ".join(p for p in parts if p) + "}"


@dataclass(frozen=True)
class Var:
    """A query variable listing the values of one label: label_values(metric, label)."""

    name: str
    title: str
    label: str
    metric: str
    description: str

    def build(self) -> dash.QueryVariable:
        return (
            dash.QueryVariable(self.name)
            .label(self.title)
            .description(self.description)
            .datasource(PROM)
            .query({"query": f"label_values({self.metric}, {self.label})", "refId": f"{self.name}-var"})
            .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(dm.VariableSort.ALPHABETICAL_ASC)
            .include_all(True)
            .all_value(".*")
            .multi(True)
            .current(dm.VariableOption(selected=True, text="All", value="$__all"))
        )


def datasource_var() -> dash.DatasourceVariable:
    return (
        dash.DatasourceVariable("datasource")
        .label("Prometheus")
        .type("prometheus")
        .current(dm.VariableOption(selected=True, text="Prometheus", value="prometheus"))
    )


ENV_VAR = Var(
    "env",
    "Environment",
    "deployment_environment_name",
    "target_info",
    "deployment.environment.name of the sending applications (a resource attribute)",
)
SERVICE_VAR = Var(
    "service",
    "Service",
    "service_name",
    'traces_span_metrics_calls_total{gen_ai_operation_name!=""}',
    "service.name of the applications that make GenAI calls (any OTel GenAI instrumentation)",
)
MODEL_VAR = Var(
    "model",
    "Model",
    "gen_ai_response_model",
    'traces_span_metrics_calls_total{gen_ai_response_model!=""}',
    "gen_ai.response.model of the GenAI spans",
)
PROVIDER_VAR = Var(
    "provider",
    "Provider",
    "gen_ai_provider_name",
    'traces_span_metrics_calls_total{gen_ai_provider_name!=""}',
    "gen_ai.provider.name",
)
TENANT_VAR = Var(
    "tenant",
    "Tenant",
    "llm_gateway_tenant",
    'llm_cost_USD_total{llm_gateway_tenant!="none"}',
    "llm_gateway.tenant, set by the gateway (app/); other apps appear as tenant none",
)
GENAI_VARS = [ENV_VAR, SERVICE_VAR, MODEL_VAR, PROVIDER_VAR, TENANT_VAR]


def new_dashboard(uid: str, description: str, variables: list[Var]) -> dash.Dashboard:
    d = (
        dash.Dashboard(DASHBOARDS[uid])
        .uid(uid)
        .description(description)
        .tags([TAG])
        .editable()
        .time("now-1h", "now")
        .refresh("30s")
        .timezone("browser")
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .link(
            dash.DashboardLink("LLM dashboards")
            .type(dm.DashboardLinkType.DASHBOARDS)
            .tags([TAG])
            .as_dropdown(False)
            .include_vars(True)
            .keep_time(True)
        )
        .with_variable(datasource_var())
    )
    for var in variables:
        d = d.with_variable(var.build())
    return d


def q(
    expr: str,
    legend: str = "__auto",
    ref: str = "A",
    exemplar: bool = False,
    instant: bool = False,
    fmt: pm.PromQueryFormat | None = None,
) -> prometheus.Dataquery:
    t = prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(PROM)
    if exemplar:
        t = t.exemplar(True)
    t = t.instant() if instant else t.range()
    if fmt is not None:
        t = t.format(fmt)
    return t


class _PanelBuilder(Protocol):
    """What every Prometheus panel builder of the SDK has (timeseries, stat, …)."""

    def title(self, title: str) -> Self: ...
    def description(self, description: str) -> Self: ...
    def unit(self, unit: str) -> Self: ...
    def span(self, w: int) -> Self: ...
    def height(self, h: int) -> Self: ...
    def datasource(self, datasource: dm.DataSourceRef) -> Self: ...
    def with_target(self, target: prometheus.Dataquery) -> Self: ...


P = TypeVar("P", bound=_PanelBuilder)


def prom_panel(
    p: P, title: str, description: str, targets: list[prometheus.Dataquery], unit: str, w: int, h: int
) -> P:
    """A panel of any kind over Prometheus: what it answers, its unit and size, its queries."""
    p = p.title(title).description(description).unit(unit).span(w).height(h).datasource(PROM)
    for t in targets:
        p = p.with_target(t)
    return p


def ts(
    title: str,
    description: str,
    targets: list[prometheus.Dataquery],
    unit: str = "short",
    w: int = 12,
    h: int = 8,
    stack: bool = False,
) -> timeseries.Panel:
    p = (
        prom_panel(timeseries.Panel(), title, description, targets, unit, w, h)
        .fill_opacity(10)
        .show_points(cm.VisibilityMode.NEVER)
        .legend(
            cb.VizLegendOptions()
            .show_legend(True)
            .display_mode(cm.LegendDisplayMode.LIST)
            .placement(cm.LegendPlacement.BOTTOM)
        )
    )
    if stack:
        p = p.stacking(cb.StackingConfig().mode(cm.StackingMode.NORMAL))
    return p


def st(
    title: str,
    description: str,
    targets: list[prometheus.Dataquery],
    unit: str = "short",
    w: int = 6,
    h: int = 5,
    decimals: float | None = None,
    time_from: str | None = None,
) -> stat.Panel:
    p = (
        prom_panel(stat.Panel(), title, description, targets, unit, w, h)
        .graph_mode(cm.BigValueGraphMode.AREA)
        .color_mode(cm.BigValueColorMode.VALUE)
        .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )
    if decimals is not None:
        p = p.decimals(decimals)
    if time_from:
        p = p.time_from(time_from)
    return p


def traceql_table(title: str, description: str, query: str, w: int = 24, h: int = 9) -> table.Panel:
    p = (
        table.Panel()
        .title(title)
        .description(description)
        .span(w)
        .height(h)
        .datasource(TEMPO)
        .with_target(
            tempo.TempoQuery()
            .ref_id("A")
            .datasource(TEMPO)
            .query_type("traceql")
            .query(query)
            .limit(20)
            .spss(3)
            .table_type(tm.SearchTableType.SPANS)
        )
    )
    return p


def quantile(phi: float, bucket: str, selector: str, by: str = "", join: str = "") -> str:
    by_le = f"le, {by}" if by else "le"
    inner = f"rate({bucket}{selector}[$__rate_interval])" + join
    return f"histogram_quantile({phi}, sum by ({by_le}) ({inner}))"
