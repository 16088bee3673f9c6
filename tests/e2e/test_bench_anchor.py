"""The whole-pipeline bench's anchor stays a valid Collector configuration as config.yaml evolves: built from
config.yaml + config.native.yaml + bench/sidecar/otelcol-bench.yaml, it validates with the built distribution
and does the sidecar's job (cost + redaction) in traces/in, exporting where the sidecar's return path does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.stack_support import REPO, RUN_SH

sys.path.insert(0, str(REPO / "bench"))
from pipeline import anchor
from pipeline.measure import metric_sum


def test_the_anchor_overlay_validates_with_the_built_collector(collector_bin: Path, tmp_path: Path) -> None:
    overlay = anchor.write(tmp_path / "config.anchor.yaml")
    env = {k: v for k, v in os.environ.items() if k != "OTLP_INGEST_TOKEN"}
    env.update(COLLECTOR_NATIVE="1", RUN_DIR=str(tmp_path))
    result = subprocess.run(
        [str(RUN_SH), "validate", "--config", str(overlay)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_anchor_prices_and_redacts_in_traces_in_and_exports_like_the_return_path() -> None:
    traces_in = anchor.overlay()["service"]["pipelines"]["traces/in"]
    assert traces_in["processors"][-2:] == ["transform/cost", "redaction"]
    assert "otlp_grpc/sidecar" not in traces_in["exporters"]
    assert {"file/traces", "spanmetrics"} <= set(traces_in["exporters"])


def test_metric_sum_adds_the_matching_samples_only() -> None:
    text = "\n".join(
        [
            "# HELP otelcol_exporter_sent_spans_total x",
            'otelcol_exporter_sent_spans_total{exporter="file/traces",service_name="otelcol-llm"} 1024',
            'otelcol_exporter_sent_spans_total{exporter="otlp_grpc/sidecar"} 7',
            'otelcol_exporter_sent_spans_total{exporter="file/traces",other="x"} 1',
        ]
    )
    assert metric_sum(text, "otelcol_exporter_sent_spans_total", exporter="file/traces") == 1025
    assert metric_sum(text, "otelcol_exporter_sent_spans_total") == 1032
    assert metric_sum(text, "otelcol_exporter_queue_size") == 0
