from __future__ import annotations

from collections.abc import Iterator

import pytest

from processors.config import SidecarConfig
from processors.handlers import Pipeline
from tests.processors.helpers import Sink


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
