"""Generate multi-window, multi-burn-rate SLO rules from one small spec per service.

    python compose/prometheus/generate_slo_rules.py            # writes rules/llm-slo.yml
    python compose/prometheus/generate_slo_rules.py --check    # exit 1 if the committed file is stale

Input: every compose/prometheus/slo/*.yml (format in docs/alerting.md). Output: one plain Prometheus rule
file with, per service and SLO, the bad-event ratio over the seven windows of the SRE workbook's
multi-window, multi-burn-rate table, the objective, and four alerts (two page, two ticket). The table is
fixed here on purpose: a user changes an objective or a threshold, never an expression.

Why our own generator and not Sloth: Sloth would need a Go build with Kubernetes dependencies on every
machine that runs `make test`, and its output would need post-processing anyway for what every alert here
must carry (runbook_url, a description with the value, our `severity`/`service` labels) and for the SLI
names the dashboards read (docs/alerting.md). The table it implements is the same.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
SPEC_DIR = HERE / "slo"
OUTPUT = HERE / "rules" / "llm-slo.yml"
RUNBOOK_BASE = "https://github.com/llm-otel-pipeline/llm-otel-pipeline/blob/main/docs/runbooks"

# The semconv bucket advice for gen_ai.client.operation.duration (app/telemetry/metrics.py).
SEMCONV_DURATION_BUCKETS = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
DEFAULT_METRIC = "gen_ai_client_operation_duration_seconds"

# The SRE workbook, "Alerting on SLOs", table 5-8: burn rate, long window, short window, severity, for.
# `for` follows the kubernetes-mixin's KubeAPIErrorBudgetBurn (the short window already rejects blips).
BURN_TABLE: tuple[tuple[float, str, str, str, str], ...] = (
    (14.4, "1h", "5m", "page", "2m"),
    (6.0, "6h", "30m", "page", "15m"),
    (3.0, "1d", "2h", "ticket", "1h"),
    (1.0, "3d", "6h", "ticket", "3h"),
)
WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")


class SpecError(ValueError):
    """A spec problem; the message names the file and the field."""


@dataclass(frozen=True)
class Availability:
    objective: float
    ignore_error_types: tuple[str, ...]


@dataclass(frozen=True)
class Latency:
    objective: float
    threshold_seconds: float
    buckets: tuple[float, ...]


@dataclass(frozen=True)
class ServiceSpec:
    service: str
    metric: str
    availability: Availability | None
    latency: Latency | None


def _objective(raw: Any, where: str) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not 0 < raw < 1:
        raise SpecError(f"{where}: must be a number strictly between 0 and 1 (e.g. 0.995), got {raw!r}")
    return float(raw)


def _mapping(raw: Any, source: str, path: str, allowed: set[str]) -> dict[str, Any]:
    """`raw` must be a mapping with only `allowed` keys; `path` is its field path ("" at the top)."""
    if not isinstance(raw, dict):
        raise SpecError(f"{source}: {path or '(top level)'}: must be a mapping, got {type(raw).__name__}")
    unknown = sorted(set(raw) - allowed)
    if unknown:
        field = f"{path}.{unknown[0]}" if path else unknown[0]
        raise SpecError(f"{source}: {field}: unknown field (allowed: {', '.join(sorted(allowed))})")
    return raw


def parse_spec(raw: Any, source: str) -> ServiceSpec:
    """Validate one spec file's content; every error names `source` and the field."""
    top = _mapping(raw, source, "", {"service", "metric", "availability", "latency"})
    service = top.get("service")
    if not isinstance(service, str) or not service or '"' in service or "\\" in service:
        raise SpecError(f"{source}: service: must be the service's job label (a non-empty string)")
    metric = top.get("metric", DEFAULT_METRIC)
    if not isinstance(metric, str) or not metric.replace("_", "a").replace(":", "a").isalnum():
        raise SpecError(f"{source}: metric: must be a Prometheus histogram name, got {metric!r}")
    availability = latency = None
    if "availability" in top:
        a = _mapping(top["availability"], source, "availability", {"objective", "ignore_error_types"})
        ignore = a.get("ignore_error_types", [])
        if not isinstance(ignore, list) or not all(isinstance(t, str) and t for t in ignore):
            raise SpecError(f"{source}: availability.ignore_error_types: must be a list of error.type values")
        availability = Availability(_objective(a.get("objective"), f"{source}: availability.objective"),
                                    tuple(ignore))  # fmt: skip
    if "latency" in top:
        lat = _mapping(top["latency"], source, "latency", {"objective", "threshold_seconds", "buckets"})
        threshold = lat.get("threshold_seconds")
        if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not threshold > 0:
            raise SpecError(
                f"{source}: latency.threshold_seconds: must be a positive number, got {threshold!r}"
            )
        buckets = lat.get("buckets", list(SEMCONV_DURATION_BUCKETS))
        if (
            not isinstance(buckets, list)
            or not buckets
            or not all(isinstance(b, int | float) and not isinstance(b, bool) and b > 0 for b in buckets)
            or sorted(set(buckets)) != buckets
        ):
            raise SpecError(f"{source}: latency.buckets: must be the histogram's bucket bounds, ascending")
        if threshold > buckets[-1]:
            raise SpecError(
                f"{source}: latency.threshold_seconds: {threshold} is above the largest bucket "
                f"({buckets[-1]})"
            )
        latency = Latency(_objective(lat.get("objective"), f"{source}: latency.objective"),
                          float(threshold), tuple(float(b) for b in buckets))  # fmt: skip
    if availability is None and latency is None:
        raise SpecError(f"{source}: define at least one of availability, latency")
    return ServiceSpec(service, metric, availability, latency)


def _le(bound: float) -> str:
    """A matcher for a bucket's `le` label whether it was scraped as text (`3`) or OpenMetrics (`3.0`)."""
    text = _num(bound)
    pattern = text.replace(".", r"\\.") if "." in text else text + r"(\\.0)?"
    return f'le=~"{pattern}"'


def _num(x: float) -> str:
    return f"{x:.10g}"


def increase_by_job(series: str, window: str) -> str:
    """Events of `series` (a counter selector) within `window`, summed by job. OTel counters appear at their
    first increment and increase() ignores a series' first sample, which at low volume (one series per
    model, tenant and error type) hides most errors; a series that is new within the window therefore counts
    from 0 — unless Prometheus has no data from a window ago (just started: every series would look new)."""
    return (
        f"sum by (job) (({series} unless {series} offset {window} and on () count(up offset {window}))"
        f" or increase({series}[{window}]))"
    )


def _good_latency(spec: ServiceSpec, lat: Latency, window: str) -> str:
    """Calls within the threshold: the bucket at the threshold, or a linear interpolation between the two
    buckets around it (what histogram_quantile assumes inside a bucket)."""
    sel = f'job="{spec.service}"'

    def bucket(bound: float) -> str:
        return increase_by_job(f"{spec.metric}_bucket{{{sel}, {_le(bound)}}}", window)

    t = lat.threshold_seconds
    if t in lat.buckets:
        return bucket(t)
    upper = next(b for b in lat.buckets if b > t)
    lower = max((b for b in lat.buckets if b < t), default=0.0)
    share = (t - lower) / (upper - lower)
    if lower == 0.0:
        return f"{bucket(upper)} * {_num(share)}"
    return f"({bucket(lower)} * {_num(1 - share)} + {bucket(upper)} * {_num(share)})"


def sli_error_expr(spec: ServiceSpec, slo: str, window: str) -> str:
    sel = f'job="{spec.service}"'
    if slo == "availability":
        assert spec.availability is not None
        ignored = spec.availability.ignore_error_types
        # ignored error types are neither good nor bad: out of the total too
        total_sel = f'{sel}, error_type!~"{"|".join(ignored)}"' if ignored else sel
        total = increase_by_job(f"{spec.metric}_count{{{total_sel}}}", window)
        not_bad = "|".join(["", *ignored])
        bad = increase_by_job(f'{spec.metric}_count{{{sel}, error_type!~"{not_bad}"}}', window)
        # `or 0 * total`: no failed call at all is a ratio of 0, not a missing series
        return f"(\n  {bad}\n  or 0 * {total}\n)\n/\n{total}\n"
    assert spec.latency is not None
    total = increase_by_job(f"{spec.metric}_count{{{sel}}}", window)
    return f"1 - (\n  {_good_latency(spec, spec.latency, window)}\n  /\n  {total}\n)\n"


def _alert_name(slo: str) -> str:
    return f"{slo.capitalize()}BudgetBurn"


def _describe(slo: str, spec: ServiceSpec) -> str:
    if slo == "availability":
        assert spec.availability is not None
        return f"{_pct(spec.availability.objective)} of model calls succeed"
    assert spec.latency is not None
    within = _num(spec.latency.threshold_seconds)
    return f"{_pct(spec.latency.objective)} of model calls finish within {within} s"


def _pct(x: float) -> str:
    return f"{_num(x * 100)}%"


def _objective_of(spec: ServiceSpec, slo: str) -> float:
    target = spec.availability if slo == "availability" else spec.latency
    assert target is not None
    return target.objective


def service_groups(spec: ServiceSpec) -> list[dict[str, Any]]:
    slos = [s for s in ("availability", "latency") if getattr(spec, s) is not None]
    records: list[dict[str, Any]] = []
    alerts: list[dict[str, Any]] = []
    for slo in slos:
        objective = _objective_of(spec, slo)
        budget = 1 - objective
        labels = {"job": spec.service, "slo": slo}
        records.append(
            {"record": "slo:objective:ratio", "expr": f"vector({_num(objective)})", "labels": labels}
        )
        records.append(
            {"record": "slo:error_budget:ratio", "expr": f"vector({_num(budget)})", "labels": labels}
        )
        for window in WINDOWS:
            records.append(
                {
                    "record": f"slo:sli_error:ratio_rate{window}",
                    "expr": sli_error_expr(spec, slo, window),
                    "labels": {"slo": slo},
                }
            )
        sel = f'{{job="{spec.service}", slo="{slo}"}}'
        for factor, long_w, short_w, severity, for_ in BURN_TABLE:
            threshold = _num(factor * budget)
            threshold_pct = _pct(factor * budget)
            days = 30 / factor
            alerts.append(
                {
                    "alert": _alert_name(slo),
                    "expr": (
                        f"slo:sli_error:ratio_rate{long_w}{sel} > {threshold}\n"
                        f"and\nslo:sli_error:ratio_rate{short_w}{sel} > {threshold}\n"
                    ),
                    "for": for_,
                    "labels": {
                        "severity": severity,
                        "service": spec.service,
                        "slo": slo,
                        "long_window": long_w,
                        "short_window": short_w,
                    },
                    "annotations": {
                        "summary": (
                            f"{spec.service} is burning its {slo} error budget {_num(factor)}x too fast "
                            f"({long_w} and {short_w} windows)"
                        ),
                        "description": (
                            f"{{{{ $value | humanizePercentage }}}} of {spec.service}'s model calls were bad "
                            f"({slo}) over the last {long_w}, "
                            f"and still over {threshold_pct} in the last {short_w}. "
                            f"The SLO is {_describe(slo, spec)} over 30 days (error budget {_pct(budget)}); "
                            f"at {_num(factor)}x the whole budget is gone in {_num(round(days, 1))} days."
                        ),
                        "runbook_url": f"{RUNBOOK_BASE}/{_alert_name(slo)}.md",
                        "dashboard": "/d/llm-overview",
                    },
                }
            )
    return [
        {"name": f"slo-sli-{spec.service}", "rules": records},
        {"name": f"slo-alerts-{spec.service}", "rules": alerts},
    ]


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:  # shared label dicts stay readable, no &id001 anchors
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)

HEADER = """\
# GENERATED by compose/prometheus/generate_slo_rules.py from compose/prometheus/slo/*.yml: do not edit.
# Change the spec and run `make rules`. Per service and SLO: the bad-event ratio over the SRE workbook's
# windows (slo:sli_error:ratio_rate<window>), the objective, and multi-window multi-burn-rate alerts.
"""


def load_specs(spec_dir: Path = SPEC_DIR) -> list[ServiceSpec]:
    specs = []
    for path in sorted(spec_dir.glob("*.yml")):
        try:
            raw = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise SpecError(f"{path.name}: not valid YAML: {exc}") from exc
        specs.append(parse_spec(raw, path.name))
    services = [s.service for s in specs]
    for s in services:
        if services.count(s) > 1:
            raise SpecError(f"service {s!r} has more than one spec file in {spec_dir}")
    if not specs:
        raise SpecError(f"no SLO spec (*.yml) in {spec_dir}")
    return specs


def render(specs: list[ServiceSpec]) -> str:
    groups = [g for spec in specs for g in service_groups(spec)]
    return HEADER + yaml.dump({"groups": groups}, Dumper=_Dumper, sort_keys=False, width=1000)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="fail if the committed rule file is stale")
    parser.add_argument("--spec-dir", type=Path, default=SPEC_DIR)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    try:
        text = render(load_specs(args.spec_dir))
    except SpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        if not args.output.exists() or args.output.read_text() != text:
            print(f"error: {args.output} is stale: run `make rules` and commit it", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(text)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
