"""``--workers N``: N worker processes bound to the same port with SO_REUSEPORT (the kernel spreads
connections over them), supervised by this parent, which passes SIGTERM on and exits 0 when all drained."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading

from processors.cli import Options

log = logging.getLogger("processors.workers")

ENV_WORKER_INDEX = "SIDECAR_WORKER_INDEX"  # set by the parent; makes a process a worker (reuse-port on)


def _check_port_free(listen: str) -> None:
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        # SO_REUSEADDR: connections of a previous run in TIME_WAIT are fine; a listener is not.
        # No SO_REUSEPORT: fails if anyone else (another sidecar, any server) listens on the port.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, int(port)))
        s.listen(1)


def supervise(opts: Options) -> int:
    if opts.listen.endswith(":0"):
        log.error("--workers > 1 needs a fixed port, not :0")
        return 2
    try:
        _check_port_free(opts.listen)
    except OSError as exc:
        log.error("cannot listen", extra={"listen": opts.listen, "error": str(exc)})
        return 1
    argv = [
        sys.executable,
        "-m",
        "processors",
        "--listen",
        opts.listen,
        "--forward",
        opts.forward,
        "--workers",
        "1",
        "--log-level",
        opts.log_level,
    ]
    if opts.config:
        argv += ["--config", opts.config]
    children = [
        subprocess.Popen(argv, env={**os.environ, ENV_WORKER_INDEX: str(i)}) for i in range(opts.workers)
    ]
    stopping = threading.Event()

    def on_signal(_signum: int, _frame: object) -> None:
        stopping.set()
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, on_signal)
    log.info("workers started", extra={"workers": opts.workers, "pids": [c.pid for c in children]})
    exit_code = 0
    while any(c.poll() is None for c in children):
        for child in children:
            try:
                code = child.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                continue
            if code != 0 and not stopping.is_set():
                # a worker died on its own: stop the rest and let the supervisor of this process restart us
                log.error("worker exited unexpectedly; stopping", extra={"pid": child.pid, "code": code})
                exit_code = code or 1
                on_signal(signal.SIGTERM, None)
            elif code != 0:
                exit_code = exit_code or code
    return exit_code
