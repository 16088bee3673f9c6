"""supervisord event listener: restart every service of the native stack whenever it stops on its own,
with exponential backoff and without limit, and count the restarts in $RUN_DIR/restarts.json.

supervisord alone gives up: a process that dies `startretries` times within `startsecs` goes FATAL and
stays down, and one whose exit status is "expected" (Prometheus after POST /-/quit exits 0) is not
restarted at all. This listener (one [eventlistener:restarter] section of supervisord.conf) receives
every PROCESS_STATE event and

- on EXITED (the service ran, then stopped by itself, any exit status) or FATAL (supervisord's own quick
  retries are used up) starts it again after `initial * 2**streak` seconds, at most `maximum`; the streak
  is reset once a service has run `reset_after` seconds;
- on STOPPED (an operator, or `make down`, stopped it) cancels a pending restart;
- counts every start that is not a first start (supervisord's BACKOFF retries included) and writes the
  counts to the state file, which `stack.py status` (`make status`) shows.

A listener that is itself restarted re-reads the counts and reschedules any service it finds EXITED or
FATAL, so nothing stays down because the listener was.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import xmlrpc.client
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

RESTART_ON = ("PROCESS_STATE_EXITED", "PROCESS_STATE_FATAL")
RESTART_FROM = ("BACKOFF", "EXITED", "FATAL")  # a STARTING from one of these is a restart


@dataclass(frozen=True)
class Backoff:
    initial: float = 1.0
    maximum: float = 30.0
    reset_after: float = 60.0

    def __post_init__(self) -> None:
        for name in ("initial", "maximum", "reset_after"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(
                    f"--{name.replace('_', '-')} must be a positive number of seconds, got {value}"
                )
        if self.maximum < self.initial:
            raise ValueError(f"--maximum ({self.maximum}) must be at least --initial ({self.initial})")

    def delay(self, streak: int) -> float:
        return float(min(self.maximum, self.initial * 2 ** min(streak, 32)))


@dataclass
class ServiceState:
    restarts: int = 0
    streak: int = 0
    running_since: float | None = None
    last_stop: str = ""
    pending: threading.Timer | None = field(default=None, repr=False)


Starter = Callable[[str], None]


class Restarter:
    """The listener's logic, independent of supervisord's wire protocol (tests drive it directly)."""

    def __init__(
        self,
        start: Starter,
        state_path: Path,
        backoff: Backoff,
        own_name: str,
        clock: Callable[[], float] = time.monotonic,
        log: TextIO = sys.stderr,
    ) -> None:
        self._start = start
        self._state_path = state_path
        self._backoff = backoff
        self._own_name = own_name
        self._clock = clock
        self._log = log
        self._lock = threading.Lock()
        self.services: dict[str, ServiceState] = {}
        self._load()

    def _load(self) -> None:
        try:
            saved = json.loads(self._state_path.read_text())["services"]
        except (OSError, ValueError, KeyError, TypeError):
            return
        for name, info in saved.items():
            self.services[name] = ServiceState(restarts=int(info.get("restarts", 0)))

    def _service(self, name: str) -> ServiceState:
        return self.services.setdefault(name, ServiceState())

    def on_event(self, eventname: str, payload: dict[str, str]) -> None:
        name = payload.get("processname", "")
        if not name or name == self._own_name or not eventname.startswith("PROCESS_STATE_"):
            return
        with self._lock:
            svc = self._service(name)
            if eventname == "PROCESS_STATE_RUNNING":
                svc.running_since = self._clock()
            elif eventname == "PROCESS_STATE_STARTING" and payload.get("from_state") in RESTART_FROM:
                svc.restarts += 1
                self._save()
            elif eventname == "PROCESS_STATE_STOPPED":
                self._cancel(svc)
            elif eventname in RESTART_ON:
                state = eventname.removeprefix("PROCESS_STATE_")
                detail = f" expected={payload['expected']}" if "expected" in payload else ""
                svc.last_stop = f"{state}{detail} at {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}"
                self._schedule(name, svc)

    def reconcile(self, infos: list[dict[str, Any]]) -> None:
        """At listener start: every service already EXITED or FATAL gets its restart scheduled."""
        with self._lock:
            for info in infos:
                name = str(info.get("name", ""))
                if name and name != self._own_name and info.get("statename") in ("EXITED", "FATAL"):
                    svc = self._service(name)
                    svc.last_stop = f"{info['statename']} (found at listener start)"
                    self._schedule(name, svc)

    def _schedule(self, name: str, svc: ServiceState) -> None:
        ran = None if svc.running_since is None else self._clock() - svc.running_since
        svc.running_since = None  # each running period resets the streak at most once
        if ran is not None and ran >= self._backoff.reset_after:
            svc.streak = 0
        delay = self._backoff.delay(svc.streak)
        svc.streak += 1
        self._cancel(svc)
        timer = threading.Timer(delay, self._fire, args=(name,))
        timer.daemon = True
        svc.pending = timer
        self._say(f"{name}: {svc.last_stop}; starting it again in {delay:.1f}s (streak {svc.streak})")
        self._save()
        timer.start()

    def _cancel(self, svc: ServiceState) -> None:
        if svc.pending is not None:
            svc.pending.cancel()
            svc.pending = None

    def _fire(self, name: str) -> None:
        with self._lock:
            svc = self._service(name)
            if svc.pending is None or svc.pending is not threading.current_thread():
                return  # cancelled or replaced meanwhile
            svc.pending = None
        try:
            self._start(name)
        except Exception as exc:  # the RPC failed: try again later rather than leave the service down
            with self._lock:
                svc = self._service(name)
                svc.last_stop = f"restart failed ({exc})"
                self._schedule(name, svc)

    def _save(self) -> None:
        data = {
            "services": {
                name: {
                    "restarts": s.restarts,
                    "last_stop": s.last_stop,
                    "restart_pending": s.pending is not None,
                }
                for name, s in sorted(self.services.items())
            }
        }
        tmp = self._state_path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps(data, indent=2) + "\n")
            os.replace(tmp, self._state_path)
        except OSError as exc:
            self._say(f"cannot write {self._state_path}: {exc}")

    def _say(self, message: str) -> None:
        print(f"restarter: {message}", file=self._log, flush=True)


def _rpc() -> Any:
    from supervisor import childutils

    return childutils.getRPCInterface(os.environ)


def _start_via_rpc(name: str) -> None:
    try:
        _rpc().supervisor.startProcess(name, False)
    except xmlrpc.client.Fault as fault:
        if "ALREADY_STARTED" not in fault.faultString:
            raise


def _parse_payload(text: str) -> dict[str, str]:
    first = text.split("\n", 1)[0]
    return dict(item.split(":", 1) for item in first.split() if ":" in item)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--state", required=True, type=Path, help="where the restart counts are written")
    ap.add_argument("--initial", type=float, default=1.0, help="first restart delay, seconds (default 1)")
    ap.add_argument("--maximum", type=float, default=30.0, help="longest restart delay, seconds (default 30)")
    ap.add_argument(
        "--reset-after", type=float, default=60.0, help="uptime that resets the backoff, seconds (default 60)"
    )
    args = ap.parse_args(argv)
    try:
        backoff = Backoff(args.initial, args.maximum, args.reset_after)
    except ValueError as exc:
        ap.error(str(exc))
    own = os.environ.get("SUPERVISOR_PROCESS_NAME", "restarter")
    restarter = Restarter(_start_via_rpc, args.state, backoff, own_name=own)
    try:
        restarter.reconcile(_rpc().supervisor.getAllProcessInfo())
    except (OSError, xmlrpc.client.Fault) as exc:
        print(f"restarter: cannot list processes at start ({exc})", file=sys.stderr, flush=True)

    from supervisor import childutils

    while True:
        headers, payload = childutils.listener.wait(sys.stdin, sys.stdout)
        try:
            restarter.on_event(headers.get("eventname", ""), _parse_payload(payload))
        finally:
            childutils.listener.ok(sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
