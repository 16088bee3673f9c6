"""`make up` / `make down`: the stack starts in order, reports its addresses, and leaves nothing behind."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from tests.stack_support import NativeStack, native_stack, stack_env

pytestmark = pytest.mark.e2e


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            environ = (entry / "environ").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if text in cmdline or text in environ:
            found.append(f"{entry.name}: {cmdline[:120]}")
    return found


def test_up_then_down_leaves_no_process_and_frees_every_port(collector_bin: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "lifecycle-run"
    stack = NativeStack(run_dir, stack_env(run_dir))
    up = stack.run("up")
    try:
        info = json.loads((run_dir / "stack.json").read_text())
        for service in info["services"]:
            assert f"{service}" in up.stdout and "ready in" in up.stdout
        assert stack.run("status").returncode == 0
        assert _processes_mentioning(str(run_dir)), "the stack's processes should be visible while it runs"

        again = stack.run("up", check=False)
        assert again.returncode != 0 and "already running" in again.stderr
    finally:
        down = stack.run("down")
    assert "no process left" in down.stdout
    assert _processes_mentioning(str(run_dir)) == []
    busy = [p for p in info["ports"].values() if not native_stack.port_free(p)]
    assert busy == []


def test_up_refuses_a_busy_port_naming_it(collector_bin: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "busy-run"
    env = stack_env(run_dir)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", int(env["PROMETHEUS_PORT"])))
        squatter.listen()
        result = NativeStack(run_dir, env).run("up", check=False)
    assert result.returncode == 1
    assert f"port {env['PROMETHEUS_PORT']} (prometheus) is already in use" in result.stderr
    assert "PROMETHEUS_PORT" in result.stderr
    assert _processes_mentioning(str(run_dir)) == []


def test_a_service_that_cannot_start_fails_up_cleanly_naming_it(collector_bin: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "broken-run"
    result = NativeStack(run_dir, stack_env(run_dir, PROMETHEUS_BIN="/bin/false")).run("up", check=False)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: prometheus ")
    assert _processes_mentioning(str(run_dir)) == []
