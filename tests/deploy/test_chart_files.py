"""The chart's copies of the rule files, dashboards, datasources and Collector config (Helm cannot read files
outside a chart) are exactly what compose/ and otel-collector/ hold; `make chart-sync` refreshes them."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from tests.deploy.chart_support import REPO

sys.path.insert(0, str(REPO / "deploy" / "helm"))
import sync_chart_files as sync


def test_chart_copies_equal_their_sources() -> None:
    problems = sync.differences()
    assert not problems, "\n".join([*problems, "run `make chart-sync`"])
    copies = sync.expected()
    assert any(p.parent.name == "rules" for p in copies)
    assert any(p.name == "config.yaml" for p in copies)


def _fake_repo(tmp_path: Path) -> tuple[Path, Path]:
    repo = tmp_path / "repo"
    for m in sync.MIRRORS:
        (repo / m.source).mkdir(parents=True, exist_ok=True)
    (repo / "otel-collector/config.yaml").write_text("receivers: {}\n")
    (repo / "otel-collector/config.ingest-auth.yaml").write_text("extensions: {}\n")
    (repo / "compose/prometheus/rules/pipeline.yml").write_text("groups: []\n")
    (repo / "compose/grafana/dashboards/a.json").write_text("{}\n")
    (repo / "compose/grafana/dashboards/README.md").write_text("not a dashboard\n")
    chart = repo / "deploy/helm/llm-otel-pipeline"
    chart.mkdir(parents=True)
    return repo, chart


def test_sync_picks_up_new_files_and_check_names_every_difference(tmp_path: Path) -> None:
    repo, chart = _fake_repo(tmp_path)
    assert len(sync.differences(repo, chart)) == 4  # four copies missing
    sync.sync(repo, chart)
    assert sync.differences(repo, chart) == []
    assert not (chart / "files/grafana/dashboards/README.md").exists()

    # another helper adds a rule file and a dashboard, edits one, removes one
    (repo / "compose/prometheus/rules/cost.yaml").write_text("groups: [{name: cost, rules: []}]\n")
    (repo / "compose/grafana/dashboards/b.json").write_text('{"title": "b"}\n')
    (repo / "compose/prometheus/rules/pipeline.yml").write_text("groups: [{name: p, rules: []}]\n")
    (repo / "compose/grafana/dashboards/a.json").unlink()
    problems = sorted(sync.differences(repo, chart))
    assert problems == [
        "differs: deploy/helm/llm-otel-pipeline/files/prometheus/rules/pipeline.yml"
        " != compose/prometheus/rules/pipeline.yml",
        "missing: deploy/helm/llm-otel-pipeline/files/grafana/dashboards/b.json"
        " (copy of compose/grafana/dashboards/b.json)",
        "missing: deploy/helm/llm-otel-pipeline/files/prometheus/rules/cost.yaml"
        " (copy of compose/prometheus/rules/cost.yaml)",
        "stale: deploy/helm/llm-otel-pipeline/files/grafana/dashboards/a.json (its source is gone)",
    ]
    sync.sync(repo, chart)
    assert sync.differences(repo, chart) == []
    assert sorted(p.name for p in (chart / "files/grafana/dashboards").iterdir()) == ["b.json"]


def test_chart_own_files_are_not_touched(tmp_path: Path) -> None:
    repo, chart = _fake_repo(tmp_path)
    own = chart / "files/collector/loadbalancer.yaml"
    own.parent.mkdir(parents=True)
    own.write_text("mine\n")
    shutil.copy(own, chart / "files/collector/extra.yaml")
    sync.sync(repo, chart)
    assert own.read_text() == "mine\n" and (chart / "files/collector/extra.yaml").exists()
