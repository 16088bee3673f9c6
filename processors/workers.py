"""``--workers N``: one gRPC front process, N processing processes.

The front (this process) owns the listening socket, the one connection the Collector opens, the concurrency
limit, the forward channel and the status mapping (``forwarding.ExportForwarder``, the same path as with one
worker). For each Export request it hands the raw request bytes, with what is left of the caller's deadline,
to a pool of N worker processes that parse, price and redact (``Pipeline``, the same code as in-process) and
send back only what changed plus the counts for the metrics. The batch bytes go through short-lived files in
/dev/shm (mode 0600, removed as soon as the request is answered; stale ones of a killed front are removed at
the next start), the rest through the pool's pipe. So N workers help even one HTTP/2 connection:
the kernel no longer decides by connection, the front decides by request.

Fail closed as before: the front forwards only a batch a worker finished, and answers OK only after the
forward succeeded. A worker that dies (killed, out of memory) breaks the pool: every request it held, and any
that arrive until a new pool is up, is answered UNAVAILABLE (kind ``worker_lost``; the Collector retries), and
the pool is rebuilt. A worker slower than the caller's deadline → UNAVAILABLE (kind ``deadline``). Workers
ignore SIGINT/SIGTERM: the front drains first (no new RPCs, in-flight batches finish), then shuts them down. A
worker exits on its own as soon as the front dies, however it dies (``_exit_when_front_dies``).
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import logging
import multiprocessing
import os
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import BrokenExecutor, Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from multiprocessing.connection import Connection
from typing import NoReturn

from processors.config import SidecarConfig
from processors.cost.enrichment import CostStats
from processors.deadletter import pid_alive
from processors.forwarding import Processed, Unavailable
from processors.handlers import Parts, Pipeline, processed_from_parts
from processors.redaction.walk import RedactionStats
from processors.wire.repair import Repair

log = logging.getLogger("processors.workers")

_NO_DEADLINE_S = 120.0  # a caller without a deadline still does not wait forever for a stuck worker

_pipeline: Pipeline | None = None  # in each worker process


def _init_worker(config: SidecarConfig, front_alive: Connection, front_pid: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the front drains, then shuts the pool down
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    threading.Thread(
        target=_exit_when_front_dies, args=(front_alive, front_pid), name="sidecar-front-watch", daemon=True
    ).start()
    global _pipeline
    _pipeline = Pipeline(config)
    gc.freeze()  # as in the front: long-lived objects out of the cyclic GC's full collections


def _exit_when_front_dies(
    front_alive: Connection, front_pid: int, exit_now: Callable[[int], object] = os._exit
) -> None:
    """Block on the read end of a pipe whose only write end the front holds and never writes: the kernel
    closes it when the front dies, however it dies (kill -9, OOM killer), and the read then ends. Chosen over
    prctl(PR_SET_PDEATHSIG), which fires when the *thread* that spawned the worker ends (ProcessPoolExecutor
    spawns from whichever thread submits: gRPC handler threads, the short-lived warm-up thread of a rebuilt
    pool), and over polling os.getppid() (a delay and wake-ups). The pipe was inherited at spawn, so a front
    that died even before this thread started is seen at once.

    Exiting loses nothing acknowledged: a worker only processes; the front answers OK only after forwarding
    what a worker returned, and a dead front answers nothing, so the Collector retries every batch it held.
    Its hand files in /dev/shm (unredacted batches) are removed first (by its pid: a dead front may still be
    a zombie, which looks alive)."""
    try:
        while True:
            front_alive.recv_bytes()  # nothing is ever sent; EOF when the front is gone
    except (EOFError, OSError):
        pass
    _remove_stale_hand_files(gone=front_pid)
    exit_now(1)


def _run(signal_name: str, raw: bytes) -> Parts:
    assert _pipeline is not None
    if signal_name == "traces":
        return _pipeline.trace_parts(raw)
    if signal_name == "metrics":
        return _pipeline.metric_parts(raw)
    return _pipeline.log_parts(raw)


Handed = tuple[bool, int, CostStats | None, RedactionStats | None, Repair | None]
"""What a worker sends back through the pool's pipe: whether it wrote changed bytes, and the counts."""


def _run_file(signal_name: str, in_path: str, out_path: str) -> Handed:
    """Batch bytes travel through files in /dev/shm (RAM), not through the pool's pipe: a 1.4 MB batch through
    a 64 KB pipe costs dozens of wake-ups on both sides; a tmpfs file is one copy in and one out."""
    raw = _read_file(in_path)
    payload, items, cost, redaction, repair = _run(signal_name, raw)
    if payload is None:
        return False, items, cost, redaction, repair
    _write_file(out_path, payload)
    return True, items, cost, redaction, repair


_HAND_DIR = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
_HAND_PREFIX = "llm-otel-sidecar-"


def _write_file(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # only this user may read telemetry
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def _read_file(path: str) -> bytes:
    with open(path, "rb", buffering=0) as f:
        return f.readall()


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _remove_stale_hand_files(gone: int | None = None) -> None:
    """Files left by a front that was killed (SIGKILL, OOM) hold unredacted batches: remove them, and those of
    process ``gone`` (default: this one)."""
    gone = os.getpid() if gone is None else gone
    for name in os.listdir(_HAND_DIR):
        if not name.startswith(_HAND_PREFIX):
            continue
        pid_text = name[len(_HAND_PREFIX) :].split("-", 1)[0]
        if not pid_text.isdigit():
            continue
        pid = int(pid_text)
        if pid == gone or not pid_alive(pid):
            _unlink(os.path.join(_HAND_DIR, name))


def _ping(hold_s: float) -> bool:
    time.sleep(hold_s)
    return _pipeline is not None


class WorkerPool:
    """N processing processes behind ``process_traces`` / ``process_logs`` (the Pipeline's interface)."""

    def __init__(self, config: SidecarConfig, workers: int) -> None:
        self._config = config
        self._workers = workers
        self._lock = threading.Lock()
        self._closed = False
        self._seq = itertools.count()
        # workers watch the read end; the write end stays in this process only (see _exit_when_front_dies)
        self._front_alive, self._front_alive_writer = multiprocessing.get_context("spawn").Pipe(duplex=False)
        _remove_stale_hand_files()
        self._pool = self._start()

    def _start(self) -> ProcessPoolExecutor:
        # spawn, not fork: the front has gRPC threads running, which must not be forked
        return ProcessPoolExecutor(
            max_workers=self._workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(self._config, self._front_alive, os.getpid()),
        )

    def warm_up(self, timeout: float = 60.0) -> None:
        """Start every worker now (and build its Pipeline), not on the first requests."""
        # a ProcessPoolExecutor starts processes as tasks arrive; blocking pings make it start all of them
        barrier = [self._pool.submit(_ping, 0.2) for _ in range(self._workers)]
        for f in barrier:
            f.result(timeout=timeout)

    def process_traces(self, raw: bytes, timeout: float | None = None) -> Processed:
        return self._process("traces", raw, timeout)

    def process_logs(self, raw: bytes, timeout: float | None = None) -> Processed:
        return self._process("logs", raw, timeout)

    def process_metrics(self, raw: bytes, timeout: float | None = None) -> Processed:
        return self._process("metrics", raw, timeout)

    def _process(self, signal_name: str, raw: bytes, timeout: float | None) -> Processed:
        pool = self._pool
        base = os.path.join(_HAND_DIR, f"{_HAND_PREFIX}{os.getpid()}-{next(self._seq)}")
        in_path, out_path = base + ".in", base + ".out"
        future: Future[Handed] | None = None
        try:
            _write_file(in_path, raw)
            try:
                future = pool.submit(_run_file, signal_name, in_path, out_path)
            except RuntimeError as exc:  # BrokenProcessPool is one too; or submit after shutdown
                self._lost(pool, exc)
            try:
                changed, items, cost, redaction, repair = future.result(
                    timeout=_NO_DEADLINE_S if timeout is None else max(timeout, 0.0)
                )
            except BrokenExecutor as exc:  # a worker died; an error raised by the processing itself
                self._lost(pool, exc)  # propagates as it does without workers (fail closed, counted)
            payload = _read_file(out_path) if changed else None
        except FutureTimeout:
            assert future is not None
            if not future.cancel():  # still running: its output file goes when it is done
                future.add_done_callback(lambda _f: _unlink(out_path))
            raise Unavailable(
                "deadline", f"no worker finished the {signal_name} batch within the caller's deadline; retry"
            ) from None
        finally:
            _unlink(in_path)
            _unlink(out_path)
        return processed_from_parts(signal_name, raw, (payload, items, cost, redaction, repair))

    def _lost(self, pool: ProcessPoolExecutor, exc: BaseException) -> NoReturn:
        self._replace(pool)
        raise Unavailable(
            "worker_lost", f"a sidecar worker process was lost ({type(exc).__name__}); retry"
        ) from None

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._closed or self._pool is not broken:
                return  # stopping, or another request already replaced it
            log.error("a worker process died; restarting the worker pool", extra={"workers": self._workers})
            broken.shutdown(wait=False, cancel_futures=True)
            self._pool = self._start()
        threading.Thread(target=self._warm_quietly, name="sidecar-pool-warm-up", daemon=True).start()

    def _warm_quietly(self) -> None:
        try:
            self.warm_up()
        except Exception as exc:  # the next request reports a pool that is still broken
            log.error("worker pool warm-up failed", extra={"error": type(exc).__name__})

    def shutdown(self) -> None:
        with self._lock:
            self._closed = True
            self._pool.shutdown(wait=True, cancel_futures=True)
        _remove_stale_hand_files()
