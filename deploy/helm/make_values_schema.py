"""Write deploy/helm/llm-otel-pipeline/values.schema.json from values.yaml, so that Helm refuses an unknown
or mistyped value at install/template/lint time and names it.

Every mapping in values.yaml becomes an object that allows only its documented keys, with the type of each
default; the paths below are free-form (Kubernetes objects, or configs the programs validate themselves) or
enumerations. `tests/deploy/test_chart.py` fails when the committed schema is not what this script writes.

    python deploy/helm/make_values_schema.py [--check]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parent / "llm-otel-pipeline"
SCHEMA = CHART / "values.schema.json"

# Kubernetes objects and program configs: any object (their own validation applies).
FREE_FORM = {
    "podAnnotations",
    "podLabels",
    "nodeSelector",
    "affinity",
    "resources",
    "requests",
    "limits",
    "config",
    "providerKeys",
    "labels",
    "annotations",
    "podSecurityContext",
}
ENUMS: dict[str, list[str]] = {
    "gatewayTier.kind": ["Deployment", "StatefulSet"],
    "loadBalancer.resolver": ["k8s", "dns"],
    "gatewayTier.persistence.emptyDir.medium": ["", "Memory"],
    "loadBalancer.persistence.emptyDir.medium": ["", "Memory"],
    "images.collector.pullPolicy": ["Always", "IfNotPresent", "Never"],
    "images.python.pullPolicy": ["Always", "IfNotPresent", "Never"],
    "dcgmExporter.image.pullPolicy": ["Always", "IfNotPresent", "Never"],
}
# Scalars that may be given either way (quantities, counts written as strings).
INT_OR_STRING = {"maxUnavailable", "sizeLimit", "size"}


def schema_for(value: Any, path: str) -> dict[str, Any]:
    key = path.rsplit(".", 1)[-1]
    if path in ENUMS:
        return {"type": "string", "enum": ENUMS[path]}
    if key in FREE_FORM:
        return {"type": "object"}
    if key in INT_OR_STRING:
        return {"type": ["integer", "string"]}
    if isinstance(value, dict):
        return {
            "type": "object",
            "additionalProperties": False,
            "properties": {k: schema_for(v, f"{path}.{k}" if path else k) for k, v in value.items()},
        }
    if isinstance(value, list):
        return {"type": "array"}
    if isinstance(value, bool):
        return {"type": "boolean"}
    if isinstance(value, int):
        return {"type": "integer"}
    if isinstance(value, float):
        return {"type": "number"}
    return {"type": "string"}


def build() -> str:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = {"$schema": "https://json-schema.org/draft-07/schema#", **schema_for(values, "")}
    return json.dumps(schema, indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="exit 1 when values.schema.json is out of date")
    args = ap.parse_args(argv)
    text = build()
    if args.check:
        if not SCHEMA.exists() or SCHEMA.read_text() != text:
            print(f"{SCHEMA} is out of date: run python deploy/helm/make_values_schema.py", file=sys.stderr)
            return 1
        return 0
    SCHEMA.write_text(text)
    print(f"wrote {SCHEMA}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
