"""The SLO rule generator: committed rules equal generated ones, specs are validated field by field, and
the output for any valid spec is a rule file promtool accepts with the workbook's thresholds."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.alerting.rules import PROM_DIR

GENERATOR = PROM_DIR / "generate_slo_rules.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate_slo_rules", GENERATOR)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["generate_slo_rules"] = module
    spec.loader.exec_module(module)
    return module


gen = _load()


def test_committed_rules_equal_the_generated_ones() -> None:
    result = subprocess.run([sys.executable, str(GENERATOR), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr + "\n(run `make rules` and commit compose/prometheus/rules/)"


def _spec(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "service": "chat-app",
        "availability": {"objective": 0.999},
        "latency": {"objective": 0.9, "threshold_seconds": 2.56},
    }
    spec.update(overrides)
    return spec


def _alerts(text: str) -> list[dict[str, Any]]:
    doc = yaml.safe_load(text)
    return [r for g in doc["groups"] for r in g["rules"] if "alert" in r]


def test_thresholds_follow_the_objective_for_every_window_pair() -> None:
    text = gen.render([gen.parse_spec(_spec(), "chat-app.yml")])
    by_pair = {
        (a["labels"]["slo"], a["labels"]["long_window"], a["labels"]["short_window"]): a
        for a in _alerts(text)
    }
    budget = {"availability": 0.001, "latency": 0.1}
    for slo in ("availability", "latency"):
        for factor, long_w, short_w, severity, _ in gen.BURN_TABLE:
            alert = by_pair[(slo, long_w, short_w)]
            threshold = f"{factor * budget[slo]:.10g}"
            assert f"slo:sli_error:ratio_rate{long_w}" in alert["expr"]
            assert f"slo:sli_error:ratio_rate{short_w}" in alert["expr"]
            assert alert["expr"].count(f"> {threshold}\n") == 2, (alert["expr"], threshold)
            assert alert["labels"]["severity"] == severity
            assert alert["labels"]["service"] == "chat-app"
    assert [(f, lw, sw, s) for f, lw, sw, s, _ in gen.BURN_TABLE] == [
        (14.4, "1h", "5m", "page"),
        (6.0, "6h", "30m", "page"),
        (3.0, "1d", "2h", "ticket"),
        (1.0, "3d", "6h", "ticket"),
    ]


def test_a_threshold_on_a_bucket_bound_reads_that_bucket_only() -> None:
    text = gen.render([gen.parse_spec(_spec(), "chat-app.yml")])
    assert 'le=~"2\\\\.56"' in text and 'le=~"5\\\\.12"' not in text


def test_a_threshold_between_bounds_interpolates_and_an_integer_bound_matches_both_spellings() -> None:
    spec = _spec(latency={"objective": 0.95, "threshold_seconds": 3, "buckets": [1, 2, 4, 8]})
    text = gen.render([gen.parse_spec(spec, "chat-app.yml")])
    # 3 s is half way between 2 and 4; "2" may be scraped as `2` or (OpenMetrics) `2.0`
    assert 'le=~"2(\\\\.0)?"' in text and 'le=~"4(\\\\.0)?"' in text
    assert "* 0.5 +" in text


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"availability": {"objective": 0.99}}, "service"),
        (
            _spec(availability={"objective": 1.5}),
            "availability.objective: must be a number strictly between 0 and 1",
        ),
        (_spec(availability={"objective": "99.5%"}), "availability.objective"),
        (_spec(availability={"objective": 0.99, "typo": 1}), "availability.typo: unknown field"),
        (_spec(latency={"objective": 0.95}), "latency.threshold_seconds: must be a positive number"),
        (
            _spec(latency={"objective": 0.95, "threshold_seconds": 500}),
            "latency.threshold_seconds: 500 is above",
        ),
        (_spec(latency={"objective": 0.95, "threshold_seconds": 1, "buckets": [2, 1]}), "latency.buckets"),
        ({"service": "x"}, "define at least one of availability, latency"),
        (_spec(extra=1), "extra: unknown field"),
        (
            _spec(availability={"objective": 0.99, "ignore_error_types": "client_disconnect"}),
            "ignore_error_types",
        ),
    ],
)
def test_bad_specs_are_refused_naming_the_file_and_field(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(gen.SpecError, match=r"^bad\.yml: ") as exc:
        gen.parse_spec(spec, "bad.yml")
    assert message in str(exc.value)


def test_two_specs_for_one_service_are_refused(tmp_path: Path) -> None:
    for name in ("a.yml", "b.yml"):
        (tmp_path / name).write_text(yaml.safe_dump(_spec()))
    with pytest.raises(gen.SpecError, match="more than one spec"):
        gen.load_specs(tmp_path)


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is installed by `make tools`")
def test_output_for_several_services_is_a_valid_rule_file(tmp_path: Path) -> None:
    specs = tmp_path / "slo"
    specs.mkdir()
    (specs / "chat.yml").write_text(yaml.safe_dump(_spec()))
    (specs / "batch.yml").write_text(
        yaml.safe_dump({"service": "batch", "availability": {"objective": 0.99, "ignore_error_types": []}})
    )
    out = tmp_path / "llm-slo.yml"
    assert gen.main(["--spec-dir", str(specs), "--output", str(out)]) == 0
    check = subprocess.run(["promtool", "check", "rules", str(out)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert gen.main(["--spec-dir", str(specs), "--output", str(out), "--check"]) == 0
    (specs / "batch.yml").write_text(
        yaml.safe_dump({"service": "batch", "availability": {"objective": 0.95}})
    )
    assert gen.main(["--spec-dir", str(specs), "--output", str(out), "--check"]) == 1
