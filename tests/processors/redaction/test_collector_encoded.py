"""Golden batches encoded by the real Collector (testdata/collector_batches.json, captured from
build/otelcol-llm by testdata/capture_collector_batches.py): the fast path equals the full walk on them, and
none of their PII or secrets survives, in any field, for traces, logs and metrics."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import text_format

from processors.wire.index import index
from tests.processors.redaction.test_encoding import SIGNALS, fast_and_full
from tests.processors.wire_reencode import Style, reencode

DATA = json.loads((Path(__file__).parent / "testdata" / "collector_batches.json").read_text())
BENIGN = ["/users/{id}", "golden.scope", "golden", "count"]


@pytest.mark.parametrize("batch", DATA["batches"], ids=lambda b: b["name"])
def test_collector_encoded_batch(batch: dict[str, Any]) -> None:
    signal = batch["signal"]
    cls = SIGNALS[signal][0]
    raw = base64.b64decode(batch["collector_bytes_b64"])
    # the Collector's encoding is not Python's: re-encoding in field-number order changes the bytes
    assert batch["python_encoding_differs"]
    assert reencode(raw, cls.DESCRIPTOR, Style(order="number")) != raw
    index(raw)  # the wire index reads it (no fallback to a full re-serialisation)
    fast, full = fast_and_full(signal, raw)
    assert fast == full
    out_bytes = fast.SerializeToString()
    out_text = text_format.MessageToString(fast, as_utf8=True)
    for value in batch["sensitive"]:
        assert value.encode() not in out_bytes, value
        assert value not in out_text, value
    for text in BENIGN:
        assert text in out_text
