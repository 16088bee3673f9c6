"""Reading back what the pipeline produced: the native stack's export files (OTLP JSON, one ExportRequest
per line) and Prometheus' HTTP API. Used by the demo and by the end-to-end tests."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
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


def prometheus(base: str, path: str, **params: Any) -> Any:
    """The `data` of a Prometheus HTTP API answer; an error names the call and Prometheus' answer."""
    url = f"{base}{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=10) as resp:
        body = json.load(resp)
    if body.get("status") != "success":
        raise RuntimeError(f"Prometheus {path} failed: {body}")
    return body["data"]


def query(base: str, promql: str) -> list[dict[str, Any]]:
    return list(prometheus(base, "/api/v1/query", query=promql)["result"])


def exemplars(base: str, promql: str, window_s: float = 900) -> list[dict[str, Any]]:
    """Every stored exemplar of the series matching promql over the last window_s seconds."""
    now = time.time()
    data = prometheus(base, "/api/v1/query_exemplars", query=promql, start=now - window_s, end=now + 60)
    return [ex for series in data for ex in series.get("exemplars", [])]
