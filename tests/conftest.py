"""Fixtures shared by every test folder: the built Collector and the native stack on free ports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.stack_support import COLLECTOR_BIN, NativeStack, stack_env


@pytest.fixture(scope="session")
def collector_bin() -> Path:
    if not COLLECTOR_BIN.exists():
        pytest.fail(f"{COLLECTOR_BIN} is missing: run `make collector` (make test does it for you)")
    return COLLECTOR_BIN


@pytest.fixture(scope="session")
def native_stack(collector_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NativeStack]:
    """The whole native stack (supervisord) on free ports, shared by the end-to-end tests."""
    run_dir = tmp_path_factory.mktemp("stack")
    stack = NativeStack(run_dir, stack_env(run_dir, OTEL_METRIC_EXPORT_INTERVAL="1000"))
    stack.up()
    try:
        yield stack
    finally:
        stack.down()
