"""The native stack supervises like a service manager: a crash-looping sidecar is started again after
supervisord itself gave up (FATAL), Prometheus cannot be stopped for good from its HTTP port, and the
restart counts show in `make status`."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.stack_support import NativeStack, http_status, native_stack, stack_env, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(collector_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NativeStack]:
    run_dir = tmp_path_factory.mktemp("supervision")
    s = NativeStack(run_dir, stack_env(run_dir, STACK_APP="0", OTEL_SDK_DISABLED="true"))
    s.up()
    try:
        yield s
    finally:
        s.down()


def _rpc(stack: NativeStack) -> Any:
    return native_stack._rpc(native_stack.Settings.from_env(stack.env))


def _info(stack: NativeStack, name: str) -> dict[str, Any]:
    return dict(_rpc(stack).supervisor.getProcessInfo(name))


def _restarts(stack: NativeStack, name: str) -> int:
    for line in stack.run("status").stdout.splitlines():
        fields = line.split()
        if fields and fields[0] == name:
            return int(next(f for f in fields if f.startswith("restarts=")).split("=")[1])
    raise AssertionError(f"{name} not in `status` output")


def test_a_crash_looping_sidecar_is_started_again_after_supervisord_gives_up(stack: NativeStack) -> None:
    killed: list[int] = []
    saw_fatal = False
    deadline = time.monotonic() + 40
    while not saw_fatal and time.monotonic() < deadline:
        info = _info(stack, "sidecar")
        if info["statename"] == "FATAL":
            saw_fatal = True
        elif info["pid"] and info["pid"] not in killed:
            os.kill(info["pid"], signal.SIGKILL)  # dies right after each start: within startsecs
            killed.append(info["pid"])
        time.sleep(0.02)
    assert saw_fatal, f"supervisord should have given up after {len(killed)} quick deaths"
    assert len(killed) >= 4

    wait_for(lambda: _info(stack, "sidecar")["statename"] == "RUNNING", 45, "the sidecar RUNNING again")
    port = int(stack.env["SIDECAR_PORT"])
    wait_for(lambda: native_stack._grpc_serving(port), 30, "the restarted sidecar serving gRPC")
    assert _restarts(stack, "sidecar") >= len(killed)


def test_prometheus_has_no_lifecycle_or_remote_write_endpoint(stack: NativeStack) -> None:
    with urllib.request.urlopen(f"{stack.prometheus}/api/v1/status/flags", timeout=5) as resp:
        flags = json.load(resp)["data"]
    assert flags["web.enable-lifecycle"] == "false"
    assert flags["web.enable-remote-write-receiver"] == "false"
    quit_req = urllib.request.Request(f"{stack.prometheus}/-/quit", method="POST")
    try:
        urllib.request.urlopen(quit_req, timeout=5)
        status = 200
    except urllib.error.HTTPError as exc:
        status = exc.code
    assert status != 200
    time.sleep(1)
    assert http_status(f"{stack.prometheus}/-/ready") == 200


def test_prometheus_that_exits_cleanly_is_started_again(stack: NativeStack) -> None:
    """Exit status 0 (what /-/quit used to cause) is "expected" to supervisord; it must not mean down."""
    before = _restarts(stack, "prometheus")
    pid = _info(stack, "prometheus")["pid"]
    os.kill(pid, signal.SIGTERM)  # Prometheus shuts down cleanly and exits 0
    wait_for(lambda: _info(stack, "prometheus")["pid"] not in (0, pid), 30, "a new Prometheus process")
    wait_for(lambda: http_status(f"{stack.prometheus}/-/ready") == 200, 60, "Prometheus ready again")
    assert _restarts(stack, "prometheus") == before + 1
