from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from processors.config import SidecarConfig
from processors.handlers import Pipeline
from tests.processors.helpers import Sink


@pytest.fixture(autouse=True)
def dead_letter_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every sidecar a test starts quarantines into the test's own directory, never into ~/.local/state."""
    path = tmp_path / "dead-letter"
    monkeypatch.setenv("SIDECAR_DEAD_LETTER_DIR", str(path))
    return path


@pytest.fixture
def sink() -> Iterator[Sink]:
    s = Sink().start()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="session")
def pipeline() -> Pipeline:
    return Pipeline(SidecarConfig())
