"""Reading what the native stack's file exporters wrote: OTLP JSON, one ExportRequest per line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        if line.strip():
            out.append(json.loads(line))
    return out


def exported_spans(path: Path) -> list[dict[str, Any]]:
    spans: list[dict[str, Any]] = []
    for req in read_jsonl(path):
        for rs in req.get("resourceSpans", []):
            for ss in rs.get("scopeSpans", []):
                spans.extend(ss.get("spans", []))
    return spans


def exported_log_records(path: Path) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for req in read_jsonl(path):
        for rl in req.get("resourceLogs", []):
            for sl in rl.get("scopeLogs", []):
                records.extend(sl.get("logRecords", []))
    return records


def plain(value: dict[str, Any]) -> Any:
    """The Python value of an OTLP JSON AnyValue."""
    for kind in ("stringValue", "boolValue", "doubleValue"):
        if kind in value:
            return value[kind]
    if "intValue" in value:
        return int(value["intValue"])
    if "arrayValue" in value:
        return [plain(v) for v in value["arrayValue"].get("values", [])]
    if "kvlistValue" in value:
        return {kv["key"]: plain(kv.get("value", {})) for kv in value["kvlistValue"].get("values", [])}
    return None


def attr(obj: dict[str, Any], key: str) -> Any:
    """The plain value of an OTLP JSON attribute of a span or log record (None when absent)."""
    for kv in obj.get("attributes", []):
        if kv["key"] == key:
            return plain(kv.get("value", {}))
    return None
