"""compose/native/restarter.py: a service that stops on its own is started again, with backoff, forever."""

from __future__ import annotations

import io
import json
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.stack_support import REPO

sys.path.insert(0, str(REPO / "compose" / "native"))
from restarter import Backoff, Restarter, _parse_payload


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Starts:
    """Records start requests; can be told to fail the next n of them."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.fail_next = 0
        self.event = threading.Event()

    def __call__(self, name: str) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise OSError("supervisord socket refused")
        self.names.append(name)
        self.event.set()

    def wait(self, n: int, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.names) < n and time.monotonic() < deadline:
            time.sleep(0.005)
        assert len(self.names) >= n, self.names


def _restarter(tmp_path: Path, starts: Starts, clock: Clock | None = None, **backoff: float) -> Restarter:
    params = {"initial": 0.01, "maximum": 0.08, "reset_after": 60.0, **backoff}
    return Restarter(
        starts, tmp_path / "restarts.json", Backoff(**params), "restarter", clock or Clock(), io.StringIO()
    )


def _event(r: Restarter, state: str, name: str = "sidecar", **extra: str) -> None:
    r.on_event(f"PROCESS_STATE_{state}", {"processname": name, "groupname": name, **extra})


def test_fatal_and_exited_services_are_started_again(tmp_path: Path) -> None:
    starts = Starts()
    r = _restarter(tmp_path, starts)
    _event(r, "FATAL", from_state="BACKOFF")
    starts.wait(1)
    _event(r, "EXITED", "prometheus", from_state="RUNNING", expected="1")  # exit 0 after /-/quit too
    starts.wait(2)
    assert starts.names == ["sidecar", "prometheus"]


def test_backoff_doubles_up_to_the_maximum_and_never_gives_up() -> None:
    b = Backoff(initial=1, maximum=30, reset_after=60)
    assert [b.delay(s) for s in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    assert b.delay(10_000) == 30


def test_streak_grows_with_quick_deaths_and_resets_after_a_long_run(tmp_path: Path) -> None:
    clock = Clock()
    starts = Starts()
    r = _restarter(tmp_path, starts, clock, initial=0.001, maximum=10.0, reset_after=60.0)
    for _ in range(4):
        _event(r, "RUNNING")
        clock.now += 2  # dies 2 s after it came up
        _event(r, "EXITED", from_state="RUNNING", expected="0")
    assert r.services["sidecar"].streak == 4
    _event(r, "RUNNING")
    clock.now += 61
    _event(r, "EXITED", from_state="RUNNING", expected="0")
    assert r.services["sidecar"].streak == 1  # reset, then this exit counted


def test_a_stop_by_the_operator_cancels_the_pending_restart(tmp_path: Path) -> None:
    starts = Starts()
    r = _restarter(tmp_path, starts, initial=0.2, maximum=0.2)
    _event(r, "EXITED", from_state="RUNNING", expected="0")
    _event(r, "STOPPED", from_state="EXITED")
    time.sleep(0.4)
    assert starts.names == []


def test_restarts_are_counted_in_the_state_file_and_survive_a_listener_restart(tmp_path: Path) -> None:
    starts = Starts()
    r = _restarter(tmp_path, starts)
    _event(r, "STARTING", from_state="STOPPED")  # the first start by stack.py: not a restart
    for from_state in ("BACKOFF", "BACKOFF", "FATAL", "EXITED"):
        _event(r, "STARTING", from_state=from_state)
    state = json.loads((tmp_path / "restarts.json").read_text())
    assert state["services"]["sidecar"]["restarts"] == 4
    again = _restarter(tmp_path, Starts())
    assert again.services["sidecar"].restarts == 4


def test_a_failed_start_request_is_retried(tmp_path: Path) -> None:
    starts = Starts()
    starts.fail_next = 2
    r = _restarter(tmp_path, starts)
    _event(r, "FATAL", from_state="BACKOFF")
    starts.wait(1)
    assert starts.names == ["sidecar"]


def test_reconcile_restarts_what_is_down_when_the_listener_starts(tmp_path: Path) -> None:
    starts = Starts()
    r = _restarter(tmp_path, starts)
    r.reconcile(
        [
            {"name": "collector", "statename": "FATAL"},
            {"name": "sidecar", "statename": "RUNNING"},
            {"name": "app", "statename": "STOPPED"},
            {"name": "restarter", "statename": "EXITED"},
        ]
    )
    starts.wait(1)
    time.sleep(0.05)
    assert starts.names == ["collector"]


def test_its_own_events_are_ignored(tmp_path: Path) -> None:
    starts = Starts()
    r = _restarter(tmp_path, starts)
    _event(r, "EXITED", "restarter", from_state="RUNNING", expected="0")
    time.sleep(0.05)
    assert starts.names == []


def test_payload_parsing_and_backoff_validation() -> None:
    payload = "processname:sidecar groupname:sidecar from_state:RUNNING expected:0 pid:42"
    assert _parse_payload(payload)["from_state"] == "RUNNING"
    with pytest.raises(ValueError, match="--maximum"):
        Backoff(initial=5, maximum=1, reset_after=60)
    with pytest.raises(ValueError, match="--initial"):
        Backoff(initial=0, maximum=1, reset_after=60)
