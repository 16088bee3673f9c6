"""Reading back what the pipeline produced: the native stack's export files (OTLP JSON, one ExportRequest
per line) and Prometheus' HTTP API. Used by the demo and by the end-to-end tests."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

# Where an OTLP JSON ExportRequest starts. Inside a JSON string the quotes would be escaped, so this text
# only occurs at the start of a record.
_RECORD_STARTS = ('{"resourceSpans"', '{"resourceLogs"', '{"resourceMetrics"')


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every complete ExportRequest in an export file. A Collector killed in the middle of a write leaves
    a torn record without its newline; the next start appends to it, so such a line is the torn part
    followed by one complete record, which is kept (the torn part is skipped)."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text(errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            record = _complete_suffix(line)
            if record is not None:
                out.append(record)
    return out


def _complete_suffix(line: str) -> dict[str, Any] | None:
    decoder = json.JSONDecoder()
    starts = sorted(i for s in _RECORD_STARTS for i in _find_all(line, s))
    for start in starts:
        try:
            record, end = decoder.raw_decode(line, start)
        except json.JSONDecodeError:
            continue
        if end == len(line.rstrip()):
            return dict(record)
    return None


def _find_all(text: str, needle: str) -> list[int]:
    found, i = [], text.find(needle)
    while i >= 0:
        found.append(i)
        i = text.find(needle, i + 1)
    return found


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
