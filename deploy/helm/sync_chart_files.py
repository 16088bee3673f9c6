"""Copy the files the Helm chart packages from where they live in this repository into the chart.

Helm can only read files inside a chart, so the chart carries copies of the Collector configuration, the
Prometheus rule files, the generated Grafana dashboards and the Grafana datasources. This script is the one
place that says which: every source is a glob, so rule files and dashboards added later are picked up.

    python deploy/helm/sync_chart_files.py          # copy (and delete copies whose source is gone)
    python deploy/helm/sync_chart_files.py --check  # exit 1 and name every difference (make test runs this)
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "llm-otel-pipeline"


@dataclass(frozen=True)
class Mirror:
    """Every file matching `pattern` under `source` is copied to `dest` (a folder of the chart)."""

    source: str
    pattern: str
    dest: str


MIRRORS: tuple[Mirror, ...] = (
    Mirror("otel-collector", "config.yaml", "files/otel-collector"),
    Mirror("otel-collector", "config.ingest-auth.yaml", "files/otel-collector"),
    Mirror("compose/prometheus/rules", "*.yml", "files/prometheus/rules"),
    Mirror("compose/prometheus/rules", "*.yaml", "files/prometheus/rules"),
    # the generated dashboards live in one sub-folder per Grafana folder; the chart holds them flat
    Mirror("compose/grafana/dashboards", "**/*.json", "files/grafana/dashboards"),
    Mirror("compose/grafana/provisioning/datasources", "*.yaml", "files/grafana/datasources"),
)


def expected(repo: Path = REPO, chart: Path = CHART) -> dict[Path, Path]:
    """chart copy -> its source, for every source file that exists now."""
    out: dict[Path, Path] = {}
    for m in MIRRORS:
        for src in sorted((repo / m.source).glob(m.pattern)):
            if src.is_file():
                out[chart / m.dest / src.name] = src
    return out


def managed_dirs(chart: Path = CHART) -> set[Path]:
    return {chart / m.dest for m in MIRRORS}


def stale(repo: Path = REPO, chart: Path = CHART) -> list[Path]:
    """Copies in the chart whose source no longer exists (only in folders this script owns)."""
    want = expected(repo, chart)
    patterns: dict[Path, list[str]] = {}
    for m in MIRRORS:
        patterns.setdefault(chart / m.dest, []).append(m.pattern)
    found = {p for d, pats in patterns.items() for pat in pats for p in d.glob(pat) if p.is_file()}
    return sorted(found - set(want))


def differences(repo: Path = REPO, chart: Path = CHART) -> list[str]:
    problems = []
    for copy, src in expected(repo, chart).items():
        rel_src, rel_copy = src.relative_to(repo), copy.relative_to(repo)
        if not copy.exists():
            problems.append(f"missing: {rel_copy} (copy of {rel_src})")
        elif copy.read_bytes() != src.read_bytes():
            problems.append(f"differs: {rel_copy} != {rel_src}")
    for extra in stale(repo, chart):
        problems.append(f"stale: {extra.relative_to(repo)} (its source is gone)")
    return problems


def sync(repo: Path = REPO, chart: Path = CHART) -> list[str]:
    done = []
    for extra in stale(repo, chart):
        extra.unlink()
        done.append(f"removed {extra.relative_to(repo)}")
    for copy, src in expected(repo, chart).items():
        if not copy.exists() or copy.read_bytes() != src.read_bytes():
            copy.parent.mkdir(parents=True, exist_ok=True)
            copy.write_bytes(src.read_bytes())
            done.append(f"copied {src.relative_to(repo)} -> {copy.relative_to(repo)}")
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="only report differences (exit 1 if any)")
    args = parser.parse_args(argv)
    if args.check:
        problems = differences()
        for p in problems:
            print(p, file=sys.stderr)
        if problems:
            print("the chart's copies are out of date: run `make chart-sync`", file=sys.stderr)
            return 1
        print(f"chart files in sync ({len(expected())} files)")
        return 0
    for line in sync():
        print(line)
    print(f"chart files in sync ({len(expected())} files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
