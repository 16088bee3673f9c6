"""Golden files: ``<name>.input.json`` (OTLP JSON) → ``<name>.expected.json``. UPDATE_GOLDEN=1 rewrites the
expected files (review the diff before committing)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TypeVar

from google.protobuf import json_format
from google.protobuf.message import Message

M = TypeVar("M", bound=Message)


def load(testdata: Path, name: str, message: M) -> M:
    json_format.Parse((testdata / f"{name}.input.json").read_text(), message)
    return message


def check(testdata: Path, name: str, actual: Message) -> None:
    got = json_format.MessageToDict(actual)
    path = testdata / f"{name}.expected.json"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(json.dumps(got, indent=1, ensure_ascii=False) + "\n")
    expected = json.loads(path.read_text())
    assert got == expected, (
        f"{name}: output differs from {path.name} (UPDATE_GOLDEN=1 to regenerate, then review)"
    )
